// Tests for the instance pair: policies, determinism, swaps under load, warm failures, replay,
// restarts, and views bound to heights. Real guests, real RocksDB on disk.
#include "proxy/instance_pair.h"

#include <atomic>
#include <future>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/proxy/pair_test_support.h"
#include "tests/support/test_seed.h"
#include "util/failure_cause.h"

namespace tandem::proxy {
namespace {

using engine::testing::U32Le;
using testing::Block;
using testing::EventRecorder;
using testing::FastOptions;
using ::testing::HasSubstr;
using testing::LoadGuestOrDie;
using testing::OpenStoreOrDie;

constexpr absl::Duration kReady = absl::Seconds(20);

// The state roots of heights 1..N after ingesting `blocks` under `options`, with an optional
// thread forcing manual swaps the whole time.
std::vector<std::string> IngestAndCollectRoots(const engine::Module& module,
                                               const std::vector<std::string>& blocks,
                                               PairOptions options, bool random_manual_swaps,
                                               EventRecorder& events) {
  store::testing::TempDir dir;
  auto store = OpenStoreOrDie(dir.path() / "db");
  InstancePair pair(module, *store, options, &events);
  EXPECT_TRUE(pair.WaitUntilReady(kReady).ok());
  std::atomic<bool> done{false};
  std::thread swapper;
  if (random_manual_swaps) {
    swapper = std::thread([&] {
      std::mt19937 random(3);
      while (!done.load()) {
        absl::SleepFor(absl::Microseconds(random() % 3000));
        (void)pair.Swap(absl::Milliseconds(50));  // UNAVAILABLE when no standby is ready: fine.
      }
    });
  }
  std::vector<std::string> roots;
  for (size_t i = 0; i < blocks.size(); ++i) {
    absl::StatusOr<BlockOutcome> outcome =
        pair.SubmitBlock(Block(static_cast<uint32_t>(i + 1), blocks[i]));
    EXPECT_TRUE(outcome.ok()) << "height " << i + 1 << ": " << outcome.status();
    if (!outcome.ok()) break;
    roots.push_back(outcome->record.state_root);
  }
  done = true;
  if (swapper.joinable()) swapper.join();
  return roots;
}

TEST(InstancePairTest, EveryPolicyAndManualSwapsGiveIdenticalRootsAtEveryHeight) {
  auto module = LoadGuestOrDie("bitcoin_indexer");
  // A cap small enough that `threshold` swaps often: the largest fixture block (1.38 MB) needs a
  // few MiB of guest memory.
  auto small_cap_module = LoadGuestOrDie("bitcoin_indexer", 24ull << 20);
  const std::vector<std::string> blocks = testing::FixtureThenGeneratedBlocks(200);

  EventRecorder block_events;
  const std::vector<std::string> reference =
      IngestAndCollectRoots(*module, blocks, FastOptions(SwapPolicy::kBlock), false, block_events);
  ASSERT_EQ(reference.size(), blocks.size());
  EXPECT_EQ(block_events.Swaps(SwapReason::kBlock), 200);

  struct Run {
    const char* name;
    const engine::Module* module;
    PairOptions options;
    bool manual_swaps;
  };
  PairOptions threshold = FastOptions(SwapPolicy::kThreshold);
  threshold.warm_at = 0.2;
  threshold.swap_at = 0.3;
  const Run runs[] = {
      {"sync", module.get(), FastOptions(SwapPolicy::kSync), false},
      {"threshold", small_cap_module.get(), threshold, false},
      {"none", module.get(), FastOptions(SwapPolicy::kNone), false},
      {"block with manual swaps", module.get(), FastOptions(SwapPolicy::kBlock), true},
      {"none with manual swaps", module.get(), FastOptions(SwapPolicy::kNone), true},
  };
  for (const Run& run : runs) {
    SCOPED_TRACE(run.name);
    EventRecorder events;
    std::vector<std::string> roots =
        IngestAndCollectRoots(*run.module, blocks, run.options, run.manual_swaps, events);
    ASSERT_EQ(roots.size(), reference.size());
    for (size_t i = 0; i < roots.size(); ++i) {
      ASSERT_EQ(roots[i], reference[i]) << "roots differ at height " << i + 1;
    }
    if (run.options.policy == SwapPolicy::kThreshold) {
      EXPECT_GT(events.Swaps(SwapReason::kThreshold), 0);
    }
    if (run.manual_swaps) {
      EXPECT_GT(events.Swaps(SwapReason::kManual), 0);
    }
    if (run.options.policy == SwapPolicy::kSync) {
      EXPECT_EQ(events.Swaps(SwapReason::kSync), 200);
    }
  }
}

TEST(InstancePairTest, LeakyGuestUnderThresholdSwapsAndNeverPassesTheCap) {
  constexpr uint64_t kCap = 64ull << 20;
  auto module = LoadGuestOrDie("leaky", kCap);
  store::testing::TempDir dir;
  auto store = OpenStoreOrDie(dir.path() / "db");
  EventRecorder events;
  InstancePair pair(*module, *store, FastOptions(SwapPolicy::kThreshold), &events);
  ASSERT_TRUE(pair.WaitUntilReady(kReady).ok());
  uint64_t peak = 0;
  for (uint32_t height = 1; height <= 2000; ++height) {
    absl::StatusOr<BlockOutcome> outcome = pair.SubmitBlock(Block(height, ""));  // 64 KiB each.
    ASSERT_TRUE(outcome.ok()) << "height " << height << ": " << outcome.status();
    PairStatus status = pair.Status();
    ASSERT_TRUE(status.active.present);
    peak = std::max(peak, status.active.memory_bytes);
    ASSERT_LE(status.active.memory_bytes, kCap);
  }
  // 2,000 blocks leak 125 MiB: without swaps the guest would have hit the cap.
  EXPECT_GE(events.Swaps(SwapReason::kThreshold), 1);
  EXPECT_EQ(events.Count(PairEvent::Kind::kBlockFailed), 0);
  EXPECT_LE(peak, kCap);
  // It did get near the swap point (the block that crosses it is swapped out right after it).
  EXPECT_GE(peak, static_cast<uint64_t>(0.85 * kCap));
}

TEST(InstancePairTest, ViewsBlocksAndManualSwapsUnderLoadNeverFailACall) {
  auto module = LoadGuestOrDie("bitcoin_indexer");
  store::testing::TempDir dir;
  auto store = OpenStoreOrDie(dir.path() / "db");
  EventRecorder events;
  InstancePair pair(*module, *store, FastOptions(SwapPolicy::kBlock), &events);
  ASSERT_TRUE(pair.WaitUntilReady(kReady).ok());
  testing::BlockGenerator generator(11);
  ASSERT_TRUE(pair.SubmitBlock(Block(1, generator.Next(1))).ok());

  std::atomic<bool> done{false};
  std::atomic<int> views{0}, view_failures{0}, blocks{1}, block_failures{0}, swaps{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      while (!done.load()) {
        absl::StatusOr<ViewOutcome> view = pair.View("block_summary", std::nullopt, "");
        ++views;
        if (!view.ok() || view->answer.size() != 48) {
          ++view_failures;
          ADD_FAILURE() << "view failed: " << view.status();
        }
      }
    });
  }
  threads.emplace_back([&] {
    for (uint32_t height = 2; !done.load(); ++height) {
      absl::StatusOr<BlockOutcome> outcome =
          pair.SubmitBlock(Block(height, generator.Next(height)));
      ++blocks;
      if (!outcome.ok()) {
        ++block_failures;
        ADD_FAILURE() << "block " << height << " failed: " << outcome.status();
      }
    }
  });
  threads.emplace_back([&] {
    while (!done.load()) {
      if (pair.Swap(absl::Milliseconds(100)).ok()) ++swaps;
      absl::SleepFor(absl::Milliseconds(3));
    }
  });
  absl::SleepFor(absl::Seconds(10));
  done = true;
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(view_failures.load(), 0);
  EXPECT_EQ(block_failures.load(), 0);
  EXPECT_GT(views.load(), 100);
  EXPECT_GT(blocks.load(), 20);
  EXPECT_GT(swaps.load(), 10);
  // Every swap's pause is short: a few pointer moves under the lock.
  for (const PairEvent& event : events.events()) {
    if (event.kind == PairEvent::Kind::kSwap) {
      EXPECT_LT(event.pause, absl::Milliseconds(50));
    }
  }
}

