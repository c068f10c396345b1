// Tests of BlockStore's versioned reads, commits, rollback and height rules against a model.
// It must never share code with the store's root computation: roots come from test_util.h.
#include "store/block_store.h"

#include <atomic>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rocksdb/env.h"
#include "tests/store/test_util.h"
#include "tests/support/test_seed.h"

namespace tandem::store {
namespace {

namespace t = testing;
using ::testing::HasSubstr;

using State = WriteSet;

std::optional<std::string> Lookup(const State& state, const std::string& key) {
  auto it = state.find(key);
  if (it == state.end()) return std::nullopt;
  return it->second;
}

std::string Hash(std::string_view seed) { return t::ReferenceSha256(std::string(seed)); }

// A key space with keys that are prefixes of each other, embedded zero bytes, high bytes and an
// empty key, so no encoding of user keys can get away with confusing them.
std::vector<std::string> MakeKeySpace(std::mt19937& rng, int count) {
  std::vector<std::string> keys = {"",
                                   "a",
                                   std::string("a\0", 2),
                                   "ab",
                                   "abc",
                                   std::string("a\xff"),
                                   std::string("\0", 1),
                                   std::string("\xff\xff\xff\xff", 4)};
  while (static_cast<int>(keys.size()) < count) {
    std::string key(1 + rng() % 12, '\0');
    for (char& c : key) c = static_cast<char>(rng() % 4 == 0 ? rng() % 256 : 'a' + rng() % 4);
    keys.push_back(key);
  }
  return keys;
}

WriteSet RandomWrites(std::mt19937& rng, const std::vector<std::string>& keys) {
  WriteSet writes;
  const int count = 1 + rng() % 60;
  for (int i = 0; i < count; ++i) {
    const std::string& key = keys[rng() % keys.size()];
    if (rng() % 4 == 0) {
      writes[key] = "";  // delete
    } else {
      std::string value(1 + rng() % 40, '\0');
      for (char& c : value) c = static_cast<char>(rng() % 256);
      writes[key] = value;
    }
  }
  return writes;
}

void Apply(State& state, const WriteSet& writes) {
  for (const auto& [k, v] : writes) {
    if (v.empty()) {
      state.erase(k);
    } else {
      state[k] = v;
    }
  }
}

BlockStoreOptions FastOptions() {
  BlockStoreOptions options;
  options.sync = false;  // the crash test covers durability; these tests cover logic
  return options;
}

// A chain committed to a store alongside its model: the state and root after every height.
class ModelChain {
 public:
  ModelChain(uint32_t start, uint32_t seed, int key_count)
      : start_(start), rng_(seed), keys_(MakeKeySpace(rng_, key_count)) {
    states_[start - 1] = {};
    roots_[start - 1] = t::ReferenceZeroRoot();
  }

  // Commits `count` random blocks on top of `tip`, recording the model. Pipelined: each block
  // is queued (QueueCommit) and the next one's reads, at the height just queued, are checked
  // before anything is durable; every record is checked after WaitDurable at the end.
  void CommitBlocks(BlockStore& store, uint32_t from, int count, const std::string& tag,
                    bool pipelined = false) {
    for (uint32_t h = from; h < from + count; ++h) {
      const WriteSet writes = RandomWrites(rng_, keys_);
      State state = states_.at(h - 1);
      Apply(state, writes);
      states_[h] = state;
      roots_[h] = t::ReferenceRoot(roots_.at(h - 1), h, writes);
      hashes_[h] = Hash(absl::StrCat(tag, h));
      BlockCommit commit;
      commit.height = h;
      commit.hash = hashes_[h];
      if (h > start_) commit.prev_hash = hashes_.at(h - 1);
      commit.writes = writes;
      if (pipelined) {
        const absl::Status queued = store.QueueCommit(std::move(commit));
        ASSERT_TRUE(queued.ok()) << queued;
        ASSERT_EQ(store.GetHead()->height, h);
        // What the next block would read: the state at h, queued or not.
        for (int i = 0; i < 8; ++i) {
          const std::string& key = keys_[rng_() % keys_.size()];
          ASSERT_EQ(store.Get(key, h).value(), Lookup(state, key)) << "queued height " << h;
        }
        continue;
      }
      absl::StatusOr<BlockRecord> record = store.CommitBlock(std::move(commit));
      ASSERT_TRUE(record.ok()) << record.status();
      EXPECT_EQ(*record,
                (BlockRecord{h, hashes_[h], roots_[h], static_cast<uint32_t>(writes.size())}));
    }
    if (!pipelined) return;
    for (uint32_t h = from; h < from + count; ++h) {
      absl::StatusOr<BlockRecord> record = store.WaitDurable(h);
      ASSERT_TRUE(record.ok()) << record.status();
      EXPECT_EQ(record->state_root, roots_[h]) << "height " << h;
      EXPECT_EQ(record->hash, hashes_[h]) << "height " << h;
    }
  }

