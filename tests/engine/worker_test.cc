// Tests for workers and the worker pool: isolates reused across instances, disposed when a call
// was terminated or overflowed the stack, memory returned at retirement, nothing carried over.
#include <fstream>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "engine/instance.h"
#include "engine/worker_pool.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/test_support.h"
#include "util/failure_cause.h"

namespace tandem::engine {
namespace {

using ::testing::HasSubstr;
using testing::LoadGuestOrDie;
using testing::MemoryStateReader;
using testing::ReadU64Le;
using testing::U32Le;

constexpr absl::Duration kDeadline = absl::Seconds(30);

std::unique_ptr<Instance> NewInstanceOrDie(WorkerPool& workers, const Module& module,
                                           InstanceOptions options = {}) {
  absl::StatusOr<std::unique_ptr<Instance>> instance =
      Instance::Create(workers, module, std::move(options));
  EXPECT_TRUE(instance.ok()) << instance.status();
  return instance.ok() ? *std::move(instance) : nullptr;
}

// A field of /proc/self/status in KiB ("VmRSS:", "VmSize:").
long ProcStatusKiB(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(field.size()));
  }
  return -1;
}

// The reads_and_writes guest's block operations (see guests/README.md).
std::string Operation(uint8_t op, absl::string_view key) {
  return absl::StrCat(std::string(1, static_cast<char>(op)), U32Le(key.size()), key, U32Le(0));
}

TEST(WorkerPoolTest, ANewInstanceReusesTheWorkerOfARetiredOne) {
  auto module = LoadGuestOrDie("leaky");
  WorkerPool workers(WorkerPoolOptions{});
  uint64_t first_worker;
  {
    auto first = NewInstanceOrDie(workers, *module);
    first_worker = first->worker_id();
  }
  workers.AwaitRetirementsForTesting();
  auto second = NewInstanceOrDie(workers, *module);
  EXPECT_EQ(second->worker_id(), first_worker);
  WorkerPoolStats stats = workers.Stats();
  EXPECT_EQ(stats.started, 1u);
  EXPECT_EQ(stats.reused, 1u);
  EXPECT_EQ(stats.out, 1);
}

TEST(WorkerPoolTest, NothingOfARetiredInstanceReachesTheNextOnTheSameWorker) {
  auto module = LoadGuestOrDie("leaky");
  WorkerPool workers(WorkerPoolOptions{});
  MemoryStateReader reader;
  uint64_t worker;
  {
    auto first = NewInstanceOrDie(workers, *module);
    worker = first->worker_id();
    ASSERT_TRUE(first->RunBlock(1, U32Le(256), reader, kDeadline).ok());
    absl::StatusOr<CallResult> leaked = first->RunView("leaked", 1, "", reader, kDeadline);
    ASSERT_TRUE(leaked.ok()) << leaked.status();
    EXPECT_EQ(ReadU64Le(leaked->answer), 256u * 1024);
  }
  workers.AwaitRetirementsForTesting();
  auto second = NewInstanceOrDie(workers, *module);
  ASSERT_EQ(second->worker_id(), worker);
  absl::StatusOr<CallResult> leaked = second->RunView("leaked", 1, "", reader, kDeadline);
  ASSERT_TRUE(leaked.ok()) << leaked.status();
  EXPECT_EQ(ReadU64Le(leaked->answer), 0u);  // A fresh guest: its globals and memory start over.
  EXPECT_LT(second->memory().linear_memory_bytes, 256u * 1024);
}

TEST(WorkerPoolTest, RetiringAnInstanceReturnsItsMemoryAtOnce) {
  auto module = LoadGuestOrDie("leaky");
  WorkerPoolOptions options;
  options.max_idle_workers = 1;
  WorkerPool workers(options);
  MemoryStateReader reader;
  auto warm_up = NewInstanceOrDie(workers, *module);
  warm_up.reset();
  workers.AwaitRetirementsForTesting();
  const long before_kib = ProcStatusKiB("VmRSS:");
  long peak_kib;
  {
    auto leaking = NewInstanceOrDie(workers, *module);
    ASSERT_TRUE(leaking->RunBlock(1, U32Le(128 * 1024), reader, kDeadline).ok());  // 128 MiB.
    peak_kib = ProcStatusKiB("VmRSS:");
    EXPECT_GT(peak_kib, before_kib + 120 * 1024);
  }
  // Measured against the peak: sanitizers keep shadow memory of their own that madvise leaves.
  workers.AwaitRetirementsForTesting();
  EXPECT_LT(ProcStatusKiB("VmRSS:"), peak_kib - 112 * 1024)
      << "the retired instance's 128 MiB were not returned";
}