// What a stream's window counts (server/stream_window.h): the instance each pending block holds,
// shared by consecutive blocks under `none`, one per block under `block`, none for a block known
// at once; and whether FinishBlock would wait.
TEST(InstancePairTest, PendingBlocksSayWhenTheyAreFinished) {
  auto module = LoadGuestOrDie("bitcoin_indexer");
  const std::vector<std::string> blocks = testing::FixtureThenGeneratedBlocks(3);
  for (SwapPolicy policy : {SwapPolicy::kNone, SwapPolicy::kBlock}) {
    SCOPED_TRACE(SwapPolicyName(policy));
    store::testing::TempDir dir;
    auto store = OpenStoreOrDie(dir.path() / "db");
    EventRecorder events;
    InstancePair pair(*module, *store, FastOptions(policy), &events);
    ASSERT_TRUE(pair.WaitUntilReady(kReady).ok());
    absl::StatusOr<PendingBlock> first = pair.BeginBlock(Block(1, blocks[0]));
    ASSERT_TRUE(first.ok()) << first.status();
    absl::StatusOr<PendingBlock> second = pair.BeginBlock(Block(2, blocks[1]));
    ASSERT_TRUE(second.ok()) << second.status();
    ASSERT_TRUE(pair.FinishBlock(*second).ok());
    // Settled in order: the first block was settled before the second.
    EXPECT_TRUE(pair.IsFinished(*first));
    EXPECT_TRUE(pair.IsFinished(*second));
    ASSERT_TRUE(pair.FinishBlock(*first).ok());
    EXPECT_EQ(pair.Status().unsettled_instances, 0u);

    // A resubmission is known at once.
    absl::StatusOr<PendingBlock> again = pair.BeginBlock(Block(2, blocks[1]));
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_TRUE(pair.IsFinished(*again));
  }
}

