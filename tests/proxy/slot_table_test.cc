// Tests for the slot table's invariants: vacancies filled at once, blocks before views, failures
// reported once, stale warm-ups discarded, backoff after failures, threshold swaps when due.
#include "proxy/slot_table.h"

#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/proxy/slot_test_support.h"
#include "util/failure_cause.h"

namespace tandem::proxy {
namespace {

constexpr absl::Duration kWait = absl::Seconds(10);

int CountKind(const Events& events, PairEvent::Kind kind) {
  int count = 0;
  for (const PairEvent& event : events) count += event.kind == kind ? 1 : 0;
  return count;
}

// Waits up to 10 s for `predicate` over the table's snapshot.
template <typename Predicate>
bool WaitForSnapshot(const SlotTable& table, Predicate predicate) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!predicate(table.Snapshot())) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

class SlotTableTest : public ::testing::Test {
 protected:
  SlotTableOptions Options() {
    SlotTableOptions options;
    options.historical_instances = 2;
    options.backoff = {absl::Milliseconds(50), absl::Milliseconds(400)};
    options.random_seed = 3;
    options.memory_limit_bytes = 1ull << 30;
    return options;
  }
  // Delivers `lease` as the standby of a fresh warm ticket.
  void Deliver(SlotTable& table, Lease lease, Events& events) {
    std::optional<WarmTicket> ticket = table.AwaitWarmNeeded(events);
    ASSERT_TRUE(ticket.has_value());
    table.DeliverWarmed(*ticket, std::move(lease), absl::Milliseconds(1), events);
  }