  // Forgets everything above `height`, as a rollback does.
  void Truncate(uint32_t height) {
    states_.erase(states_.upper_bound(height), states_.end());
    roots_.erase(roots_.upper_bound(height), roots_.end());
    hashes_.erase(hashes_.upper_bound(height), hashes_.end());
  }

  // Every key of the key space at every height from start-1 to tip (and one above), the full
  // dump at every height, and every root.
  void Verify(const BlockStore& store) const {
    // The tip's own family holds exactly the newest version of every key.
    const absl::Status latest = store.CheckLatestForTesting();
    ASSERT_TRUE(latest.ok()) << latest;
    const uint32_t tip = states_.rbegin()->first;
    for (uint32_t h = start_ - 1; h <= tip + 1; ++h) {
      const State& state = h > tip ? states_.at(tip) : states_.at(h);
      for (const std::string& key : keys_) {
        absl::StatusOr<std::optional<std::string>> got = store.Get(key, h);
        ASSERT_TRUE(got.ok()) << got.status();
        ASSERT_EQ(*got, Lookup(state, key))
            << "key " << absl::CHexEscape(key) << " at height " << h;
      }
      absl::StatusOr<WriteSet> dump = store.DumpAtHeightForTesting(h);
      ASSERT_TRUE(dump.ok()) << dump.status();
      ASSERT_EQ(*dump, state) << "height " << h;
      if (h >= start_ && h <= tip) {
        absl::StatusOr<BlockRecord> block = store.GetBlock(h);
        ASSERT_TRUE(block.ok()) << block.status();
        ASSERT_EQ(block->state_root, roots_.at(h)) << "height " << h;
        ASSERT_EQ(block->hash, hashes_.at(h)) << "height " << h;
      } else {
        ASSERT_TRUE(absl::IsNotFound(store.GetBlock(h).status())) << "height " << h;
      }
    }
    if (tip >= start_) {
      ASSERT_TRUE(store.GetTip().has_value());
      EXPECT_EQ(store.GetTip()->height, tip);
      EXPECT_EQ(store.GetTip()->state_root, roots_.at(tip));
    } else {
      EXPECT_FALSE(store.GetTip().has_value());
    }
  }

  const std::vector<std::string>& keys() const { return keys_; }
  uint32_t tip() const { return states_.rbegin()->first; }
  const std::string& root(uint32_t h) const { return roots_.at(h); }
  const std::string& hash(uint32_t h) const { return hashes_.at(h); }