// Holds the pair's settling thread inside the event of block 1's commit until released, so that
// the blocks begun meanwhile stay in flight, unsettled.
class SettleGate : public PairEventSink {
 public:
  void OnPairEvent(const PairEvent& event) override {
    if (event.kind == PairEvent::Kind::kBlockCommitted && event.height == 1) {
      reached_.set_value();
      // Bounded, so that a failed test ends instead of holding the pair's destructor forever.
      released_.get_future().wait_for(std::chrono::seconds(30));
    }
  }
  void WaitUntilHeld() { reached_.get_future().wait(); }
  void Release() { released_.set_value(); }

 private:
  std::promise<void> reached_;
  std::promise<void> released_;
};

TEST(InstancePairTest, UnderBlockBlocksInFlightPastTheLimitGiveTheirInstancesUpButNotTheNewest) {
  auto module = LoadGuestOrDie("bitcoin_indexer");
  const std::vector<std::string> blocks = testing::FixtureThenGeneratedBlocks(5);
  store::testing::TempDir dir;
  auto store = OpenStoreOrDie(dir.path() / "db");
  SettleGate gate;
  PairOptions options = FastOptions(SwapPolicy::kBlock);
  options.max_unsettled_instances = 2;
  InstancePair pair(*module, *store, options, &gate);
  ASSERT_TRUE(pair.WaitUntilReady(kReady).ok());
  std::vector<PendingBlock> pending;
  for (uint32_t height = 1; height <= 5; ++height) {
    absl::StatusOr<PendingBlock> begun = pair.BeginBlock(Block(height, blocks[height - 1]));
    ASSERT_TRUE(begun.ok()) << height << ": " << begun.status();
    pending.push_back(*begun);
    if (height == 1) gate.WaitUntilHeld();  // Block 1 is settling; 2-5 stay in flight.
  }
  // 2 and 5 keep theirs: the oldest in flight settles first, the newest is the active last.
  EXPECT_EQ(pair.Status().unsettled_instances, 2u);
  EXPECT_EQ(pair.Status().unsettled_instances_given_up, 2u);
  gate.Release();
  std::vector<uint64_t> ran_on;
  for (const PendingBlock& block : pending) {
    absl::StatusOr<BlockOutcome> outcome = pair.FinishBlock(block);
    ASSERT_TRUE(outcome.ok()) << block.height() << ": " << outcome.status();
    ran_on.push_back(outcome->generation);
  }
  EXPECT_EQ(std::set<uint64_t>(ran_on.begin(), ran_on.end()).size(), 5u)
      << "every block ran on an instance of its own";
  PairStatus status = pair.Status();
  EXPECT_EQ(status.tip, 5u);
  EXPECT_EQ(status.unsettled_instances, 0u);
  EXPECT_EQ(status.active.generation, ran_on[4]) << "the newest block's instance serves the tip";
  absl::StatusOr<ViewOutcome> at_tip = pair.View("block_summary", std::nullopt, "");
  ASSERT_TRUE(at_tip.ok()) << at_tip.status();
  EXPECT_EQ(at_tip->generation, ran_on[4]);
  // A height whose block gave its instance up is served by a fresh one.
  absl::StatusOr<ViewOutcome> at_three = pair.View("block_summary", 3, "");
  ASSERT_TRUE(at_three.ok()) << at_three.status();
  EXPECT_THAT(ran_on, ::testing::Not(::testing::Contains(at_three->generation)));
}