TEST(WorkerPoolTest, AWorkerWhoseCallWasTerminatedIsDisposed) {
  auto module = LoadGuestOrDie("runaway");
  WorkerPool workers(WorkerPoolOptions{});
  uint64_t first_worker;
  {
    auto runaway = NewInstanceOrDie(workers, *module);
    first_worker = runaway->worker_id();
    absl::Status status = runaway->RunInit("init_runaway", "", absl::Milliseconds(200)).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
    EXPECT_EQ(util::CauseOf(status), util::FailureCause::kDeadline);
  }
  auto next = NewInstanceOrDie(workers, *module);
  EXPECT_NE(next->worker_id(), first_worker);
  EXPECT_TRUE(next->RunInit("init_ok", "", kDeadline).ok());
  workers.DrainDisposalsForTesting();
  EXPECT_EQ(workers.Stats().disposed_poisoned, 1u);
  EXPECT_EQ(workers.Stats().started, 2u);
}

TEST(WorkerPoolTest, AStackOverflowDisposesTheWorkerATrapDoesNot) {
  auto recursion = LoadGuestOrDie("deep_recursion");
  auto trapping = LoadGuestOrDie("trapping");
  WorkerPool workers(WorkerPoolOptions{});
  MemoryStateReader reader;
  uint64_t worker;
  {
    auto instance = NewInstanceOrDie(workers, *trapping);
    worker = instance->worker_id();
    EXPECT_EQ(instance->RunBlock(1, "", reader, kDeadline).status().code(),
              absl::StatusCode::kAborted);
  }
  workers.AwaitRetirementsForTesting();
  {
    auto instance = NewInstanceOrDie(workers, *recursion);
    EXPECT_EQ(instance->worker_id(), worker) << "a trap must not cost the worker";
    absl::Status status = instance->RunBlock(1, "", reader, kDeadline).status();
    EXPECT_EQ(util::CauseOf(status), util::FailureCause::kStackOverflow) << status;
  }
  auto next = NewInstanceOrDie(workers, *trapping);
  EXPECT_NE(next->worker_id(), worker) << "a stack overflow must cost the worker";
  workers.DrainDisposalsForTesting();
  EXPECT_EQ(workers.Stats().disposed_poisoned, 1u);
}

// Holds the guest's `__log` call (on the worker's thread) until released.
class GateLogSink : public GuestLogSink {
 public:
  void OnGuestLog(absl::string_view, absl::string_view) override {
    logged_.Notify();
    release_.WaitForNotification();
  }
  absl::Notification logged_;
  absl::Notification release_;
};

TEST(InstanceQueueTest, ACallQueuedBehindACallThatFailsTheInstanceDoesNotRun) {
  auto module = LoadGuestOrDie("reads_and_writes");
  WorkerPool workers(WorkerPoolOptions{});
  MemoryStateReader reader;
  GateLogSink gate;
  InstanceOptions options;
  options.log_sink = &gate;
  auto instance = NewInstanceOrDie(workers, *module, options);
  // The block logs (and waits at the gate), then passes a bad pointer: it fails the instance.
  absl::Status failing;
  std::thread block([&] {
    failing = instance
                  ->RunBlock(1, absl::StrCat(Operation(4, "running"), Operation(5, "")), reader,
                             kDeadline)
                  .status();
  });
  gate.logged_.WaitForNotification();
  absl::Status queued;
  std::thread view([&] { queued = instance->RunView("echo", 1, "x", reader, kDeadline).status(); });
  while (instance->QueuedCallsForTesting() == 0) absl::SleepFor(absl::Milliseconds(1));
  gate.release_.Notify();
  block.join();
  view.join();
  EXPECT_EQ(util::CauseOf(failing), util::FailureCause::kGuestAbi) << failing;
  EXPECT_EQ(queued.code(), absl::StatusCode::kUnavailable) << queued;
  EXPECT_EQ(util::CauseOf(queued), util::FailureCause::kInstanceLost) << queued;
  EXPECT_THAT(std::string(queued.message()), HasSubstr("did not run"));
  EXPECT_EQ(instance->calls_completed(), 2u);  // The instantiation and the failing block.
}

TEST(InstanceQueueTest, ACallQueuedBehindATerminatedCallDoesNotRun) {
  auto module = LoadGuestOrDie("runaway");
  WorkerPool workers(WorkerPoolOptions{});
  auto instance = NewInstanceOrDie(workers, *module);
  absl::Status terminated;
  std::thread runaway([&] {
    terminated = instance->RunInit("init_runaway", "", absl::Milliseconds(300)).status();
  });
  // Queued while the runaway runs (it is terminated at 300 ms): it waits on the worker's queue
  // and is answered when the worker is poisoned.
  absl::SleepFor(absl::Milliseconds(50));
  absl::Status queued;
  std::thread waiting([&] { queued = instance->RunInit("init_ok", "", kDeadline).status(); });
  runaway.join();
  waiting.join();
  EXPECT_EQ(util::CauseOf(terminated), util::FailureCause::kDeadline) << terminated;
  EXPECT_EQ(queued.code(), absl::StatusCode::kUnavailable) << queued;
  EXPECT_EQ(util::CauseOf(queued), util::FailureCause::kInstanceLost) << queued;
}

}  // namespace
}  // namespace tandem::engine