 private:
  const uint32_t start_;
  std::mt19937 rng_;
  std::vector<std::string> keys_;
  std::map<uint32_t, State> states_;
  std::map<uint32_t, std::string> roots_;
  std::map<uint32_t, std::string> hashes_;
};

class BlockStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen() {
    store_.reset();
    absl::StatusOr<std::unique_ptr<BlockStore>> store =
        BlockStore::Open(dir_.path(), FastOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  absl::StatusOr<BlockRecord> Commit(uint32_t height, std::string hash,
                                     std::optional<std::string> prev_hash = std::nullopt,
                                     WriteSet writes = {{"k", "v"}}) {
    BlockCommit commit;
    commit.height = height;
    commit.hash = std::move(hash);
    commit.prev_hash = std::move(prev_hash);
    commit.writes = std::move(writes);
    return store_->CommitBlock(commit);
  }

  t::TempDir dir_;
  std::unique_ptr<BlockStore> store_;
};

TEST_F(BlockStoreTest, EmptyStoreHasNoTip) {
  EXPECT_FALSE(store_->GetTip().has_value());
  EXPECT_FALSE(store_->GetStartHeight().has_value());
  EXPECT_TRUE(absl::IsNotFound(store_->GetBlock(0).status()));
  EXPECT_EQ(store_->Get("k", 5).value(), std::nullopt);
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->Rollback(0)));
}

TEST_F(BlockStoreTest, RandomBlocksMatchModelAtEveryHeight) {
  ModelChain chain(/*start=*/10, tandem::testing::TestSeed(1234), /*key_count=*/120);
  chain.CommitBlocks(*store_, 10, 100, "a");
  chain.Verify(*store_);
  // The same after a reopen: nothing lives only in memory.
  Reopen();
  chain.Verify(*store_);
  EXPECT_EQ(store_->GetStartHeight(), 10u);
}

// Random commits, rollbacks (short and long, down to start - 1) and reopens, interleaved, each
// followed by a check of every key at every height against the model.
TEST_F(BlockStoreTest, RandomCommitsRollbacksAndReopensMatchTheModel) {
  const uint32_t seed = 4242;
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  ModelChain chain(/*start=*/20, seed, /*key_count=*/80);
  int generation = 0;
  for (int step = 0; step < 60; ++step) {
    const uint32_t tip = chain.tip();
    switch (rng() % 6) {
      case 0:
      case 1:
      case 2:
        chain.CommitBlocks(*store_, tip + 1, 1 + static_cast<int>(rng() % 6),
                           absl::StrCat("g", generation++), /*pipelined=*/rng() % 2 == 0);
        break;
      case 3:
      case 4: {
        if (tip < 20) break;  // nothing committed
        const uint32_t back = 1 + rng() % std::min<uint32_t>(tip - 19, rng() % 4 == 0 ? 40 : 4);
        ASSERT_TRUE(store_->Rollback(tip - back).ok()) << "to " << tip - back;
        chain.Truncate(tip - back);
        break;
      }
      case 5:
        Reopen();
        break;
    }
    if (::testing::Test::HasFatalFailure()) return;
    chain.Verify(*store_);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST_F(BlockStoreTest, QueuedBlocksChainOnEachOtherBeforeTheyAreDurable) {
  ModelChain chain(/*start=*/1, /*seed=*/77, /*key_count=*/60);
  chain.CommitBlocks(*store_, 1, 40, "q", /*pipelined=*/true);
  chain.Verify(*store_);
  EXPECT_EQ(store_->GetTip()->height, 40u);
  // The same block again, queued or committed, is accepted and changes nothing; another is not.
  BlockCommit again;
  again.height = 40;
  again.hash = chain.hash(40);
  EXPECT_TRUE(store_->QueueCommit(again).ok());
  EXPECT_EQ(store_->WaitDurable(40)->state_root, chain.root(40));
  again.hash = Hash("another 40");
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->QueueCommit(again)));
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->WaitDurable(41).status()));
  // A rollback waits for the queue, and the head follows it.
  chain.CommitBlocks(*store_, 41, 5, "r", /*pipelined=*/true);
  ASSERT_TRUE(store_->Rollback(30).ok());
  chain.Truncate(30);
  EXPECT_EQ(store_->GetHead()->height, 30u);
  chain.Verify(*store_);
}

// Fails every write to a WAL file once armed, as a full or failing disk would.
class FailingWalEnv : public rocksdb::EnvWrapper {
 public:
  FailingWalEnv() : rocksdb::EnvWrapper(rocksdb::Env::Default()) {}
  const char* Name() const override { return "FailingWalEnv"; }