TEST(InstancePairTest, RunawayWarmIsAbandonedRetriedAndTheActiveKeepsServingUnderThreshold) {
  auto module = LoadGuestOrDie("leaky", 64ull << 20);
  store::testing::TempDir dir;
  auto store = OpenStoreOrDie(dir.path() / "db");
  EventRecorder events;
  PairOptions options = FastOptions(SwapPolicy::kThreshold);
  options.warm_deadline = absl::Milliseconds(300);
  InstancePair pair(*module, *store, options, &events);
  ASSERT_TRUE(pair.WaitUntilReady(kReady).ok());
  ASSERT_TRUE(pair.SubmitBlock(Block(1, "")).ok());  // Promotes the first instance.
  // From now on every warm-up replays a call that never returns (as a log written by an older,
  // buggy build of the guest would).
  ASSERT_TRUE(store->replay_log().Append({"init_runaway", "", std::string(32, '\0')}).ok());
  // Leak 1 MiB per block: warming starts at 70% of 64 MiB, the swap is due from 90% on.
  for (uint32_t height = 2; height <= 59; ++height) {
    absl::StatusOr<BlockOutcome> outcome = pair.SubmitBlock(Block(height, U32Le(1024)));
    ASSERT_TRUE(outcome.ok()) << height << ": " << outcome.status();
  }
  ASSERT_TRUE(events.WaitFor(PairEvent::Kind::kWarmFailed, 2, absl::Seconds(10)));
  PairStatus status = pair.Status();
  EXPECT_EQ(status.standby_state, StandbyState::kFailed);
  EXPECT_THAT(status.standby_failure, HasSubstr("deadline"));
  EXPECT_GE(status.consecutive_warm_failures, 2);
  for (const PairEvent& event : events.events()) {
    if (event.kind == PairEvent::Kind::kWarmFailed) {
      EXPECT_LT(event.duration, options.warm_deadline + absl::Seconds(1));
      EXPECT_GT(event.retry_in, absl::ZeroDuration());
    }
  }
  // The active keeps serving, past the swap point, with the swap visibly due.
  EXPECT_TRUE(pair.View("leaked", std::nullopt, "").ok());
  EXPECT_TRUE(status.swap_due);
  // Recovery: once a warm-up can succeed again, the standby becomes READY and the swap happens.
  ASSERT_TRUE(store->replay_log().Clear().ok());
  ASSERT_TRUE(events.WaitFor(PairEvent::Kind::kWarmReady, 2, absl::Seconds(10)));
  ASSERT_TRUE(pair.SubmitBlock(Block(60, "")).ok());
  EXPECT_GE(events.Swaps(SwapReason::kThreshold), 1);
  EXPECT_FALSE(pair.Status().swap_due);
}

TEST(InstancePairTest, RunawayWarmFailsTheWaitingBlockInBoundedTimeUnderBlockPolicy) {
  auto module = LoadGuestOrDie("leaky");
  store::testing::TempDir dir;
  auto store = OpenStoreOrDie(dir.path() / "db");
  EventRecorder events;
  PairOptions options = FastOptions(SwapPolicy::kBlock);
  options.warm_deadline = absl::Milliseconds(200);
  options.standby_wait = absl::Milliseconds(600);
  options.standby_pool = 1;
  InstancePair pair(*module, *store, options, &events);
  ASSERT_TRUE(pair.WaitUntilReady(kReady).ok());
  ASSERT_TRUE(testing::WaitForReadyStandbys(pair, 1));  // Warmed before the log turns bad.
  ASSERT_TRUE(store->replay_log().Append({"init_runaway", "", std::string(32, '\0')}).ok());
  ASSERT_TRUE(pair.SubmitBlock(Block(1, "")).ok());  // Uses the standby warmed before.
  absl::Time start = absl::Now();
  absl::Status status = pair.SubmitBlock(Block(2, "")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("no ready instance"));
  EXPECT_LT(absl::Now() - start, options.standby_wait + absl::Seconds(1));
  EXPECT_FALSE(store->GetBlock(2).ok());  // Nothing committed.
  // Views at the tip keep working on the active.
  EXPECT_TRUE(pair.View("leaked", std::nullopt, "").ok());
  ASSERT_TRUE(store->replay_log().Clear().ok());
  ASSERT_TRUE(events.WaitFor(PairEvent::Kind::kWarmReady, 2, absl::Seconds(10)));
  absl::StatusOr<BlockOutcome> recovered = pair.SubmitBlock(Block(2, ""));
  EXPECT_TRUE(recovered.ok()) << recovered.status();
}

