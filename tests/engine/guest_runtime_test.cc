// Tests for the isolate a worker owns: how retired instances' reservations are collected.
#include "engine/guest_runtime.h"

#include <memory>
#include <thread>

#include "absl/synchronization/notification.h"
#include "engine/instance.h"
#include "gtest/gtest.h"
#include "tests/engine/test_support.h"

namespace tandem::engine {
namespace {

using testing::LoadGuestOrDie;

TEST(CollectionShareTest, TheProcessBoundIsSharedByTheIsolatesAlive) {
  EXPECT_EQ(CollectionShare(32, 1), 32);
  EXPECT_EQ(CollectionShare(32, 4), 8);
  EXPECT_EQ(CollectionShare(32, 5), 6);
  EXPECT_EQ(CollectionShare(32, 64), 1);  // Never less than every retirement.
  EXPECT_EQ(CollectionShare(32, 0), 32);
}

// Instantiates and retires `count` guests in `runtime`.
void Generations(GuestRuntime& runtime, const Module& module, int count) {
  for (int i = 0; i < count; ++i) {
    ASSERT_TRUE(runtime.Instantiate(module, std::make_shared<const InstanceOptions>()).ok());
    runtime.Retire();
  }
}

// A pool that grows must not hold more uncollected reservations: each isolate collects after its
// share. (Each test runs in a process of its own, so the isolates alive are the test's.)
TEST(GuestRuntimeTest, AnIsolateCollectsMoreOftenWhileOthersAreAlive) {
  std::unique_ptr<Module> module = LoadGuestOrDie("leaky");
  ASSERT_NE(module, nullptr);
  RuntimeLimits limits;
  limits.uncollected_retirements_per_process = 4;
  GuestRuntime runtime(limits);
  ASSERT_EQ(GuestRuntime::Live(), 1);

  Generations(runtime, *module, 8);
  EXPECT_EQ(runtime.retirements(), 8u);
  EXPECT_EQ(runtime.collections(), 2u);  // Alone: every 4.

  // A second isolate, on its own thread as every isolate is, alive while this one retires 8 more.
  absl::Notification created, done;
  std::thread other([&] {
    GuestRuntime second(limits);
    created.Notify();
    done.WaitForNotification();
  });
  created.WaitForNotification();
  ASSERT_EQ(GuestRuntime::Live(), 2);
  Generations(runtime, *module, 8);
  done.Notify();
  other.join();
  EXPECT_EQ(runtime.collections(), 6u);  // Two alive: every 2.
  EXPECT_EQ(GuestRuntime::Live(), 1);
}

}  // namespace
}  // namespace tandem::engine