  rocksdb::Status NewWritableFile(const std::string& name,
                                  std::unique_ptr<rocksdb::WritableFile>* result,
                                  const rocksdb::EnvOptions& options) override {
    rocksdb::Status s = target()->NewWritableFile(name, result, options);
    if (s.ok() && name.size() > 4 && name.substr(name.size() - 4) == ".log") {
      *result = std::make_unique<FailingFile>(std::move(*result), armed_);
    }
    return s;
  }

  void Arm() { armed_ = true; }

 private:
  class FailingFile : public rocksdb::WritableFileWrapper {
   public:
    FailingFile(std::unique_ptr<rocksdb::WritableFile> file, const std::atomic<bool>& armed)
        : rocksdb::WritableFileWrapper(file.get()), file_(std::move(file)), armed_(armed) {}
    rocksdb::Status Append(const rocksdb::Slice& data) override {
      if (armed_) return rocksdb::Status::IOError("injected: disk full");
      return rocksdb::WritableFileWrapper::Append(data);
    }

   private:
    std::unique_ptr<rocksdb::WritableFile> file_;
    const std::atomic<bool>& armed_;
  };

  std::atomic<bool> armed_{false};
};

TEST(BlockStoreFaultTest, AFailedWriteDropsItsBlockAndEveryBlockQueuedOnIt) {
  t::TempDir dir;
  FailingWalEnv env;
  BlockStoreOptions options = FastOptions();
  options.env = &env;
  absl::StatusOr<std::unique_ptr<BlockStore>> opened = BlockStore::Open(dir.path(), options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  BlockStore& store = **opened;
  BlockCommit first;
  first.height = 1;
  first.hash = Hash("1");
  first.writes = {{"k", "one"}};
  ASSERT_TRUE(store.CommitBlock(first).ok());

  env.Arm();
  BlockCommit second;
  second.height = 2;
  second.hash = Hash("2");
  second.writes = {{"k", "two"}};
  BlockCommit third;
  third.height = 3;
  third.hash = Hash("3");
  third.prev_hash = Hash("2");
  third.writes = {{"k", "three"}};
  ASSERT_TRUE(store.QueueCommit(second).ok());
  // Queued on top of block 2 before its write fails (or refused if the failure came first).
  const absl::Status queued_third = store.QueueCommit(third);
  absl::StatusOr<BlockRecord> two = store.WaitDurable(2);
  EXPECT_TRUE(absl::IsUnavailable(two.status())) << two.status();
  EXPECT_THAT(two.status().message(), HasSubstr("injected"));
  if (queued_third.ok()) {
    absl::StatusOr<BlockRecord> three = store.WaitDurable(3);
    EXPECT_FALSE(three.ok());
    EXPECT_THAT(three.status().message(), HasSubstr("block 2, queued before this one"));
  }
  // Nothing of either block is visible or stored; the head is the tip again.
  EXPECT_EQ(store.GetTip()->height, 1u);
  EXPECT_EQ(store.GetHead()->height, 1u);
  EXPECT_EQ(store.Get("k", 3).value(), "one");
  EXPECT_TRUE(absl::IsNotFound(store.GetBlock(2).status()));
}

TEST_F(BlockStoreTest, KeysThatArePrefixesOfEachOtherStayApart) {
  ASSERT_TRUE(Commit(1, Hash("1"), std::nullopt,
                     {{"a", "1"}, {std::string("a\0", 2), "2"}, {"ab", "3"}, {"", "4"}})
                  .ok());
  ASSERT_TRUE(Commit(2, Hash("2"), std::nullopt, {{"ab", ""}, {"abc", "5"}}).ok());
  EXPECT_EQ(store_->Get("a", 2).value(), "1");
  EXPECT_EQ(store_->Get(std::string("a\0", 2), 2).value(), "2");
  EXPECT_EQ(store_->Get("ab", 2).value(), std::nullopt);
  EXPECT_EQ(store_->Get("ab", 1).value(), "3");
  EXPECT_EQ(store_->Get("abc", 1).value(), std::nullopt);
  EXPECT_EQ(store_->Get("abc", 2).value(), "5");
  EXPECT_EQ(store_->Get("", 2).value(), "4");
  EXPECT_EQ(store_->Get("b", 2).value(), std::nullopt);
  EXPECT_EQ(store_->Get("a", 0).value(), std::nullopt);  // below start
}

TEST_F(BlockStoreTest, RollbackRestoresEveryEarlierHeightExactly) {
  ModelChain chain(/*start=*/1, tandem::testing::TestSeed(99), /*key_count=*/150);
  chain.CommitBlocks(*store_, 1, 50, "a");
  const uint64_t entries_at_50 = store_->CountChainEntriesForTesting().value();
  chain.CommitBlocks(*store_, 51, 50, "a");
  chain.Verify(*store_);

  // Back by 50 heights: everything above 50 is gone, without a trace in the database.
  ASSERT_TRUE(store_->Rollback(50).ok());
  chain.Truncate(50);
  chain.Verify(*store_);
  EXPECT_EQ(store_->CountChainEntriesForTesting().value(), entries_at_50);

  // Re-commit different blocks over the same heights (new hashes, new writes, new roots).
  chain.CommitBlocks(*store_, 51, 50, "b");
  chain.Verify(*store_);
  Reopen();
  chain.Verify(*store_);

  // Rolling back to the tip changes nothing.
  ASSERT_TRUE(store_->Rollback(100).ok());
  chain.Verify(*store_);

  // Back over all 100 heights, one height at a time at first, then in one go.
  for (uint32_t h = 99; h >= 90; --h) {
    ASSERT_TRUE(store_->Rollback(h).ok());
    chain.Truncate(h);
    ASSERT_EQ(store_->GetTip()->state_root, chain.root(h));
  }
  chain.Verify(*store_);
  ASSERT_TRUE(store_->Rollback(0).ok());  // start - 1: every block goes
  chain.Truncate(0);
  chain.Verify(*store_);
  EXPECT_EQ(store_->CountChainEntriesForTesting().value(), 0u);
  EXPECT_FALSE(store_->GetStartHeight().has_value());

  // An emptied store accepts a new start, like a fresh one.
  ASSERT_TRUE(Commit(500, Hash("x")).ok());
  EXPECT_EQ(store_->GetStartHeight(), 500u);
}

TEST_F(BlockStoreTest, AChainStartedAtZeroRollsBackToEmpty) {
  // start - 1 is no height here (it would wrap to 4294967295): std::nullopt says "every block".
  ASSERT_TRUE(Commit(0, Hash("0"), std::nullopt, {{"a", "0"}}).ok());
  ASSERT_TRUE(Commit(1, Hash("1"), std::nullopt, {{"a", "1"}, {"b", "1"}}).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->Rollback(UINT32_MAX)));  // Above the tip.
  ASSERT_TRUE(store_->Rollback(std::nullopt).ok());
  EXPECT_FALSE(store_->GetTip().has_value());
  EXPECT_FALSE(store_->GetStartHeight().has_value());
  EXPECT_EQ(store_->Get("a", 5).value(), std::nullopt);
  EXPECT_EQ(store_->Get("b", 5).value(), std::nullopt);
  EXPECT_EQ(store_->CountChainEntriesForTesting().value(), 0u);
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->Rollback(std::nullopt)));  // Nothing left.
  ASSERT_TRUE(Commit(0, Hash("again"), std::nullopt, {{"a", "again"}}).ok());
  EXPECT_EQ(store_->Get("a", 0).value(), "again");
  // On a chain started above 0, std::nullopt is start - 1.
  ASSERT_TRUE(store_->Rollback(std::nullopt).ok());
  ASSERT_TRUE(Commit(7, Hash("7")).ok());
  ASSERT_TRUE(store_->Rollback(std::nullopt).ok());
  EXPECT_FALSE(store_->GetTip().has_value());
}