TEST(InstancePairTest, ReplayDivergenceIsDetectedAndTheStandbyNeverPromoted) {
  auto module = LoadGuestOrDie("init_echo");
  store::testing::TempDir dir;
  auto store = OpenStoreOrDie(dir.path() / "db");
  EventRecorder events;
  InstancePair pair(*module, *store, FastOptions(SwapPolicy::kNone), &events);
  ASSERT_TRUE(pair.WaitUntilReady(kReady).ok());
  ASSERT_TRUE(pair.SubmitBlock(Block(1, "")).ok());
  // The active has now served a block, so this answers 2; a replay on a fresh instance answers 1.
  absl::StatusOr<InitOutcome> init = pair.Initialize("init_nondeterministic", "");
  ASSERT_TRUE(init.ok()) << init.status();
  ASSERT_TRUE(events.WaitFor(PairEvent::Kind::kWarmFailed, 1, absl::Seconds(10)));
  PairStatus status = pair.Status();
  EXPECT_EQ(status.standby_state, StandbyState::kFailed);
  EXPECT_THAT(status.standby_failure,
              HasSubstr("replay diverged at call 1 (init_nondeterministic)"));
  const uint64_t active_generation = status.active.generation;
  absl::Status swap = pair.Swap(absl::Milliseconds(300)).status();
  EXPECT_EQ(swap.code(), absl::StatusCode::kUnavailable) << swap;
  EXPECT_EQ(pair.Status().active.generation, active_generation);
  EXPECT_EQ(events.Swaps(SwapReason::kManual), 0);
}

TEST(InstancePairTest, ResettingTheReplayLogEndsADivergenceAndKeepsTheCallsBeforeIt) {
  auto module = LoadGuestOrDie("init_echo");
  store::testing::TempDir dir;
  auto store = OpenStoreOrDie(dir.path() / "db");
  EventRecorder events;
  PairOptions options = FastOptions(SwapPolicy::kBlock);
  options.standby_wait = absl::Milliseconds(500);
  InstancePair pair(*module, *store, options, &events);
  ASSERT_TRUE(pair.WaitUntilReady(kReady).ok());
  ASSERT_TRUE(pair.SubmitBlock(Block(1, "")).ok());
  ASSERT_TRUE(pair.Initialize("init_config", "kept").ok());
  // The active has served a block and an init call: this answers 3, a replay answers 2.
  ASSERT_TRUE(pair.Initialize("init_nondeterministic", "").ok());
  ASSERT_TRUE(events.WaitFor(PairEvent::Kind::kWarmFailed, 1, absl::Seconds(10)));
  // Under `block` every block needs a fresh instance, and none can be warmed.
  absl::StatusOr<BlockOutcome> stuck = pair.SubmitBlock(Block(2, ""));
  EXPECT_EQ(stuck.status().code(), absl::StatusCode::kUnavailable) << stuck.status();
  EXPECT_THAT(stuck.status().message(), HasSubstr("replay diverged"));

  EXPECT_EQ(pair.ResetReplayLog(3).status().code(), absl::StatusCode::kInvalidArgument);
  const uint64_t ran_the_dropped_call = pair.Status().active.generation;
  absl::StatusOr<ReplayLogResetOutcome> reset = pair.ResetReplayLog(1);
  ASSERT_TRUE(reset.ok()) << reset.status();
  // The active's memory holds the dropped call: it never serves again.
  EXPECT_NE(pair.Status().active.generation, ran_the_dropped_call);
  EXPECT_EQ(reset->dropped_calls, 1u);
  EXPECT_EQ(reset->replay_log_calls, 1u);
  ASSERT_EQ(events.Count(PairEvent::Kind::kReplayLogReset), 1);  // The refused one is none.
  for (const PairEvent& event : events.events()) {
    if (event.kind != PairEvent::Kind::kReplayLogReset) continue;
    EXPECT_EQ(event.replay_log_calls, 1u);
  }

  absl::StatusOr<BlockOutcome> recovered = pair.SubmitBlock(Block(2, ""));
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  EXPECT_NE(pair.Status().standby_state, StandbyState::kFailed);
  // The call before the divergence is still replayed into every new instance.
  absl::StatusOr<ViewOutcome> config = pair.View("config", std::nullopt, "");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->answer, "kept");
}

