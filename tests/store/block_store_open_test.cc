// Tests of BlockStore::Open: creation, format version, locks, foreign and corrupt databases.
// It must never leave a database behind: every case works in its own temporary directory.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "store/block_store.h"
#include "store/keys.h"
#include "tests/store/test_util.h"

namespace tandem::store {
namespace {

namespace t = testing;
using ::testing::HasSubstr;

// Writes `key` = `value` into the default column family of a plain RocksDB at `path` (created
// when missing, every existing family opened), bypassing BlockStore.
void RawPut(const std::filesystem::path& path, const std::string& key, const std::string& value) {
  rocksdb::Options options;
  options.create_if_missing = true;
  std::vector<std::string> names;
  if (!rocksdb::DB::ListColumnFamilies(options, path.string(), &names).ok()) {
    names = {rocksdb::kDefaultColumnFamilyName};
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const std::string& name : names) families.emplace_back(name, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(options, path.string(), families, &handles, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), key, value).ok());
  for (rocksdb::ColumnFamilyHandle* handle : handles) db->DestroyColumnFamilyHandle(handle);
  ASSERT_TRUE(db->Close().ok());
}

void CreateStoreWithABlock(const std::filesystem::path& path) {
  absl::StatusOr<std::unique_ptr<BlockStore>> store = BlockStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  BlockCommit commit;
  commit.height = 1;
  commit.block_bytes = "one";
  commit.writes = {{"k", "v"}};
  ASSERT_TRUE((*store)->CommitBlock(commit).ok());
}

// Opening must fail with `code`, name the path, and leave every file as it was.
void ExpectRefusedUnchanged(const std::filesystem::path& path, absl::StatusCode code,
                            std::string_view message_part) {
  const auto before = t::SnapshotDirectory(path);
  absl::StatusOr<std::unique_ptr<BlockStore>> store = BlockStore::Open(path);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), code) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr(path.string()));
  EXPECT_THAT(store.status().message(), HasSubstr(message_part));
  EXPECT_EQ(t::SnapshotDirectory(path), before) << "a refused open changed the directory";
}

TEST(BlockStoreOpenTest, CreatesMissingAndEmptyDirectories) {
  t::TempDir dir;
  const std::filesystem::path nested = dir.path() / "a" / "b" / "db";
  absl::StatusOr<std::unique_ptr<BlockStore>> store = BlockStore::Open(nested);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_FALSE((*store)->GetTip().has_value());

  const std::filesystem::path empty = dir.path() / "empty";
  std::filesystem::create_directory(empty);
  EXPECT_TRUE(BlockStore::Open(empty).ok());
}

TEST(BlockStoreOpenTest, ReopensItsOwnDatabase) {
  t::TempDir dir;
  CreateStoreWithABlock(dir.path());
  absl::StatusOr<std::unique_ptr<BlockStore>> store = BlockStore::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->GetTip()->height, 1u);
  EXPECT_EQ((*store)->Get("k", 1).value(), "v");
}

TEST(BlockStoreOpenTest, RefusesAnotherFormatVersion) {
  t::TempDir dir;
  CreateStoreWithABlock(dir.path());
  RawPut(dir.path(), keys::kFormatVersionKey, keys::EncodeU32(keys::kFormatVersion + 1));
  ExpectRefusedUnchanged(dir.path(), absl::StatusCode::kFailedPrecondition,
                         absl::StrCat("format version ", keys::kFormatVersion + 1,
                                      "; this build reads format version ", keys::kFormatVersion));
}

TEST(BlockStoreOpenTest, RefusesAForeignColumnFamily) {
  t::TempDir dir;
  CreateStoreWithABlock(dir.path());
  {
    rocksdb::Options options;
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(options, dir.path().string(), &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    for (const std::string& name : names)
      families.emplace_back(name, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, dir.path().string(), families, &handles, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::ColumnFamilyHandle* extra = nullptr;
    ASSERT_TRUE(
        db->CreateColumnFamily(rocksdb::ColumnFamilyOptions(), "someone_else", &extra).ok());
    handles.push_back(extra);
    for (rocksdb::ColumnFamilyHandle* handle : handles) db->DestroyColumnFamilyHandle(handle);
  }
  ExpectRefusedUnchanged(dir.path(), absl::StatusCode::kFailedPrecondition, "someone_else");
}

TEST(BlockStoreOpenTest, RefusesAForeignRocksDb) {
  t::TempDir dir;
  RawPut(dir.path(), "hello", "world");
  ExpectRefusedUnchanged(dir.path(), absl::StatusCode::kFailedPrecondition, "not a tandem store");
}

TEST(BlockStoreOpenTest, RefusesANonDatabaseDirectoryAndAFile) {
  t::TempDir dir;
  std::ofstream(dir.path() / "notes.txt") << "not a database";
  ExpectRefusedUnchanged(dir.path(), absl::StatusCode::kFailedPrecondition, "CURRENT");
  absl::StatusOr<std::unique_ptr<BlockStore>> file = BlockStore::Open(dir.path() / "notes.txt");
  EXPECT_TRUE(absl::IsFailedPrecondition(file.status())) << file.status();
}

TEST(BlockStoreOpenTest, InitialisesAnEmptyRocksDbLeftByAnInterruptedCreate) {
  t::TempDir dir;
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, dir.path().string(), &raw).ok());
    delete raw;
  }
  EXPECT_TRUE(BlockStore::Open(dir.path()).ok());
  EXPECT_TRUE(BlockStore::Open(dir.path()).ok());  // now stamped
}

TEST(BlockStoreOpenTest, RefusesADatabaseLockedByAnotherHandle) {
  t::TempDir dir;
  absl::StatusOr<std::unique_ptr<BlockStore>> first = BlockStore::Open(dir.path());
  ASSERT_TRUE(first.ok()) << first.status();
  ExpectRefusedUnchanged(dir.path(), absl::StatusCode::kUnavailable, "locked");
  // The first handle still works.
  BlockCommit commit;
  commit.height = 5;
  EXPECT_TRUE((*first)->CommitBlock(commit).ok());
  first->reset();
  EXPECT_TRUE(BlockStore::Open(dir.path()).ok());
}

TEST(BlockStoreOpenTest, ReportsACorruptDatabaseAsDataLoss) {
  t::TempDir dir;
  CreateStoreWithABlock(dir.path());
  // Overwrite the manifest with garbage: RocksDB can no longer read which files hold the data.
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    if (entry.path().filename().string().rfind("MANIFEST-", 0) == 0) {
      std::ofstream(entry.path(), std::ios::binary | std::ios::trunc) << "garbage garbage garbage";
    }
  }
  ExpectRefusedUnchanged(dir.path(), absl::StatusCode::kDataLoss, "corrupt");
}

}  // namespace
}  // namespace tandem::store
