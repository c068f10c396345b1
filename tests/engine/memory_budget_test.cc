// Tests the host memory budget through the production page allocator: exactly the guests' linear
// memory is accounted, and a grow or an instantiation that would pass the budget fails the call
// as a host error (never a guest-visible -1 that lets the block commit).
#include <memory>

#include "engine/instance.h"
#include "engine/platform.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/test_support.h"
#include "util/failure_cause.h"

namespace tandem::engine {
namespace {

using ::testing::HasSubstr;
using testing::LoadGuestOrDie;
using testing::MemoryStateReader;
using testing::U32Le;

constexpr absl::Duration kDeadline = absl::Seconds(30);
constexpr uint64_t kMiB = 1ull << 20;

uint64_t Committed() { return GuestMemoryUsage().committed_bytes; }

// Every test leaves the budget off and no reclaimer behind.
class MemoryBudgetTest : public ::testing::Test {
 protected:
  void SetUp() override { testing::InitializeV8OrDie(); }
  void TearDown() override {
    SetGuestMemoryBudget(GuestMemoryLedger::kUnlimited);
    SetGuestMemoryReclaimer(nullptr);
    testing::TestWorkers().AwaitRetirementsForTesting();
  }
};

TEST_F(MemoryBudgetTest, AccountsExactlyTheLinearMemoryAndGivesItBackOnRetirement) {
  auto module = LoadGuestOrDie("grow", 64 * kMiB);
  MemoryStateReader reader;
  testing::TestWorkers().AwaitRetirementsForTesting();
  const uint64_t before = Committed();
  auto instance = Instance::Create(testing::TestWorkers(), *module, {});
  ASSERT_TRUE(instance.ok()) << instance.status();
  EXPECT_EQ(Committed() - before, kWasmPageBytes);  // One page, nothing of V8's own heap.
  absl::StatusOr<BlockResult> grown = (*instance)->RunBlock(1, U32Le(99), reader, kDeadline);
  ASSERT_TRUE(grown.ok()) << grown.status();
  EXPECT_EQ(grown->memory.linear_memory_bytes, 100 * kWasmPageBytes);
  EXPECT_EQ(Committed() - before, 100 * kWasmPageBytes);
  instance->reset();
  testing::TestWorkers().AwaitRetirementsForTesting();
  EXPECT_EQ(Committed(), before);
}

TEST_F(MemoryBudgetTest, AGrowPastTheBudgetFailsTheBlockAsAHostErrorBelowTheCap) {
  auto module = LoadGuestOrDie("memory_stress", 1024 * kMiB);
  MemoryStateReader reader;
  auto instance = Instance::Create(testing::TestWorkers(), *module, {});
  ASSERT_TRUE(instance.ok()) << instance.status();
  SetGuestMemoryBudget(Committed() + 8 * kMiB);
  const uint64_t refusals = GuestMemoryUsage().refusals;
  absl::Status status = (*instance)->RunBlock(1, U32Le(1) + U32Le(16), reader, kDeadline).status();
  // The guest saw memory.grow fail and would have flushed "ERROR"; another host would store
  // "SUCCESS", so the call must fail instead.
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_EQ(util::CauseOf(status), util::FailureCause::kHostMemoryBudget) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("host memory budget"));
  EXPECT_FALSE((*instance)->health().ok());
  EXPECT_GT(GuestMemoryUsage().refusals, refusals);

  // Within the budget, the same block succeeds on a fresh instance.
  instance->reset();
  testing::TestWorkers().AwaitRetirementsForTesting();
  SetGuestMemoryBudget(Committed() + 64 * kMiB);
  auto fresh = Instance::Create(testing::TestWorkers(), *module, {});
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  absl::StatusOr<BlockResult> result =
      (*fresh)->RunBlock(1, U32Le(1) + U32Le(16), reader, kDeadline);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->writes.at("result"), "SUCCESS");
}

TEST_F(MemoryBudgetTest, AnInstantiationPastTheBudgetFailsAsAHostError) {
  auto module = LoadGuestOrDie("big_initial_memory", 64 * kMiB);  // 4 MiB initial memory.
  testing::TestWorkers().AwaitRetirementsForTesting();
  SetGuestMemoryBudget(Committed() + 1 * kMiB);
  absl::StatusOr<std::unique_ptr<Instance>> instance =
      Instance::Create(testing::TestWorkers(), *module, {});
  ASSERT_FALSE(instance.ok());
  EXPECT_EQ(instance.status().code(), absl::StatusCode::kUnavailable) << instance.status();
  EXPECT_EQ(util::CauseOf(instance.status()), util::FailureCause::kHostMemoryBudget)
      << instance.status();
}

// Destroys the instance it holds when asked, as the pair drops a cached instance.
class DroppingReclaimer : public GuestMemoryReclaimer {
 public:
  explicit DroppingReclaimer(std::unique_ptr<Instance> cached) : cached_(std::move(cached)) {}
  uint64_t ReclaimGuestMemory(uint64_t /*wanted*/) override {
    ++calls;
    if (cached_ == nullptr) return 0;
    const uint64_t bytes = cached_->memory().linear_memory_bytes;
    cached_.reset();
    return bytes;
  }
  int calls = 0;

 private:
  std::unique_ptr<Instance> cached_;
};

TEST_F(MemoryBudgetTest, CachedInstancesAreDroppedBeforeABlockIsRefused) {
  auto module = LoadGuestOrDie("memory_stress", 1024 * kMiB);
  MemoryStateReader reader;
  auto cached = Instance::Create(testing::TestWorkers(), *module, {});
  ASSERT_TRUE(cached.ok()) << cached.status();
  ASSERT_TRUE((*cached)->RunBlock(1, U32Le(1) + U32Le(32), reader, kDeadline).ok());
  auto instance = Instance::Create(testing::TestWorkers(), *module, {});
  ASSERT_TRUE(instance.ok()) << instance.status();
  // Room for the new instance's 32 MiB only once the cached one's 32 MiB are gone.
  SetGuestMemoryBudget(Committed() + 16 * kMiB);
  DroppingReclaimer reclaimer(*std::move(cached));
  SetGuestMemoryReclaimer(&reclaimer);
  absl::StatusOr<BlockResult> result =
      (*instance)->RunBlock(1, U32Le(1) + U32Le(32), reader, kDeadline);
  SetGuestMemoryReclaimer(nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->writes.at("result"), "SUCCESS");
  EXPECT_EQ(reclaimer.calls, 1);
}

}  // namespace
}  // namespace tandem::engine