TEST(InstancePairTest, InitStateIsReplayedAfterARestart) {
  auto module = LoadGuestOrDie("init_echo");
  store::testing::TempDir dir;
  {
    auto store = OpenStoreOrDie(dir.path() / "db");
    InstancePair pair(*module, *store, FastOptions(SwapPolicy::kBlock), nullptr);
    ASSERT_TRUE(pair.WaitUntilReady(kReady).ok());
    absl::StatusOr<InitOutcome> init = pair.Initialize("init_config", "network=testnet");
    ASSERT_TRUE(init.ok()) << init.status();
    EXPECT_EQ(init->answer, "tentset=krowten");
    EXPECT_EQ(init->replay_log_calls, 1u);
    ASSERT_TRUE(pair.SubmitBlock(Block(1, "")).ok());
  }
  auto store = OpenStoreOrDie(dir.path() / "db");
  InstancePair pair(*module, *store, FastOptions(SwapPolicy::kBlock), nullptr);
  ASSERT_TRUE(pair.WaitUntilReady(kReady).ok());
  absl::StatusOr<ViewOutcome> view = pair.View("config", std::nullopt, "");
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->answer, "network=testnet");
  // The block written after the init call carries it too.
  EXPECT_EQ(store->Get("config", 1).value(), "network=testnet");
  // A block after the restart runs on an instance warmed with the replayed log.
  ASSERT_TRUE(pair.SubmitBlock(Block(2, "")).ok());
  EXPECT_EQ(store->Get("config", 2).value(), "network=testnet");
}

std::string CachingPair(absl::string_view key, absl::string_view value) {
  return U32Le(key.size()) + std::string(key) + U32Le(value.size()) + std::string(value);
}

TEST(InstancePairTest, ViewsAreBoundToTheirHeightWhileBlocksArrive) {
  auto module = LoadGuestOrDie("caching");
  for (SwapPolicy policy : {SwapPolicy::kBlock, SwapPolicy::kNone}) {
    SCOPED_TRACE(SwapPolicyName(policy));
    store::testing::TempDir dir;
    auto store = OpenStoreOrDie(dir.path() / "db");
    InstancePair pair(*module, *store, FastOptions(policy), nullptr);
    ASSERT_TRUE(pair.WaitUntilReady(kReady).ok());
    std::minstd_rand rng(tandem::testing::TestSeed(20261122));
    for (uint32_t height = 1; height <= 30; ++height) {
      ASSERT_TRUE(
          pair.SubmitBlock(Block(height, CachingPair("a", absl::StrCat("v", height)))).ok());
      // Alternate: the tip, an old height, the tip again, another old height (any of 1..tip).
      const uint32_t any_height = std::uniform_int_distribution<uint32_t>(1, height)(rng);
      const uint32_t asked[] = {height, height / 2 + 1, height, any_height};
      for (uint32_t at : asked) {
        absl::StatusOr<ViewOutcome> view = pair.View("get", at, "a");
        ASSERT_TRUE(view.ok()) << view.status();
        EXPECT_EQ(view->height, at);
        EXPECT_EQ(view->answer, absl::StrCat("v", at))
            << "view at " << at << " with tip " << height;
      }
      absl::StatusOr<ViewOutcome> latest = pair.View("get", std::nullopt, "a");
      ASSERT_TRUE(latest.ok());
      EXPECT_EQ(latest->height, height);
      EXPECT_EQ(latest->answer, absl::StrCat("v", height));
    }
  }
}

