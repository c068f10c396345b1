// Tests of the node identity: its record, reading it without touching the database, and the
// rule that binds a database to a module digest and memory cap from its first block on.
#include "store/node_identity.h"

#include <memory>
#include <string>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/block_store.h"
#include "tests/store/test_util.h"
#include "util/failure_cause.h"

namespace tandem::store {
namespace {

namespace t = testing;
using ::testing::HasSubstr;

NodeIdentity Identity(char module_byte, uint64_t cap) {
  return NodeIdentity{std::string(32, module_byte), cap};
}

void Commit(BlockStore& store, uint32_t height) {
  BlockCommit commit;
  commit.height = height;
  commit.block_bytes = "block";
  commit.writes = {{"k", std::to_string(height)}};
  absl::StatusOr<BlockRecord> record = store.CommitBlock(commit);
  ASSERT_TRUE(record.ok()) << record.status();
}

TEST(NodeIdentityTest, RecordRoundTripsAndRefusesMalformedBytes) {
  const NodeIdentity identity = Identity('\xab', (64ull << 20) + 7);
  absl::StatusOr<NodeIdentity> decoded = DecodeNodeIdentity(EncodeNodeIdentity(identity));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, identity);
  EXPECT_EQ(DecodeNodeIdentity("short").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeNodeIdentity(EncodeNodeIdentity(identity) + "x").status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(NodeIdentityTest, AMissingFolderOrANewDatabaseHoldsNothing) {
  t::TempDir dir;
  absl::StatusOr<StoredIdentity> missing = ReadStoredIdentity(dir.path() / "nothing");
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_FALSE(missing->bound.has_value());
  EXPECT_FALSE(missing->start_height.has_value());

  ASSERT_TRUE(BlockStore::Open(dir.path() / "db").ok());
  absl::StatusOr<StoredIdentity> fresh = ReadStoredIdentity(dir.path() / "db");
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_FALSE(fresh->bound.has_value());
  EXPECT_FALSE(fresh->start_height.has_value());
  EXPECT_EQ(*CheckNodeIdentity(*fresh, Identity('a', 1 << 20)), IdentityVerdict::kBind);
}

TEST(NodeIdentityTest, BindsAtTheFirstBlockAndRefusesAnotherModuleOrCapAfterIt) {
  t::TempDir dir;
  const NodeIdentity bound = Identity('a', 64ull << 20);
  {
    absl::StatusOr<std::unique_ptr<BlockStore>> store = BlockStore::Open(dir.path());
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->BindIdentity(bound).ok());
  }
  // No block yet: another identity only replaces the record.
  absl::StatusOr<StoredIdentity> empty = ReadStoredIdentity(dir.path());
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->bound, bound);
  EXPECT_EQ(*CheckNodeIdentity(*empty, bound), IdentityVerdict::kMatches);
  EXPECT_EQ(*CheckNodeIdentity(*empty, Identity('b', 1 << 20)), IdentityVerdict::kBind);

  {
    absl::StatusOr<std::unique_ptr<BlockStore>> store = BlockStore::Open(dir.path());
    ASSERT_TRUE(store.ok()) << store.status();
    Commit(**store, 7);
  }
  absl::StatusOr<StoredIdentity> stored = ReadStoredIdentity(dir.path());
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->bound, bound);
  EXPECT_EQ(stored->start_height, 7u);
  EXPECT_EQ(*CheckNodeIdentity(*stored, bound), IdentityVerdict::kMatches);

  absl::StatusOr<IdentityVerdict> other_module =
      CheckNodeIdentity(*stored, Identity('b', 64ull << 20));
  EXPECT_EQ(other_module.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(util::CauseOf(other_module.status()), util::FailureCause::kIdentityMismatch);
  EXPECT_THAT(other_module.status().message(),
              HasSubstr(absl::BytesToHexString(std::string(32, 'a'))));
  EXPECT_THAT(other_module.status().message(),
              HasSubstr(absl::BytesToHexString(std::string(32, 'b'))));
  EXPECT_THAT(other_module.status().message(), HasSubstr("from height 7"));
  EXPECT_THAT(other_module.status().message(), ::testing::Not(HasSubstr("memory cap")));

  absl::StatusOr<IdentityVerdict> other_cap = CheckNodeIdentity(*stored, Identity('a', 1 << 20));
  EXPECT_EQ(util::CauseOf(other_cap.status()), util::FailureCause::kIdentityMismatch);
  EXPECT_THAT(other_cap.status().message(), HasSubstr("memory cap 67108864 bytes"));
  EXPECT_THAT(other_cap.status().message(), HasSubstr("given 1048576 bytes"));
  EXPECT_THAT(other_cap.status().message(), ::testing::Not(HasSubstr("module")));

  absl::StatusOr<IdentityVerdict> both = CheckNodeIdentity(*stored, Identity('c', 1 << 20));
  EXPECT_THAT(both.status().message(), HasSubstr("module SHA-256"));
  EXPECT_THAT(both.status().message(), HasSubstr("memory cap"));
}

TEST(NodeIdentityTest, ADatabaseFromBeforeIdentitiesIsAdopted) {
  t::TempDir dir;
  {
    absl::StatusOr<std::unique_ptr<BlockStore>> store = BlockStore::Open(dir.path());
    ASSERT_TRUE(store.ok()) << store.status();
    Commit(**store, 1);
  }
  absl::StatusOr<StoredIdentity> stored = ReadStoredIdentity(dir.path());
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_FALSE(stored->bound.has_value());
  EXPECT_EQ(stored->start_height, 1u);
  EXPECT_EQ(*CheckNodeIdentity(*stored, Identity('a', 1 << 20)), IdentityVerdict::kAdopt);
}

TEST(NodeIdentityTest, ReadingLeavesTheDatabaseByteForByteAsItWas) {
  t::TempDir dir;
  {
    absl::StatusOr<std::unique_ptr<BlockStore>> store = BlockStore::Open(dir.path());
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->BindIdentity(Identity('a', 1 << 20)).ok());
    Commit(**store, 1);
    Commit(**store, 2);
  }
  const auto before = t::SnapshotDirectory(dir.path());
  absl::StatusOr<StoredIdentity> stored = ReadStoredIdentity(dir.path());
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_FALSE(CheckNodeIdentity(*stored, Identity('b', 1 << 20)).ok());
  EXPECT_EQ(t::SnapshotDirectory(dir.path()), before);
}

}  // namespace
}  // namespace tandem::store