TEST_F(BlockStoreTest, RootsFollowTheDesignFormula) {
  WriteSet first = {{"b", "2"}, {"a", "1"}, {"gone", ""}, {std::string("\xff", 1), "hi"}};
  WriteSet second = {};
  absl::StatusOr<BlockRecord> r1 = Commit(7, Hash("7"), std::nullopt, first);
  absl::StatusOr<BlockRecord> r2 = Commit(8, Hash("8"), Hash("7"), second);
  ASSERT_TRUE(r1.ok() && r2.ok());
  const std::string root7 = t::ReferenceRoot(t::ReferenceZeroRoot(), 7, first);
  EXPECT_EQ(r1->state_root, root7);
  EXPECT_EQ(r2->state_root, t::ReferenceRoot(root7, 8, second));
  EXPECT_EQ(r1->write_count, 4u);
  EXPECT_EQ(r2->write_count, 0u);
  EXPECT_EQ(ComputeStateRoot(ZeroRoot(), 7, first), root7);
}

TEST_F(BlockStoreTest, HashDefaultsToSha256OfTheBytes) {
  BlockCommit commit;
  commit.height = 3;
  commit.block_bytes = "the block";
  absl::StatusOr<BlockRecord> record = store_->CommitBlock(commit);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->hash, Hash("the block"));
  // Resubmitting the same bytes is idempotent.
  absl::StatusOr<BlockRecord> again = store_->CommitBlock(commit);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *record);
}

