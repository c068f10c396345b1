// The commit pipeline over a real store: blocks are settled once each, in the order they were
// queued, with what the store says about them; waits end at their deadlines.
#include "proxy/commit_pipeline.h"

#include <atomic>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/state_root.h"
#include "tests/proxy/pair_test_support.h"
#include "util/mutex.h"

namespace tandem::proxy {
namespace {

using ::testing::HasSubstr;

store::BlockCommit Commit(uint32_t height) {
  store::BlockCommit commit;
  commit.height = height;
  commit.hash = store::Sha256(absl::StrCat("block ", height));
  commit.writes = {{"key", absl::StrCat("value at ", height)}};
  return commit;
}

TEST(CommitPipelineTest, SettlesEveryBlockOnceInQueueOrderWithTheStoresOutcome) {
  store::testing::TempDir dir;
  std::unique_ptr<store::BlockStore> store = testing::OpenStoreOrDie(dir.path() / "db");
  ASSERT_NE(store, nullptr);
  util::Mutex mu;
  std::vector<uint32_t> settled;  // Guarded by mu.
  CommitPipeline pipeline(
      *store, [&](const InFlightBlock& block, const absl::StatusOr<store::BlockRecord>& durable) {
        util::MutexLock lock(&mu);
        settled.push_back(block.height);
        // What the store reports is durable by now: the tip has reached it.
        EXPECT_TRUE(durable.ok()) << durable.status();
        EXPECT_GE(store->GetTip()->height, block.height);
        return absl::OkStatus();
      });
  EXPECT_EQ(pipeline.Last(), std::nullopt);

  std::vector<std::shared_ptr<CommitPipeline::Ticket>> tickets;
  for (uint32_t height = 1; height <= 50; ++height) {
    store::BlockCommit commit = Commit(height);
    const std::string hash = commit.hash;
    ASSERT_TRUE(store->QueueCommit(std::move(commit)).ok());
    tickets.push_back(pipeline.Add(InFlightBlock{height, hash, 0, absl::Now()}));
  }
  for (const auto& ticket : tickets) {
    absl::StatusOr<CommitPipeline::Settled> outcome =
        pipeline.Await(*ticket, absl::Now() + absl::Seconds(30));
    ASSERT_TRUE(outcome.ok()) << outcome.status();
    EXPECT_EQ(outcome->record.height, ticket->block().height);
    EXPECT_EQ(outcome->record.hash, ticket->block().hash);
  }
  ASSERT_TRUE(pipeline.Drain(absl::Now() + absl::Seconds(30)).ok());
  EXPECT_EQ(pipeline.Last(), std::nullopt);
  util::MutexLock lock(&mu);
  ASSERT_EQ(settled.size(), 50u);
  for (uint32_t i = 0; i < settled.size(); ++i) EXPECT_EQ(settled[i], i + 1);
}

TEST(CommitPipelineTest, AwaitAndDrainEndAtTheirDeadlinesAndTheBlockIsStillSettled) {
  store::testing::TempDir dir;
  std::unique_ptr<store::BlockStore> store = testing::OpenStoreOrDie(dir.path() / "db");
  ASSERT_NE(store, nullptr);
  // The settle step waits for the test: the block is durable but not settled until then.
  util::Mutex mu;
  bool release = false;  // Guarded by mu.
  std::atomic<int> settles{0};
  CommitPipeline pipeline(
      *store, [&](const InFlightBlock&, const absl::StatusOr<store::BlockRecord>& durable) {
        util::MutexLock lock(&mu);
        mu.Await([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return release; });
        ++settles;
        return durable.status();
      });
  store::BlockCommit commit = Commit(1);
  const std::string hash = commit.hash;
  ASSERT_TRUE(store->QueueCommit(std::move(commit)).ok());
  std::shared_ptr<CommitPipeline::Ticket> ticket =
      pipeline.Add(InFlightBlock{1, hash, 0, absl::Now()});
  EXPECT_EQ(pipeline.Last()->height, 1u);

  absl::StatusOr<CommitPipeline::Settled> early =
      pipeline.Await(*ticket, absl::Now() + absl::Milliseconds(50));
  EXPECT_TRUE(absl::IsDeadlineExceeded(early.status())) << early.status();
  EXPECT_THAT(early.status().message(), HasSubstr("block 1 ran"));
  const absl::Status drained = pipeline.Drain(absl::Now() + absl::Milliseconds(50));
  EXPECT_TRUE(absl::IsDeadlineExceeded(drained)) << drained;
  EXPECT_THAT(drained.message(), HasSubstr("block 1 is still being committed"));
  EXPECT_FALSE(pipeline.IsSettled(*ticket));

  {
    util::MutexLock lock(&mu);
    release = true;
  }
  absl::StatusOr<CommitPipeline::Settled> late =
      pipeline.Await(*ticket, absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_EQ(late->record.height, 1u);
  EXPECT_EQ(settles.load(), 1);
  EXPECT_TRUE(pipeline.IsSettled(*ticket));
}

TEST(CommitPipelineTest, ASettleErrorIsWhatTheCallerGetsAndAFailedWriteIsNeverASuccess) {
  store::testing::TempDir dir;
  std::unique_ptr<store::BlockStore> store = testing::OpenStoreOrDie(dir.path() / "db");
  ASSERT_NE(store, nullptr);
  CommitPipeline pipeline(
      *store, [](const InFlightBlock& block, const absl::StatusOr<store::BlockRecord>&) {
        // Height 1 is refused by the pair's settle step; height 7 was never queued in the store,
        // and a settle step that says OK anyway must not make it a success.
        return block.height == 1 ? absl::UnavailableError("the pair refused it") : absl::OkStatus();
      });
  store::BlockCommit commit = Commit(1);
  const std::string hash = commit.hash;
  ASSERT_TRUE(store->QueueCommit(std::move(commit)).ok());
  auto refused = pipeline.Add(InFlightBlock{1, hash, 0, absl::Now()});
  auto never_queued = pipeline.Add(InFlightBlock{7, "x", 0, absl::Now()});
  absl::StatusOr<CommitPipeline::Settled> first =
      pipeline.Await(*refused, absl::Now() + absl::Seconds(30));
  EXPECT_TRUE(absl::IsUnavailable(first.status())) << first.status();
  EXPECT_THAT(first.status().message(), HasSubstr("the pair refused it"));
  absl::StatusOr<CommitPipeline::Settled> second =
      pipeline.Await(*never_queued, absl::Now() + absl::Seconds(30));
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
}

}  // namespace
}  // namespace tandem::proxy
