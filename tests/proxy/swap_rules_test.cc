// Tests for what each swap policy decides.
#include "proxy/swap_rules.h"

#include "gtest/gtest.h"

namespace tandem::proxy {
namespace {

SwapRulesOptions Options() {
  SwapRulesOptions options;
  options.standby_pool = 3;
  options.warm_at = 0.7;
  options.swap_at = 0.9;
  return options;
}

TEST(SwapRulesTest, BlockRunsEveryBlockFreshAndPublishesIt) {
  auto rules = MakeSwapRules(SwapPolicy::kBlock, Options());
  EXPECT_EQ(rules->policy(), SwapPolicy::kBlock);
  EXPECT_TRUE(rules->BlocksRunOnFreshInstance());
  EXPECT_EQ(rules->AfterBlockCommitted(), AfterBlock::kPublish);
  EXPECT_EQ(rules->StandbysWanted(0.0), 3);
  EXPECT_EQ(rules->StandbysWanted(0.95), 3);
  EXPECT_FALSE(rules->SwapDue(0.99));
}

TEST(SwapRulesTest, ThresholdWarmsFromWarmAtAndSwapsFromSwapAt) {
  auto rules = MakeSwapRules(SwapPolicy::kThreshold, Options());
  EXPECT_FALSE(rules->BlocksRunOnFreshInstance());
  EXPECT_EQ(rules->AfterBlockCommitted(), AfterBlock::kKeepActive);
  EXPECT_EQ(rules->StandbysWanted(0.69), 0);
  EXPECT_EQ(rules->StandbysWanted(0.70), 3);
  EXPECT_FALSE(rules->SwapDue(0.89));
  EXPECT_TRUE(rules->SwapDue(0.90));
}

TEST(SwapRulesTest, NoneKeepsStandbysForFailuresAndNeverSwapsByItself) {
  auto rules = MakeSwapRules(SwapPolicy::kNone, Options());
  EXPECT_FALSE(rules->BlocksRunOnFreshInstance());
  EXPECT_EQ(rules->AfterBlockCommitted(), AfterBlock::kKeepActive);
  EXPECT_EQ(rules->StandbysWanted(0.0), 3);
  EXPECT_FALSE(rules->SwapDue(1.0));
}

TEST(SwapRulesTest, SyncReplacesOnTheCriticalPathAndKeepsNoStandby) {
  auto rules = MakeSwapRules(SwapPolicy::kSync, Options());
  EXPECT_FALSE(rules->BlocksRunOnFreshInstance());
  EXPECT_EQ(rules->AfterBlockCommitted(), AfterBlock::kReplaceNow);
  EXPECT_EQ(rules->StandbysWanted(0.99), 0);
  EXPECT_FALSE(rules->SwapDue(1.0));
}

}  // namespace
}  // namespace tandem::proxy
