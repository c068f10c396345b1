// Tests for the per-connection budget of instance failures: burst, refill, separate peers,
// forgetting the least recently seen. Time is passed in; nothing sleeps.
#include "server/peer_budget.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem::server {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'000'000);

PeerBudgetOptions Options(double burst, double refill, size_t max_peers = 100) {
  PeerBudgetOptions options;
  options.burst = burst;
  options.refill_per_second = refill;
  options.max_peers = max_peers;
  return options;
}

TEST(PeerBudgetTest, APeerThatNeverFailsAnInstanceIsNeverRefused) {
  PeerBudget budget(Options(2, 1));
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(budget.Admit("honest", kStart + absl::Milliseconds(i), nullptr).ok());
  }
  EXPECT_EQ(budget.refusals(), 0u);
}

TEST(PeerBudgetTest, TheBurstIsSpentThenRefusedUntilItRefills) {
  PeerBudget budget(Options(3, 2));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(budget.Admit("flood", kStart, nullptr).ok()) << i;
    budget.Charge("flood", kStart);
  }
  absl::Duration retry_in;
  absl::Status refused = budget.Admit("flood", kStart, &retry_in);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr("500ms"));
  EXPECT_EQ(retry_in, absl::Milliseconds(500));  // One token at 2 per second.
  EXPECT_FALSE(budget.Admit("flood", kStart + absl::Milliseconds(499), nullptr).ok());
  EXPECT_TRUE(budget.Admit("flood", kStart + absl::Milliseconds(500), nullptr).ok());
  EXPECT_EQ(budget.refusals(), 2u);
}

TEST(PeerBudgetTest, PeersHaveBudgetsOfTheirOwn) {
  PeerBudget budget(Options(1, 0.1));
  budget.Charge("ipv4:127.0.0.1:1000", kStart);
  EXPECT_FALSE(budget.Admit("ipv4:127.0.0.1:1000", kStart, nullptr).ok());
  EXPECT_TRUE(budget.Admit("ipv4:127.0.0.1:2000", kStart, nullptr).ok());
}

TEST(PeerBudgetTest, FailuresAdmittedTogetherStillCountAndDelayTheRefill) {
  PeerBudget budget(Options(2, 1));
  // Four calls admitted at once all fail their instances: the debt outlasts the burst.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(i >= 2 || budget.Admit("p", kStart, nullptr).ok());
  for (int i = 0; i < 4; ++i) budget.Charge("p", kStart);
  EXPECT_FALSE(budget.Admit("p", kStart + absl::Seconds(2), nullptr).ok());
  EXPECT_TRUE(budget.Admit("p", kStart + absl::Seconds(3), nullptr).ok());
}

TEST(PeerBudgetTest, TheLeastRecentlySeenPeerIsForgottenPastTheCap) {
  PeerBudget budget(Options(1, 0.001, /*max_peers=*/2));
  budget.Charge("a", kStart);
  budget.Charge("b", kStart);
  EXPECT_FALSE(budget.Admit("a", kStart, nullptr).ok());  // "a" is now the most recent.
  budget.Charge("c", kStart);                             // Forgets "b".
  EXPECT_TRUE(budget.Admit("b", kStart, nullptr).ok());   // Back with a full budget.
  EXPECT_FALSE(budget.Admit("c", kStart, nullptr).ok());
}

}  // namespace
}  // namespace tandem::server
