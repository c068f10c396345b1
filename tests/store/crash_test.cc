// Crash atomicity of BlockStore: a child process commits and rolls back while being SIGKILLed.
// It must never trust the store's own root code: roots are recomputed as docs/design.md says.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "store/block_store.h"
#include "tests/store/crash_model.h"
#include "tests/store/test_util.h"
#include "tests/support/test_seed.h"

namespace tandem::store {
namespace {

namespace t = testing;

pid_t SpawnWriter(const std::filesystem::path& db, const std::filesystem::path& ready,
                  uint32_t seed) {
  const std::string seed_text = std::to_string(seed);
  const pid_t pid = fork();
  if (pid == 0) {
    execl(TANDEM_CRASH_WRITER, TANDEM_CRASH_WRITER, db.c_str(), ready.c_str(), seed_text.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

bool WaitForFile(const std::filesystem::path& file, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (std::filesystem::exists(file)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

// Checks that `store` holds exactly whole blocks of the crash model, from start to tip: every
// block's hash is one of the model's variants, its root follows the formula, and the state (at
// the tip, at one random earlier height, and "above the tip") equals the model's. Returns the
// number of blocks.
void VerifyWholeBlocks(const BlockStore& store, std::mt19937& rng, uint64_t* blocks_seen) {
  const std::optional<BlockRecord> tip = store.GetTip();
  if (!tip.has_value()) {
    ASSERT_EQ(store.CountChainEntriesForTesting().value(), 0u);
    *blocks_seen = 0;
    return;
  }
  const uint32_t start = store.GetStartHeight().value();
  ASSERT_EQ(start, t::kCrashStartHeight);
  const uint32_t probe = start + rng() % (tip->height - start + 1);

  WriteSet state;
  WriteSet state_at_probe;
  std::set<std::string> ever_written;  // each has one latest entry
  std::string root = t::ReferenceZeroRoot();
  uint64_t entries = 0;
  for (uint32_t h = start; h <= tip->height; ++h) {
    absl::StatusOr<BlockRecord> block = store.GetBlock(h);
    ASSERT_TRUE(block.ok()) << "height " << h << ": " << block.status();
    int variant = -1;
    for (int v = 0; v < t::kCrashVariants; ++v) {
      if (block->hash == t::ReferenceSha256(t::CrashBlockBytes(h, v))) variant = v;
    }
    ASSERT_GE(variant, 0) << "height " << h << " has a hash of no known block";
    const WriteSet writes = t::CrashBlockWrites(h, variant);
    ASSERT_EQ(block->write_count, writes.size()) << "height " << h;
    root = t::ReferenceRoot(root, h, writes);
    ASSERT_EQ(block->state_root, root) << "height " << h;
    for (const auto& [k, v] : writes) {
      ever_written.insert(k);
      if (v.empty()) {
        state.erase(k);
      } else {
        state[k] = v;
      }
    }
    if (h == probe) state_at_probe = state;
    entries += writes.size() + 2;  // versions + block record + touched list
  }
  ASSERT_EQ(tip->state_root, root);
  ASSERT_TRUE(absl::IsNotFound(store.GetBlock(tip->height + 1).status()));
  // Nothing of a half-written block may be visible, not even above the tip...
  ASSERT_EQ(store.DumpAtHeightForTesting(UINT32_MAX).value(), state);
  // ...nor stored at all.
  ASSERT_EQ(store.CountChainEntriesForTesting().value(), entries + ever_written.size());
  ASSERT_TRUE(store.CheckLatestForTesting().ok()) << store.CheckLatestForTesting();
  for (int i = 0; i < t::kCrashKeySpace; ++i) {
    const std::string key = t::CrashKey(i);
    const auto expect = [](const WriteSet& m, const std::string& k) {
      auto it = m.find(k);
      return it == m.end() ? std::optional<std::string>() : std::optional<std::string>(it->second);
    };
    ASSERT_EQ(store.Get(key, tip->height).value(), expect(state, key)) << key;
    ASSERT_EQ(store.Get(key, probe).value(), expect(state_at_probe, key)) << key << " @" << probe;
  }
  *blocks_seen = tip->height - start + 1;
}

TEST(BlockStoreCrashTest, KilledWriterLeavesOnlyWholeBlocks) {
  t::TempDir dir;
  const std::filesystem::path db = dir.path() / "db";
  std::mt19937 rng(tandem::testing::TestSeed(20240611));
  uint64_t max_blocks = 0;
  int killed_while_running = 0;
  for (int round = 0; round < 20; ++round) {
    SCOPED_TRACE(::testing::Message() << "round " << round);
    const std::filesystem::path ready = dir.path() / ("ready-" + std::to_string(round));
    const pid_t pid = SpawnWriter(db, ready, rng());
    ASSERT_GT(pid, 0);
    // Half the rounds kill at any moment (even while the store opens); the others once the
    // writer is committing. The first round also checks the lock from another process.
    if (round % 2 == 0) {
      ASSERT_TRUE(WaitForFile(ready, std::chrono::seconds(20))) << "writer never opened the store";
    }
    if (round == 0) {
      absl::StatusOr<std::unique_ptr<BlockStore>> second = BlockStore::Open(db);
      ASSERT_FALSE(second.ok());
      EXPECT_TRUE(absl::IsUnavailable(second.status())) << second.status();
      EXPECT_NE(second.status().message().find(db.string()), std::string::npos);
      EXPECT_NE(second.status().message().find("is locked by another process"), std::string::npos)
          << second.status();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 400));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int wait_status = 0;
    ASSERT_EQ(waitpid(pid, &wait_status, 0), pid);
    if (WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGKILL) {
      ++killed_while_running;
    } else {
      ADD_FAILURE() << "writer exited on its own with status " << wait_status;
    }

    absl::StatusOr<std::unique_ptr<BlockStore>> store = BlockStore::Open(db);
    ASSERT_TRUE(store.ok()) << store.status();
    uint64_t blocks = 0;
    VerifyWholeBlocks(**store, rng, &blocks);
    if (::testing::Test::HasFatalFailure()) return;
    max_blocks = std::max(max_blocks, blocks);
    std::printf("round %d: recovered %llu whole blocks\n", round,
                static_cast<unsigned long long>(blocks));
    // Rolling back right after recovery must work from the recovered touched-key lists.
    if (blocks > 3) {
      const uint32_t target = (*store)->GetTip()->height - 1 - rng() % 3;
      ASSERT_TRUE((*store)->Rollback(target).ok());
      VerifyWholeBlocks(**store, rng, &blocks);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
  EXPECT_EQ(killed_while_running, 20);
  EXPECT_GT(max_blocks, 10u) << "the writer barely committed anything; the test proved little";
}

}  // namespace
}  // namespace tandem::store
