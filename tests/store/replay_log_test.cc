// Tests of the replay log: order, persistence across reopen, caps and clearing.
// It must never depend on the block chain: the log is independent of heights.
#include "store/replay_log.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/block_store.h"
#include "tests/store/test_util.h"

namespace tandem::store {
namespace {

namespace t = testing;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

ReplayCall Call(std::string name, std::string payload) {
  return ReplayCall{name, payload, t::ReferenceSha256(name + "/" + payload)};
}

std::unique_ptr<BlockStore> OpenStore(const std::filesystem::path& path,
                                      ReplayLogLimits limits = {}) {
  BlockStoreOptions options;
  options.replay_log_limits = limits;
  absl::StatusOr<std::unique_ptr<BlockStore>> store = BlockStore::Open(path, options);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

TEST(ReplayLogTest, AppendsInOrderAndSurvivesReopen) {
  t::TempDir dir;
  const ReplayCall a = Call("load_config", "{\"x\":1}");
  const ReplayCall b = Call("compile", std::string("\0\1\2", 3));
  const ReplayCall c = Call("", "");
  {
    std::unique_ptr<BlockStore> store = OpenStore(dir.path());
    ASSERT_TRUE(store);
    EXPECT_THAT(store->replay_log().List().value(), ElementsAre());
    ASSERT_TRUE(store->replay_log().Append(a).ok());
    ASSERT_TRUE(store->replay_log().Append(b).ok());
    ASSERT_TRUE(store->replay_log().Append(c).ok());
    EXPECT_THAT(store->replay_log().List().value(), ElementsAre(a, b, c));
  }
  std::unique_ptr<BlockStore> store = OpenStore(dir.path());
  ASSERT_TRUE(store);
  EXPECT_THAT(store->replay_log().List().value(), ElementsAre(a, b, c));
  const ReplayLogStats stats = store->replay_log().Stats();
  EXPECT_EQ(stats.calls, 3u);
  EXPECT_EQ(stats.bytes, a.export_name.size() + a.payload.size() + b.export_name.size() +
                             b.payload.size() + 3 * 32);
  // Appends after a reopen continue the order.
  const ReplayCall d = Call("later", "p");
  ASSERT_TRUE(store->replay_log().Append(d).ok());
  EXPECT_THAT(store->replay_log().List().value(), ElementsAre(a, b, c, d));
}

TEST(ReplayLogTest, RefusesCallsPastTheCaps) {
  t::TempDir dir;
  std::unique_ptr<BlockStore> store =
      OpenStore(dir.path(), ReplayLogLimits{.max_bytes = 200, .max_calls = 3});
  ASSERT_TRUE(store);
  ReplayLog& log = store->replay_log();
  ASSERT_TRUE(log.Append(Call("a", "1")).ok());
  ASSERT_TRUE(log.Append(Call("b", "2")).ok());
  // 34 + 34 bytes so far; 200 - 68 = 132 left: a 101-byte payload (+1 name, +32 digest) is too
  // much.
  absl::Status too_big = log.Append(Call("c", std::string(101, 'x')));
  ASSERT_TRUE(absl::IsResourceExhausted(too_big)) << too_big;
  EXPECT_THAT(too_big.message(), HasSubstr("replay log full"));
  ASSERT_TRUE(log.Append(Call("c", std::string(99, 'x'))).ok());  // exactly 200 bytes
  absl::Status too_many = log.Append(Call("d", ""));
  ASSERT_TRUE(absl::IsResourceExhausted(too_many)) << too_many;
  EXPECT_THAT(too_many.message(), HasSubstr("replay log full"));
  EXPECT_EQ(log.List().value().size(), 3u);
  EXPECT_TRUE(absl::IsInvalidArgument(log.Append(ReplayCall{"x", "y", "short digest"})));

  // The caps hold across a reopen: the size is recounted from the database.
  store.reset();
  store = OpenStore(dir.path(), ReplayLogLimits{.max_bytes = 200, .max_calls = 3});
  ASSERT_TRUE(store);
  EXPECT_TRUE(absl::IsResourceExhausted(store->replay_log().Append(Call("d", ""))));
}

TEST(ReplayLogTest, ClearEmptiesTheLogDurably) {
  t::TempDir dir;
  {
    std::unique_ptr<BlockStore> store = OpenStore(dir.path());
    ASSERT_TRUE(store);
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(store->replay_log().Append(Call("f", "x")).ok());
    ASSERT_TRUE(store->replay_log().Clear().ok());
    EXPECT_THAT(store->replay_log().List().value(), ElementsAre());
    EXPECT_EQ(store->replay_log().Stats().calls, 0u);
    EXPECT_EQ(store->replay_log().Stats().bytes, 0u);
  }
  std::unique_ptr<BlockStore> store = OpenStore(dir.path());
  ASSERT_TRUE(store);
  EXPECT_THAT(store->replay_log().List().value(), ElementsAre());
  const ReplayCall e = Call("e", "1");
  ASSERT_TRUE(store->replay_log().Append(e).ok());
  EXPECT_THAT(store->replay_log().List().value(), ElementsAre(e));
}

TEST(ReplayLogTest, TruncateKeepsTheFirstCallsDurably) {
  t::TempDir dir;
  const ReplayCall a = Call("a", "1");
  const ReplayCall b = Call("b", "22");
  const ReplayCall c = Call("c", "333");
  {
    std::unique_ptr<BlockStore> store = OpenStore(dir.path());
    ASSERT_TRUE(store);
    for (const ReplayCall& call : {a, b, c}) ASSERT_TRUE(store->replay_log().Append(call).ok());
    absl::StatusOr<uint64_t> beyond = store->replay_log().Truncate(4);
    EXPECT_EQ(beyond.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(beyond.status().message(), HasSubstr("holds 3 calls"));
    EXPECT_EQ(store->replay_log().Truncate(3).value(), 0u);
    EXPECT_EQ(store->replay_log().Truncate(1).value(), 2u);
    EXPECT_THAT(store->replay_log().List().value(), ElementsAre(a));
    EXPECT_EQ(store->replay_log().Stats().calls, 1u);
    EXPECT_EQ(store->replay_log().Stats().bytes, 1u + 1u + 32u);
  }
  std::unique_ptr<BlockStore> store = OpenStore(dir.path());
  ASSERT_TRUE(store);
  EXPECT_THAT(store->replay_log().List().value(), ElementsAre(a));
  ASSERT_TRUE(store->replay_log().Append(c).ok());  // Appends go after what was kept.
  EXPECT_THAT(store->replay_log().List().value(), ElementsAre(a, c));
  EXPECT_EQ(store->replay_log().Truncate(0).value(), 2u);
  EXPECT_THAT(store->replay_log().List().value(), ElementsAre());
}

TEST(ReplayLogTest, IsIndependentOfBlocksAndRollback) {
  t::TempDir dir;
  std::unique_ptr<BlockStore> store = OpenStore(dir.path());
  ASSERT_TRUE(store);
  const ReplayCall a = Call("a", "1");
  ASSERT_TRUE(store->replay_log().Append(a).ok());
  BlockCommit commit;
  commit.height = 1;
  commit.writes = {{"k", "v"}};
  ASSERT_TRUE(store->CommitBlock(commit).ok());
  ASSERT_TRUE(store->Rollback(0).ok());
  EXPECT_EQ(store->CountChainEntriesForTesting().value(), 0u);
  EXPECT_THAT(store->replay_log().List().value(), ElementsAre(a));
}

}  // namespace
}  // namespace tandem::store