TEST(InstancePairTest, RollbackReplacesEveryInstanceThatSawAnUndoneHeight) {
  auto module = LoadGuestOrDie("caching");
  store::testing::TempDir dir;
  auto store = OpenStoreOrDie(dir.path() / "db");
  EventRecorder events;
  InstancePair pair(*module, *store, FastOptions(SwapPolicy::kNone), &events);
  ASSERT_TRUE(pair.WaitUntilReady(kReady).ok());
  for (uint32_t height = 1; height <= 5; ++height) {
    ASSERT_TRUE(pair.SubmitBlock(Block(height, CachingPair("a", absl::StrCat("v", height)))).ok());
  }
  ASSERT_EQ(pair.View("get", std::nullopt, "a")->answer, "v5");  // Now cached by the active.
  ASSERT_EQ(pair.View("get", 4, "a")->answer, "v4");             // And by an instance for 4.
  ASSERT_TRUE(pair.Rollback(3).ok());
  EXPECT_EQ(pair.Status().tip, 3u);
  absl::StatusOr<ViewOutcome> view = pair.View("get", std::nullopt, "a");
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->height, 3u);
  EXPECT_EQ(view->answer, "v3");
  EXPECT_EQ(pair.View("get", 4, "a").status().code(), absl::StatusCode::kNotFound);
  // New blocks after the rollback see the rolled-back state, not the undone one.
  ASSERT_TRUE(pair.SubmitBlock(Block(4, CachingPair("a", "w4"))).ok());
  EXPECT_EQ(pair.View("get", 4, "a")->answer, "w4");
  EXPECT_EQ(pair.View("get", std::nullopt, "a")->answer, "w4");
}

TEST(InstancePairTest, BlockChecksComeBeforeAnyGuestRuns) {
  auto module = LoadGuestOrDie("leaky");
  store::testing::TempDir dir;
  auto store = OpenStoreOrDie(dir.path() / "db");
  EventRecorder events;
  InstancePair pair(*module, *store, FastOptions(SwapPolicy::kBlock), &events);
  ASSERT_TRUE(pair.WaitUntilReady(kReady).ok());
  absl::StatusOr<BlockOutcome> first = pair.SubmitBlock(Block(10, "a"));
  ASSERT_TRUE(first.ok()) << first.status();
  const int swaps = events.Swaps(SwapReason::kBlock);

  EXPECT_EQ(pair.SubmitBlock(Block(12, "b")).status().code(),
            absl::StatusCode::kFailedPrecondition);
  BlockSubmission wrong_parent = Block(11, "b");
  wrong_parent.prev_hash = std::string(32, 'x');
  absl::Status parent = pair.SubmitBlock(wrong_parent).status();
  EXPECT_EQ(parent.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(parent.message()), HasSubstr("parent hash mismatch"));
  BlockSubmission bad_hash = Block(11, "b");
  bad_hash.hash = "short";
  EXPECT_EQ(pair.SubmitBlock(bad_hash).status().code(), absl::StatusCode::kInvalidArgument);
  // Resubmitting the committed block is idempotent; another block at its height is refused.
  absl::StatusOr<BlockOutcome> again = pair.SubmitBlock(Block(10, "a"));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->already_committed);
  EXPECT_EQ(again->record, first->record);
  EXPECT_EQ(pair.SubmitBlock(Block(10, "other")).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(pair.SubmitBlock(Block(9, "a")).status().code(), absl::StatusCode::kFailedPrecondition);
  // None of these ran a guest.
  EXPECT_EQ(events.Swaps(SwapReason::kBlock), swaps);
  EXPECT_EQ(events.Count(PairEvent::Kind::kBlockFailed), 0);
}

TEST(InstancePairTest, FailedBlockCommitsNothingAndTheNextGoodBlockDoes) {
  auto module = LoadGuestOrDie("reads_and_writes");
  for (SwapPolicy policy :
       {SwapPolicy::kBlock, SwapPolicy::kThreshold, SwapPolicy::kNone, SwapPolicy::kSync}) {
    SCOPED_TRACE(SwapPolicyName(policy));
    store::testing::TempDir dir;
    auto store = OpenStoreOrDie(dir.path() / "db");
    EventRecorder events;
    InstancePair pair(*module, *store, FastOptions(policy), &events);
    ASSERT_TRUE(pair.WaitUntilReady(kReady).ok());
    // Op 1 writes "k" and flushes it at once; op 5 then fails the block on a bad pointer.
    std::string write_then_fail = std::string("\x01", 1) + U32Le(1) + "k" + U32Le(1) + "v" +
                                  std::string("\x05", 1) + U32Le(0) + U32Le(0);
    absl::Status failed = pair.SubmitBlock(Block(1, write_then_fail)).status();
    EXPECT_EQ(failed.code(), absl::StatusCode::kAborted) << failed;
    EXPECT_FALSE(store->GetTip().has_value());
    EXPECT_FALSE(store->Get("k", 1).value().has_value());
    std::string good = std::string("\x01", 1) + U32Le(1) + "k" + U32Le(2) + "ok";
    absl::StatusOr<BlockOutcome> next = pair.SubmitBlock(Block(1, good));
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_EQ(store->Get("k", 1).value(), "ok");
    EXPECT_EQ(events.Count(PairEvent::Kind::kBlockFailed), 1);
  }
}

