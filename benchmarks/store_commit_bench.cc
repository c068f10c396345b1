// Commit throughput of BlockStore for blocks of 1k, 10k and 40k writes, with fsync on and off.
// It must never measure setup: the store is opened and the blocks built outside the timed loop.
//
// Run: store_commit_bench [--benchmark_format=json]. Each iteration commits one block at the next
// height; items/s is writes/s, bytes/s counts keys and values.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "store/block_store.h"

namespace tandem::store {
namespace {

// A temporary database directory, removed afterwards.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "tandem-store-bench-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) std::abort();
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Blocks that overwrite a key space four times their size, with 32-byte keys and 64-byte values
// (about the size of an indexer's entries), one delete in ten.
std::vector<WriteSet> MakeBlocks(int writes_per_block, int count, uint64_t* bytes_per_block) {
  std::mt19937_64 rng(7);
  std::vector<WriteSet> blocks(count);
  *bytes_per_block = 0;
  for (WriteSet& block : blocks) {
    while (static_cast<int>(block.size()) < writes_per_block) {
      std::string key = absl::StrCat("key/", rng() % (4 * static_cast<uint64_t>(writes_per_block)));
      key.resize(32, '.');
      block[key] =
          rng() % 10 == 0 ? std::string() : std::string(64, static_cast<char>('a' + rng() % 26));
    }
  }
  for (const auto& [k, v] : blocks[0]) *bytes_per_block += k.size() + v.size();
  return blocks;
}

void BM_CommitBlock(benchmark::State& state) {
  const int writes = static_cast<int>(state.range(0));
  const bool sync = state.range(1) != 0;
  ScratchDir dir;
  BlockStoreOptions options;
  options.sync = sync;
  absl::StatusOr<std::unique_ptr<BlockStore>> store = BlockStore::Open(dir.path(), options);
  if (!store.ok()) {
    state.SkipWithError(std::string(store.status().message()).c_str());
    return;
  }
  uint64_t bytes_per_block = 0;
  const std::vector<WriteSet> blocks = MakeBlocks(writes, 16, &bytes_per_block);
  uint32_t height = 1;
  for (auto _ : state) {
    BlockCommit commit;
    commit.height = height;
    commit.hash = Sha256(absl::StrCat("block ", height));
    state.PauseTiming();
    commit.writes = blocks[height % blocks.size()];  // the copy is the caller's, not the store's
    state.ResumeTiming();
    absl::StatusOr<BlockRecord> record = (*store)->CommitBlock(std::move(commit));
    if (!record.ok()) {
      state.SkipWithError(std::string(record.status().message()).c_str());
      break;
    }
    ++height;
  }
  state.SetItemsProcessed(state.iterations() * writes);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes_per_block));
  state.counters["blocks_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

BENCHMARK(BM_CommitBlock)
    ->ArgNames({"writes", "sync"})
    ->ArgsProduct({{1'000, 10'000, 40'000}, {1, 0}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace tandem::store