TEST_F(BlockStoreTest, ParentHashMismatchIsRefusedNamingBothHashes) {
  ASSERT_TRUE(Commit(1, Hash("1")).ok());
  ASSERT_TRUE(Commit(2, Hash("2"), Hash("1")).ok());
  absl::StatusOr<BlockRecord> bad = Commit(3, Hash("3"), Hash("other"));
  ASSERT_TRUE(absl::IsFailedPrecondition(bad.status())) << bad.status();
  EXPECT_THAT(bad.status().message(), HasSubstr(absl::BytesToHexString(Hash("other"))));
  EXPECT_THAT(bad.status().message(), HasSubstr(absl::BytesToHexString(Hash("2"))));
  EXPECT_EQ(store_->GetTip()->height, 2u);
  EXPECT_TRUE(Commit(3, Hash("3"), Hash("2")).ok());
}

TEST_F(BlockStoreTest, ResubmissionIsIdempotentAndAnotherHashIsRefused) {
  absl::StatusOr<BlockRecord> r1 = Commit(1, Hash("1"), std::nullopt, {{"a", "1"}});
  absl::StatusOr<BlockRecord> r2 = Commit(2, Hash("2"), Hash("1"), {{"a", "2"}});
  ASSERT_TRUE(r1.ok() && r2.ok());
  const uint64_t entries = store_->CountChainEntriesForTesting().value();

  // Same hash: the stored record, whatever the writes say, and nothing written.
  absl::StatusOr<BlockRecord> again = Commit(1, Hash("1"), std::nullopt, {{"zzz", "9"}});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *r1);
  EXPECT_EQ(store_->CountChainEntriesForTesting().value(), entries);
  EXPECT_EQ(store_->GetTip()->height, 2u);

  // Another hash at a committed height: refused until a rollback.
  absl::StatusOr<BlockRecord> other = Commit(1, Hash("1b"));
  ASSERT_TRUE(absl::IsFailedPrecondition(other.status())) << other.status();
  EXPECT_EQ(other.status().message(),
            absl::StrCat("height 1 already committed with hash ", absl::BytesToHexString(Hash("1")),
                         "; roll back first"));
  ASSERT_TRUE(store_->Rollback(0).ok());
  EXPECT_TRUE(Commit(1, Hash("1b")).ok());
}

TEST_F(BlockStoreTest, OutOfOrderHeightsAreRefused) {
  ASSERT_TRUE(Commit(10, Hash("10")).ok());
  absl::StatusOr<BlockRecord> gap = Commit(12, Hash("12"));
  ASSERT_TRUE(absl::IsFailedPrecondition(gap.status()));
  EXPECT_EQ(gap.status().message(), "height 12 is not tip+1 (tip is 10)");
  absl::StatusOr<BlockRecord> below = Commit(9, Hash("9"));
  ASSERT_TRUE(absl::IsFailedPrecondition(below.status())) << below.status();
  EXPECT_THAT(below.status().message(), HasSubstr("below the first height"));
  EXPECT_TRUE(absl::IsNotFound(store_->GetBlock(9).status()));
  EXPECT_EQ(store_->GetTip()->height, 10u);

  // Malformed hashes are the caller's mistake.
  EXPECT_TRUE(absl::IsInvalidArgument(Commit(11, "short").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(Commit(11, Hash("11"), "short").status()));

  // Rollback rules.
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->Rollback(11)));  // above the tip
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->Rollback(8)));   // below start - 1
  EXPECT_TRUE(store_->Rollback(10).ok());                         // the tip: no-op
  EXPECT_EQ(store_->GetTip()->height, 10u);
}