class FailingViewsTest : public ::testing::TestWithParam<SwapPolicy> {};

// Clients whose views abort (the indexer aborts on a request shorter than an outpoint) fail the
// instance they run on, again and again, while other clients submit blocks and ask views. No call
// of the honest clients may fail for it: a call queued on an instance another call failed runs on
// a healthy one instead. Each failed instance is reported once.
TEST_P(FailingViewsTest, ViewsThatFailTheirInstanceNeverFailAnotherCall) {
  auto module = LoadGuestOrDie("bitcoin_indexer");
  store::testing::TempDir dir;
  auto store = OpenStoreOrDie(dir.path() / "db");
  EventRecorder events;
  InstancePair pair(*module, *store, FastOptions(GetParam()), &events);
  ASSERT_TRUE(pair.WaitUntilReady(kReady).ok());
  testing::BlockGenerator generator(5);
  ASSERT_TRUE(pair.SubmitBlock(Block(1, generator.Next(1))).ok());

  std::atomic<bool> done{false};
  std::atomic<int> hostile{0}, honest_views{0}, blocks{0}, status_checks{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&] {
      while (!done.load()) {
        absl::Status status = pair.View("outpoint", std::nullopt, "abc").status();
        ++hostile;
        // The caller's own view fails for its own reason, every time.
        EXPECT_EQ(status.code(), absl::StatusCode::kAborted) << status;
        EXPECT_EQ(util::CauseOf(status), util::FailureCause::kGuestAbort) << status;
      }
    });
  }
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&] {
      while (!done.load()) {
        absl::StatusOr<ViewOutcome> view = pair.View("block_summary", std::nullopt, "");
        ++honest_views;
        EXPECT_TRUE(view.ok()) << view.status();
      }
    });
  }
  threads.emplace_back([&] {
    for (uint32_t height = 2; !done.load(); ++height) {
      absl::StatusOr<BlockOutcome> outcome =
          pair.SubmitBlock(Block(height, generator.Next(height)));
      ++blocks;
      EXPECT_TRUE(outcome.ok()) << "block " << height << ": " << outcome.status();
    }
  });
  threads.emplace_back([&] {
    while (!done.load()) {
      PairStatus status = pair.Status();
      if (status.standbys_ready > 0) {
        EXPECT_TRUE(status.active.present) << "no active while a standby is READY";
      }
      ++status_checks;
    }
  });
  absl::SleepFor(absl::Seconds(4));
  done = true;
  for (std::thread& thread : threads) thread.join();
  EXPECT_GT(hostile.load(), 50);
  EXPECT_GT(honest_views.load(), 50);
  EXPECT_GT(blocks.load(), 10);
  std::map<uint64_t, int> failures_by_generation;
  for (const PairEvent& event : events.events()) {
    if (event.kind == PairEvent::Kind::kInstanceFailed) ++failures_by_generation[event.generation];
  }
  EXPECT_GT(failures_by_generation.size(), 10u);
  for (const auto& [generation, count] : failures_by_generation) {
    EXPECT_EQ(count, 1) << "generation " << generation << " was reported " << count << " times";
  }
}

INSTANTIATE_TEST_SUITE_P(Policies, FailingViewsTest,
                         ::testing::Values(SwapPolicy::kBlock, SwapPolicy::kNone,
                                           SwapPolicy::kThreshold, SwapPolicy::kSync),
                         [](const ::testing::TestParamInfo<SwapPolicy>& info) {
                           return std::string(SwapPolicyName(info.param));
                         });

}  // namespace
}  // namespace tandem::proxy