  testing::LeaseMaker leases_;
  std::unique_ptr<SwapRules> block_rules_ = MakeSwapRules(SwapPolicy::kBlock, {});
  std::unique_ptr<SwapRules> sync_rules_ = MakeSwapRules(SwapPolicy::kSync, {});
};

TEST_F(SlotTableTest, WantedCountsThePoolTheVacancyAndNothingElse) {
  SwapRulesOptions rules_options;
  rules_options.standby_pool = 2;
  auto rules = MakeSwapRules(SwapPolicy::kNone, rules_options);
  SlotTable table(*rules, Options(), std::nullopt);
  EXPECT_EQ(table.Snapshot().wanted, 3);
  Events events;
  Deliver(table, leases_.Make(1), events);
  EXPECT_EQ(table.Snapshot().wanted, 2);
  EXPECT_NE(table.Snapshot().active, nullptr);
}

TEST_F(SlotTableTest, AnEmptyActiveSlotIsFilledByTheFirstReadyStandby) {
  SlotTable table(*block_rules_, Options(), 4);
  Events events;
  Lease first = leases_.Make(1);
  Deliver(table, first, events);
  SlotsSnapshot snapshot = table.Snapshot();
  EXPECT_EQ(snapshot.active, first);
  EXPECT_EQ(snapshot.ready, 0);
  EXPECT_EQ(table.ForHeight(4, events), first);  // Bound to the tip when published.
  EXPECT_EQ(CountKind(events, PairEvent::Kind::kSwap), 1);
}

TEST_F(SlotTableTest, StandbysThatFinishOutOfOrderServeOldestFirst) {
  SwapRulesOptions rules_options;
  rules_options.standby_pool = 2;
  auto rules = MakeSwapRules(SwapPolicy::kNone, rules_options);
  SlotTable table(*rules, Options(), 4);
  Events events;
  Deliver(table, leases_.Make(1), events);  // The active.
  std::optional<WarmTicket> older = table.AwaitWarmNeeded(events);
  std::optional<WarmTicket> younger = table.AwaitWarmNeeded(events);
  ASSERT_TRUE(older.has_value() && younger.has_value());
  Lease second = leases_.Make(2);
  Lease third = leases_.Make(3);
  table.DeliverWarmed(*younger, third, absl::Milliseconds(1), events);
  table.DeliverWarmed(*older, second, absl::Milliseconds(1), events);
  EXPECT_EQ(table.Snapshot().first_ready, second);
  absl::StatusOr<Lease> taken = table.TakeStandby(Claim::kManualSwap, absl::Now() + kWait, events);
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_EQ(*taken, second);
}

TEST_F(SlotTableTest, ABlockSwapKeepsThePreviousActiveForItsHeightOnly) {
  SlotTable table(*block_rules_, Options(), 1);
  Events events;
  Lease one = leases_.Make(1);
  Deliver(table, one, events);
  Lease two = leases_.Make(2);
  Deliver(table, two, events);
  absl::StatusOr<Lease> taken = table.TakeStandby(Claim::kBlock, absl::Now(), events);
  ASSERT_TRUE(taken.ok()) << taken.status();
  ASSERT_EQ(*taken, two);
  table.BlockCommitted(two, 2);
  table.Publish(two, SwapReason::kBlock, absl::Now(), events);
  EXPECT_EQ(table.ForHeight(2, events), two);
  EXPECT_EQ(table.ForHeight(1, events), one);
  EXPECT_EQ(table.ForHeight(3, events), nullptr);
  EXPECT_EQ(table.Snapshot().historical_instances, 1);
}

TEST_F(SlotTableTest, AFailureIsReportedOnceAndAReadyStandbyTakesOverAtOnce) {
  SlotTable table(*block_rules_, Options(), 1);
  Events events;
  Lease active = leases_.Make(1);
  Deliver(table, active, events);
  Lease standby = leases_.Make(2);
  Deliver(table, standby, events);
  events.clear();
  const absl::Status cause =
      util::CausedError(absl::StatusCode::kAborted, util::FailureCause::kGuestAbort, "boom");
  table.RetireFailed(active, cause, CallKind::kView, events);
  table.RetireFailed(active, cause, CallKind::kView, events);
  table.RetireFailed(active, cause, CallKind::kBlock, events);
  ASSERT_EQ(CountKind(events, PairEvent::Kind::kInstanceFailed), 1);
  const PairEvent& failed = events.front();
  EXPECT_EQ(failed.call, CallKind::kView);
  EXPECT_EQ(failed.failure, util::FailureCause::kGuestAbort);
  EXPECT_EQ(failed.code, absl::StatusCode::kAborted);
  EXPECT_EQ(table.Snapshot().active, standby);
  EXPECT_EQ(CountKind(events, PairEvent::Kind::kSwap), 1);
}

TEST_F(SlotTableTest, BlocksTakeStandbysBeforeViews) {
  SlotTable table(*sync_rules_, Options(), 1);  // Wants no standby of its own.
  Events events;
  Deliver(table, leases_.Make(1), events);  // The active.
  Lease for_view;
  Lease for_block;
  std::thread view([&] {
    Events own;
    absl::StatusOr<Lease> lease = table.TakeStandby(Claim::kView, absl::Now() + kWait, own);
    ASSERT_TRUE(lease.ok()) << lease.status();
    for_view = *lease;
  });
  ASSERT_TRUE(WaitForSnapshot(table, [](const SlotsSnapshot& s) { return s.wanted == 1; }));
  std::thread block([&] {
    Events own;
    absl::StatusOr<Lease> lease = table.TakeStandby(Claim::kBlock, absl::Now() + kWait, own);
    ASSERT_TRUE(lease.ok()) << lease.status();
    for_block = *lease;
  });
  ASSERT_TRUE(WaitForSnapshot(table, [](const SlotsSnapshot& s) { return s.wanted == 2; }));
  Lease first = leases_.Make(2);
  Deliver(table, first, events);
  block.join();
  EXPECT_EQ(for_block, first);
  Lease second = leases_.Make(3);
  Deliver(table, second, events);
  view.join();
  EXPECT_EQ(for_view, second);
}

TEST_F(SlotTableTest, ViewsPastTheWaitingLimitAreRefusedAtOnce) {
  SlotTableOptions options = Options();
  options.max_waiting_views = 1;
  SlotTable table(*sync_rules_, options, 1);
  Events events;
  Deliver(table, leases_.Make(1), events);
  std::thread waiting([&] {
    Events own;
    EXPECT_FALSE(table.TakeStandby(Claim::kView, absl::Now() + absl::Milliseconds(300), own).ok());
  });
  ASSERT_TRUE(WaitForSnapshot(table, [](const SlotsSnapshot& s) { return s.wanted == 1; }));
  absl::StatusOr<Lease> refused = table.TakeStandby(Claim::kView, absl::Now() + kWait, events);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
  waiting.join();
}

TEST_F(SlotTableTest, NoStandbyWithinTheWaitIsUnavailableWithItsCause) {
  SlotTable table(*sync_rules_, Options(), 1);
  Events events;
  absl::StatusOr<Lease> none =
      table.TakeStandby(Claim::kBlock, absl::Now() + absl::Milliseconds(20), events);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(util::CauseOf(none.status()), util::FailureCause::kNoReadyInstance);
}

TEST_F(SlotTableTest, AnInitCallDiscardsReadyStandbysAndWarmUpsStartedBeforeIt) {
  SlotTable table(*block_rules_, Options(), 1);
  Events events;
  Deliver(table, leases_.Make(1), events);  // The active.
  Deliver(table, leases_.Make(2), events);  // READY.
  std::optional<WarmTicket> before = table.AwaitWarmNeeded(events);
  ASSERT_TRUE(before.has_value());
  events.clear();
  table.ReplayLogChanged("an init call", events);
  EXPECT_EQ(table.Snapshot().ready, 0);
  EXPECT_EQ(CountKind(events, PairEvent::Kind::kStandbyDiscarded), 1);
  table.DeliverWarmed(*before, leases_.Make(3), absl::Milliseconds(1), events);
  EXPECT_EQ(table.Snapshot().ready, 0);
  EXPECT_EQ(CountKind(events, PairEvent::Kind::kStandbyDiscarded), 2);
}

// Two warm-ups in flight across an init call: one replayed the new log and diverged, the other
// had read the log before the call and succeeded. The stale success is discarded and must not
// hide the divergence (InstancePairTest.ReplayDivergence... saw an empty failure this way).
TEST_F(SlotTableTest, AStaleWarmUpsSuccessLeavesACurrentFailureStanding) {
  SlotTable table(*block_rules_, Options(), 1);
  Events events;
  Deliver(table, leases_.Make(1), events);  // The active.
  std::optional<WarmTicket> replayed_new_log = table.AwaitWarmNeeded(events);
  std::optional<WarmTicket> read_old_log = table.AwaitWarmNeeded(events);
  ASSERT_TRUE(replayed_new_log.has_value());
  ASSERT_TRUE(read_old_log.has_value());
  table.ReplayLogChanged("an init call", events);
  table.DeliverWarmed(*replayed_new_log,
                      util::CausedError(absl::StatusCode::kAborted,
                                        util::FailureCause::kReplayDiverged, "replay diverged"),
                      absl::Milliseconds(1), events);
  events.clear();
  table.DeliverWarmed(*read_old_log, leases_.Make(3), absl::Milliseconds(1), events);
  EXPECT_EQ(CountKind(events, PairEvent::Kind::kStandbyDiscarded), 1);
  SlotsSnapshot snapshot = table.Snapshot();
  EXPECT_EQ(snapshot.ready, 0);
  EXPECT_EQ(snapshot.standby_state, StandbyState::kFailed);
  EXPECT_EQ(snapshot.consecutive_warm_failures, 1);
  EXPECT_THAT(snapshot.last_warm_failure, ::testing::HasSubstr("replay diverged"));
}

TEST_F(SlotTableTest, AFailedWarmUpIsRetriedOnlyAfterItsBackoff) {
  SlotTable table(*block_rules_, Options(), std::nullopt);
  Events events;
  std::optional<WarmTicket> ticket = table.AwaitWarmNeeded(events);
  ASSERT_TRUE(ticket.has_value());
  const absl::Time failed_at = absl::Now();
  table.DeliverWarmed(*ticket,
                      util::CausedError(absl::StatusCode::kDeadlineExceeded,
                                        util::FailureCause::kDeadline, "stuck"),
                      absl::Milliseconds(1), events);
  SlotsSnapshot snapshot = table.Snapshot();
  EXPECT_EQ(snapshot.standby_state, StandbyState::kFailed);
  EXPECT_EQ(snapshot.consecutive_warm_failures, 1);
  ASSERT_EQ(CountKind(events, PairEvent::Kind::kWarmFailed), 1);
  const absl::Duration retry_in = events.back().retry_in;
  EXPECT_GE(retry_in, absl::Milliseconds(37));  // 50 ms -25%.
  EXPECT_LE(retry_in, absl::Milliseconds(63));
  ASSERT_TRUE(table.AwaitWarmNeeded(events).has_value());
  EXPECT_GE(absl::Now() - failed_at, retry_in);
}

TEST_F(SlotTableTest, ADueThresholdSwapHappensAsSoonAsAStandbyIsReady) {
  SwapRulesOptions rules_options;
  rules_options.standby_pool = 1;
  auto rules = MakeSwapRules(SwapPolicy::kThreshold, rules_options);
  SlotTableOptions options = Options();
  options.memory_limit_bytes = 65536;  // The minimal guest's one page: a ratio of 1.
  SlotTable table(*rules, options, 1);
  Events events;
  Lease active = leases_.Make(1);
  Deliver(table, active, events);
  table.AfterCall(active, events);
  EXPECT_TRUE(table.Snapshot().swap_due);
  EXPECT_EQ(CountKind(events, PairEvent::Kind::kSwapDelayed), 1);
  Lease next = leases_.Make(2);
  Deliver(table, next, events);
  EXPECT_EQ(table.Snapshot().active, next);
  EXPECT_FALSE(table.Snapshot().swap_due);
}

TEST_F(SlotTableTest, ARollbackRetiresTheActiveAndKeptInstancesAboveTheNewTip) {
  SlotTable table(*block_rules_, Options(), 1);
  Events events;
  Lease one = leases_.Make(1);
  Deliver(table, one, events);
  Lease two = leases_.Make(2);
  Deliver(table, two, events);
  ASSERT_TRUE(table.TakeStandby(Claim::kBlock, absl::Now(), events).ok());
  table.BlockCommitted(two, 2);
  table.Publish(two, SwapReason::kBlock, absl::Now(), events);
  table.RolledBack(1, events);
  EXPECT_EQ(table.Snapshot().active, nullptr);
  EXPECT_EQ(table.ForHeight(1, events), one);
  EXPECT_EQ(table.Snapshot().tip, 1u);
}

}  // namespace
}  // namespace tandem::proxy