TEST_F(BlockStoreTest, ReadersSeeWholeBlocksWhileOneThreadCommits) {
  constexpr int kBlocks = 200;
  // Block h writes "h" to every one of 20 keys: a reader must never see a mix within a height.
  std::atomic<int> committed{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&, r] {
      std::mt19937 rng(r);
      while (committed.load() < kBlocks) {
        const int tip = committed.load();
        if (tip == 0) continue;
        const uint32_t h = 1 + rng() % tip;
        for (int k = 0; k < 20; ++k) {
          absl::StatusOr<std::optional<std::string>> got = store_->Get(absl::StrCat("k", k), h);
          if (!got.ok() || *got != std::optional<std::string>(absl::StrCat(h))) failed = true;
        }
        // Above the tip a reader sees the newest committed value (each Get is one snapshot).
        absl::StatusOr<std::optional<std::string>> newest = store_->Get("k0", UINT32_MAX);
        if (!newest.ok() || !newest->has_value()) failed = true;
      }
    });
  }
  for (int h = 1; h <= kBlocks; ++h) {
    WriteSet writes;
    for (int k = 0; k < 20; ++k) writes[absl::StrCat("k", k)] = absl::StrCat(h);
    if (!Commit(h, Hash(absl::StrCat(h)), std::nullopt, writes).ok()) {
      failed = true;
      committed = kBlocks;  // releases the readers; joining below must still happen
      break;
    }
    committed = h;
  }
  for (std::thread& reader : readers) reader.join();
  EXPECT_FALSE(failed.load());
}

// The write path's figures for metrics: every synced commit is one WAL sync, timed; an unsynced
// store's commits sync nothing; an idle, small store is neither stopped nor throttled.
TEST(BlockStoreWritePathTest, CountsWalSyncsOnlyWhenSyncing) {
  for (const bool sync : {true, false}) {
    t::TempDir dir;
    BlockStoreOptions options;
    options.sync = sync;
    absl::StatusOr<std::unique_ptr<BlockStore>> store = BlockStore::Open(dir.path(), options);
    ASSERT_TRUE(store.ok()) << store.status();
    absl::StatusOr<WritePathStats> before = (*store)->ReadWritePathStats();
    ASSERT_TRUE(before.ok()) << before.status();
    for (uint32_t height = 1; height <= 3; ++height) {
      BlockCommit commit;
      commit.height = height;
      commit.hash = Hash(absl::StrCat("sync", height));
      commit.writes = {{"k", absl::StrCat(height)}};
      ASSERT_TRUE((*store)->CommitBlock(commit).ok());
    }
    absl::StatusOr<WritePathStats> after = (*store)->ReadWritePathStats();
    ASSERT_TRUE(after.ok()) << after.status();
    if (sync) {
      EXPECT_EQ(after->wal_syncs - before->wal_syncs, 3u);
      EXPECT_GE(after->wal_sync_p99_micros, after->wal_sync_p50_micros);
      EXPECT_GT(after->wal_sync_p99_micros, 0);
    } else {
      // (Open itself may sync once: only the commits are counted here.)
      EXPECT_EQ(after->wal_syncs, before->wal_syncs);
      EXPECT_EQ(after->wal_sync_micros, before->wal_sync_micros);
    }
    EXPECT_FALSE(after->writes_stopped);
    EXPECT_EQ(after->delayed_write_rate, 0u);
    EXPECT_EQ(after->stall_micros, 0u);
  }
}

}  // namespace
}  // namespace tandem::store
