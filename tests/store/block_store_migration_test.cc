// Tests that a database of format version 1 (tandem before the `latest` column family) is
// migrated on open: every value at every height, every root, the replay log, rollback and later
// commits as if it had been written by this build; also after an interrupted migration.
// It must never write format 1 through the store's own encoders: the bytes are spelled out here.
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "store/block_store.h"
#include "tests/store/test_util.h"

namespace tandem::store {
namespace {

namespace t = testing;

std::string Be32(uint32_t v) {
  std::string out;
  t::ReferenceAppendBe32(out, v);
  return out;
}

// One block of the chain written in format 1.
struct V1Block {
  uint32_t height;
  std::string hash;
  std::string root;
  WriteSet writes;
};

// Random blocks over a small key space with prefixes of each other, deletes, an empty key.
std::vector<V1Block> MakeChain(uint32_t start, int count, uint32_t seed) {
  std::mt19937 rng(seed);
  const std::vector<std::string> keys = {
      "",         "a",        std::string("a\0", 2), "ab",         "abc",
      "script/x", "script/y", "outpoint/1",          "outpoint/2", std::string("\xff\xff", 2)};
  std::vector<V1Block> chain;
  std::string root = t::ReferenceZeroRoot();
  for (uint32_t h = start; h < start + count; ++h) {
    V1Block block{h, t::ReferenceSha256(absl::StrCat("v1 block ", h)), "", {}};
    const int writes = 1 + static_cast<int>(rng() % 6);
    for (int i = 0; i < writes; ++i) {
      block.writes[keys[rng() % keys.size()]] =
          rng() % 4 == 0 ? "" : absl::StrCat("value ", h, "/", i, std::string(rng() % 30, 'x'));
    }
    root = t::ReferenceRoot(root, h, block.writes);
    block.root = root;
    chain.push_back(std::move(block));
  }
  return chain;
}

// Writes `chain` and one replay-log entry as a format-1 tandem store, exactly as that build
// laid them out: everything in the default column family, versions as
// 'v' ‖ u32 len(k) ‖ k ‖ u32 ~h.
void WriteV1Store(const std::filesystem::path& path, const std::vector<V1Block>& chain) {
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(options, path.string(), &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::WriteOptions sync;
  sync.sync = true;
  ASSERT_TRUE(db->Put(sync, "mformat_version", Be32(1)).ok());
  for (const V1Block& block : chain) {
    rocksdb::WriteBatch batch;
    std::string touched;
    for (const auto& [key, value] : block.writes) {
      ASSERT_TRUE(
          batch.Put(absl::StrCat("v", Be32(key.size()), key, Be32(~block.height)), value).ok());
      touched += Be32(key.size()) + key;
    }
    ASSERT_TRUE(batch.Put("t" + Be32(block.height), touched).ok());
    ASSERT_TRUE(
        batch.Put("b" + Be32(block.height), block.hash + block.root + Be32(block.writes.size()))
            .ok());
    ASSERT_TRUE(batch.Put("mtip", Be32(block.height)).ok());
    if (&block == &chain.front()) {
      ASSERT_TRUE(batch.Put("mstart", Be32(block.height)).ok());
    }
    ASSERT_TRUE(db->Write(sync, &batch).ok());
  }
  // Replay-log entry 0: len ‖ "init" ‖ len ‖ "payload" ‖ 32-byte digest.
  ASSERT_TRUE(db->Put(sync, std::string("r") + std::string(8, '\0'),
                      Be32(4) + "init" + Be32(7) + "payload" + std::string(32, 'd'))
                  .ok());
  ASSERT_TRUE(db->Close().ok());
}

// Adds the format-2 column families with stray contents, as a migration killed half-way leaves
// them (the format-version key still says 1).
void AddPartialMigration(const std::filesystem::path& path) {
  rocksdb::Options options;
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()}};
  rocksdb::DB* raw = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  ASSERT_TRUE(rocksdb::DB::Open(options, path.string(), families, &handles, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  for (const char* name : {"latest", "history"}) {
    rocksdb::ColumnFamilyHandle* family = nullptr;
    ASSERT_TRUE(db->CreateColumnFamily(rocksdb::ColumnFamilyOptions(), name, &family).ok());
    ASSERT_TRUE(
        db->Put(rocksdb::WriteOptions(), family, "stray", "left by a killed migration").ok());
    handles.push_back(family);
  }
  for (rocksdb::ColumnFamilyHandle* handle : handles) db->DestroyColumnFamilyHandle(handle);
  ASSERT_TRUE(db->Close().ok());
}

// Every key at every height, the roots and the replay log match the chain.
void ExpectMatchesChain(const BlockStore& store, const std::vector<V1Block>& chain) {
  ASSERT_TRUE(store.CheckLatestForTesting().ok()) << store.CheckLatestForTesting();
  ASSERT_EQ(store.GetStartHeight(), chain.front().height);
  ASSERT_EQ(store.GetTip()->height, chain.back().height);
  std::map<std::string, std::string> state;
  std::vector<std::string> keys;
  for (const V1Block& block : chain) {
    for (const auto& [key, value] : block.writes) keys.push_back(key);
  }
  for (const V1Block& block : chain) {
    for (const auto& [key, value] : block.writes) {
      if (value.empty()) {
        state.erase(key);
      } else {
        state[key] = value;
      }
    }
    absl::StatusOr<BlockRecord> record = store.GetBlock(block.height);
    ASSERT_TRUE(record.ok()) << record.status();
    EXPECT_EQ(record->state_root, block.root) << block.height;
    EXPECT_EQ(record->hash, block.hash) << block.height;
    for (const std::string& key : keys) {
      auto want = state.find(key);
      EXPECT_EQ(store.Get(key, block.height).value(),
                want == state.end() ? std::nullopt : std::optional<std::string>(want->second))
          << "key '" << key << "' at height " << block.height;
    }
  }
  absl::StatusOr<std::vector<ReplayCall>> calls =
      const_cast<BlockStore&>(store).replay_log().List();
  ASSERT_TRUE(calls.ok()) << calls.status();
  ASSERT_EQ(calls->size(), 1u);
  EXPECT_EQ((*calls)[0].export_name, "init");
  EXPECT_EQ((*calls)[0].payload, "payload");
}

class BlockStoreMigrationTest : public ::testing::TestWithParam<bool> {};

TEST_P(BlockStoreMigrationTest, FormatOneIsMigratedWithEveryHeightIntact) {
  const bool interrupted = GetParam();
  t::TempDir dir;
  const std::vector<V1Block> chain = MakeChain(/*start=*/100, /*count=*/40, /*seed=*/77);
  WriteV1Store(dir.path(), chain);
  if (interrupted) AddPartialMigration(dir.path());
  if (::testing::Test::HasFatalFailure()) return;

  {
    absl::StatusOr<std::unique_ptr<BlockStore>> store = BlockStore::Open(dir.path());
    ASSERT_TRUE(store.ok()) << store.status();
    ExpectMatchesChain(**store, chain);
  }
  // Reopened, it is a format-2 store like any other: no second migration, same contents.
  absl::StatusOr<std::unique_ptr<BlockStore>> store = BlockStore::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  ExpectMatchesChain(**store, chain);

  // Rollback uses the migrated touched-key lists and history; later commits chain their roots.
  ASSERT_TRUE((*store)->Rollback(120).ok());
  std::vector<V1Block> kept(chain.begin(), chain.begin() + 21);
  ExpectMatchesChain(**store, kept);
  BlockCommit commit;
  commit.height = 121;
  commit.block_bytes = "after the migration";
  commit.writes = {{"a", "new"}, {"ab", ""}};
  absl::StatusOr<BlockRecord> record = (*store)->CommitBlock(commit);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->state_root, t::ReferenceRoot(kept.back().root, 121, commit.writes));
  EXPECT_EQ((*store)->Get("a", 121).value(), "new");
  EXPECT_EQ((*store)->Get("ab", 121).value(), std::nullopt);
  EXPECT_TRUE((*store)->CheckLatestForTesting().ok());
}

INSTANTIATE_TEST_SUITE_P(CleanAndInterrupted, BlockStoreMigrationTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "AfterAnInterruptedMigration" : "Clean";
                         });

}  // namespace
}  // namespace tandem::store
