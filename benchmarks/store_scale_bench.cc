// The block store at indexer scale: 1 M and 10 M keys of synthetic indexer state (keys of a short
// prefix and a 32-byte hash, values of 8-80 bytes, every key rewritten about once more across
// 12,000 heights), then Get at the tip and 10,000 blocks back, commits of 10,000 writes, rollbacks
// of 100 blocks, disk bytes per key and RSS, with the store's default memory caps (block cache,
// write buffers). It must never measure the build of the state, only the operations on it.
//
// BM_InMemoryBaseline/map:M/keys:N holds the same live keys in memory, no store at all, and times
// a lookup the same way: std::map (the ceiling's state, an O(log n) tree) and absl::flat_hash_map
// (O(1)). Their growth from 1 M to 10 M keys is what this machine's caches and TLB alone add to a
// lookup whose algorithmic cost grows by log n or not at all: the yardstick for the store's.
//
// Run: store_scale_bench [--scale_keys=1000000,10000000] [--scale_dir=DIR]
//                        [--scale_block_cache=BYTES] [--scale_warm_all] [--benchmark_format=json]
//                        [--benchmark_filter=BM_InMemoryBaseline]
// With --scale_dir the built databases are kept there (DIR/keys-N) and reused by later runs;
// without it they live in a temporary directory. Building 10 M keys takes a few minutes.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "benchmark/benchmark.h"
#include "benchmarks/bench_util.h"
#include "benchmarks/indexer_state.h"
#include "store/block_store.h"
#include "store/state_root.h"

namespace tandem::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t kStart = 1;
constexpr uint32_t kBuildBlocks = 12'000;
constexpr uint32_t kPastDepth = 10'000;
// Lookups timed per measurement (and, before them, as many untimed ones).
constexpr int kSamples = 200'000;

struct Flags {
  std::vector<int64_t> keys = {1'000'000, 10'000'000};
  std::string dir;
  uint64_t block_cache_bytes = store::BlockStoreOptions().block_cache_bytes;
  // Before timing Gets, read every key once instead of 200,000 others: with a block cache as
  // large as the data, every lookup then hits it, which separates the cost of the lookup itself
  // from that of a cache too small for the key count.
  bool warm_all = false;
};
Flags& GetFlags() {
  static Flags flags;
  return flags;
}

double Micros(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

uint64_t StatusKib(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field, 0) == 0)
      return std::strtoull(line.c_str() + std::strlen(field), nullptr, 10);
  }
  return 0;
}

uint64_t DirectoryBytes(const std::filesystem::path& dir) {
  uint64_t bytes = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) bytes += entry.file_size();
  }
  return bytes;
}

void Die(const absl::Status& status, const char* what) {
  std::fprintf(stderr, "store_scale_bench: %s: %s\n", what, status.ToString().c_str());
  std::abort();
}

store::BlockStoreOptions StoreOptions(bool sync) {
  store::BlockStoreOptions options;
  options.sync = sync;
  options.block_cache_bytes = GetFlags().block_cache_bytes;
  return options;
}

store::BlockCommit Commit(uint32_t height, util::WriteSet writes) {
  store::BlockCommit commit;
  commit.height = height;
  commit.hash = store::Sha256(absl::StrCat("scale block ", height));
  commit.writes = std::move(writes);
  return commit;
}

// Builds (or finds, under --scale_dir) the database of `keys` keys; returns its path. The build
// writes without fsync: it is setup, not measured.
std::filesystem::path BuildOrReuse(int64_t keys, std::unique_ptr<ScratchDir>& scratch,
                                   double* build_seconds) {
  std::filesystem::path path;
  if (GetFlags().dir.empty()) {
    scratch = std::make_unique<ScratchDir>();
    path = scratch->path() / absl::StrCat("keys-", keys);
  } else {
    path = std::filesystem::path(GetFlags().dir) / absl::StrCat("keys-", keys);
  }
  const IndexerBlocks blocks{static_cast<uint64_t>(keys) / kBuildBlocks,
                             static_cast<uint64_t>(keys) / kBuildBlocks};
  absl::StatusOr<std::unique_ptr<store::BlockStore>> store =
      store::BlockStore::Open(path, StoreOptions(/*sync=*/false));
  if (!store.ok()) Die(store.status(), "open");
  const uint32_t last = kStart + kBuildBlocks - 1;
  std::optional<store::BlockRecord> tip = (*store)->GetTip();
  if (tip.has_value() && tip->height > last) {
    if (absl::Status s = (*store)->Rollback(last); !s.ok()) Die(s, "rollback to the built tip");
    tip = (*store)->GetTip();
  }
  const Clock::time_point start = Clock::now();
  for (uint32_t h = tip.has_value() ? tip->height + 1 : kStart; h <= last; ++h) {
    absl::StatusOr<store::BlockRecord> record =
        (*store)->CommitBlock(Commit(h, blocks.Block(kStart, h)));
    if (!record.ok()) Die(record.status(), "build commit");
    if (h % 1000 == 0) std::fprintf(stderr, "  built %u of %u blocks\n", h, last);
  }
  *build_seconds = Micros(start, Clock::now()) / 1e6;
  return path;
}

// Uniformly random keys among the first `count` of the key numbering.
std::vector<std::string> SampleKeys(uint64_t count, int samples, uint64_t seed) {
  std::vector<std::string> keys;
  uint64_t bits = seed;
  for (int i = 0; i < samples; ++i) {
    bits = Mix64(bits);
    keys.push_back(IndexerKey(bits % count));
  }
  return keys;
}

// The time of each `lookup(key)` over `keys`, in microseconds; `lookup` says whether it found it.
template <typename Lookup>
std::vector<double> TimeLookups(const std::vector<std::string>& keys, Lookup lookup,
                                uint64_t* found) {
  std::vector<double> micros;
  micros.reserve(keys.size());
  for (const std::string& key : keys) {
    const Clock::time_point t0 = Clock::now();
    const bool hit = lookup(key);
    micros.push_back(Micros(t0, Clock::now()));
    *found += hit;
  }
  return micros;
}

// p50 and p99 of Get over `keys` at `height`, after one untimed pass over the same number of
// other keys (so the block cache holds what a running node's would).
void MeasureGets(benchmark::State& state, const store::BlockStore& store, uint64_t key_count,
                 uint32_t height, const char* name) {
  if (GetFlags().warm_all) {
    for (uint64_t k = 0; k < key_count; ++k) {
      if (!store.Get(IndexerKey(k), height).ok()) std::abort();
    }
  } else {
    for (const std::string& key : SampleKeys(key_count, kSamples, 1 + height)) {
      if (!store.Get(key, height).ok()) std::abort();
    }
  }
  uint64_t found = 0;
  std::vector<double> micros = TimeLookups(
      SampleKeys(key_count, kSamples, 7 + height),
      [&](const std::string& key) {
        absl::StatusOr<std::optional<std::string>> got = store.Get(key, height);
        if (!got.ok()) Die(got.status(), "get");
        return got->has_value();
      },
      &found);
  state.counters[absl::StrCat(name, "_p50_us")] = Quantile(micros, 0.5);
  state.counters[absl::StrCat(name, "_p99_us")] = Quantile(micros, 0.99);
  state.counters[absl::StrCat(name, "_found")] = static_cast<double>(found) / kSamples;
}

void BM_StoreAtScale(benchmark::State& state) {
  const int64_t keys = state.range(0);
  std::unique_ptr<ScratchDir> scratch;
  double build_seconds = 0;
  const std::filesystem::path path = BuildOrReuse(keys, scratch, &build_seconds);
  const uint32_t built_tip = kStart + kBuildBlocks - 1;
  const IndexerBlocks blocks{static_cast<uint64_t>(keys) / kBuildBlocks,
                             static_cast<uint64_t>(keys) / kBuildBlocks};

  for (auto _ : state) {
    // Measured on a fresh open, with fsync on as in production.
    absl::StatusOr<std::unique_ptr<store::BlockStore>> opened =
        store::BlockStore::Open(path, StoreOptions(/*sync=*/true));
    if (!opened.ok()) Die(opened.status(), "reopen");
    store::BlockStore& store = **opened;
    const uint64_t live_keys = blocks.KeysBefore(kStart, built_tip + 1);

    MeasureGets(state, store, live_keys, built_tip, "get_tip");
    // Keys that existed 10,000 blocks back, read as of then: most were rewritten since.
    const uint32_t past = built_tip - kPastDepth;
    MeasureGets(state, store, blocks.KeysBefore(kStart, past + 1), past, "get_past");

    // Commits of 10,000 writes: 5,000 new keys, 5,000 rewrites.
    std::vector<double> commit_us;
    uint32_t height = built_tip;
    uint64_t next_fresh = live_keys;
    for (int i = 0; i < 20; ++i) {
      util::WriteSet writes;
      ++height;
      for (uint64_t k = next_fresh; k < next_fresh + 5'000; ++k) {
        writes.insert_or_assign(IndexerKey(k), IndexerValue(k, height));
      }
      uint64_t bits = Mix64(height);
      while (writes.size() < 10'000) {
        bits = Mix64(bits);
        writes.insert_or_assign(IndexerKey(bits % next_fresh), IndexerValue(bits, height));
      }
      next_fresh += 5'000;
      store::BlockCommit commit = Commit(height, std::move(writes));
      const Clock::time_point t0 = Clock::now();
      absl::StatusOr<store::BlockRecord> record = store.CommitBlock(std::move(commit));
      commit_us.push_back(Micros(t0, Clock::now()));
      if (!record.ok()) Die(record.status(), "commit");
    }
    state.counters["commit_10k_p50_ms"] = Quantile(commit_us, 0.5) / 1e3;
    state.counters["commit_10k_max_ms"] = Quantile(commit_us, 1.0) / 1e3;

    // Rollbacks of 100 blocks of 1,000 writes each.
    std::vector<double> rollback_us;
    for (int round = 0; round < 5; ++round) {
      const uint32_t base = height;
      for (int b = 0; b < 100; ++b) {
        util::WriteSet writes;
        ++height;
        uint64_t bits = Mix64(height * 31 + round);
        while (writes.size() < 1'000) {
          bits = Mix64(bits);
          const uint64_t k = bits % (next_fresh + 500);  // a few new keys too
          writes.insert_or_assign(IndexerKey(k), IndexerValue(k, height));
        }
        absl::StatusOr<store::BlockRecord> record =
            store.CommitBlock(Commit(height, std::move(writes)));
        if (!record.ok()) Die(record.status(), "commit before rollback");
      }
      const Clock::time_point t0 = Clock::now();
      if (absl::Status s = store.Rollback(base); !s.ok()) Die(s, "rollback");
      rollback_us.push_back(Micros(t0, Clock::now()));
      height = base;
    }
    state.counters["rollback_100_p50_ms"] = Quantile(rollback_us, 0.5) / 1e3;
    state.counters["rollback_100_max_ms"] = Quantile(rollback_us, 1.0) / 1e3;

    // Back to the built state, so a kept database is reused as it was.
    if (absl::Status s = store.Rollback(built_tip); !s.ok()) Die(s, "rollback to the built tip");
    state.counters["rss_mib"] = static_cast<double>(StatusKib("VmRSS:")) / 1024;
    state.counters["peak_rss_mib"] = static_cast<double>(StatusKib("VmHWM:")) / 1024;
  }
  state.counters["keys"] = static_cast<double>(keys);
  state.counters["build_s"] = build_seconds;
  state.counters["disk_bytes_per_key"] =
      static_cast<double>(DirectoryBytes(path)) / static_cast<double>(keys);
  state.counters["block_cache_mib"] = static_cast<double>(GetFlags().block_cache_bytes >> 20);
  state.counters["warm_all"] = GetFlags().warm_all ? 1 : 0;
}

// The in-memory yardstick: `Map` holds key -> value for every live key of the built state at its
// tip, and lookups are timed exactly as MeasureGets times the store's.
template <typename Map>
void BM_InMemoryBaseline(benchmark::State& state) {
  const int64_t keys = state.range(1);
  const IndexerBlocks blocks{static_cast<uint64_t>(keys) / kBuildBlocks,
                             static_cast<uint64_t>(keys) / kBuildBlocks};
  const uint64_t live_keys = blocks.KeysBefore(kStart, kStart + kBuildBlocks);
  for (auto _ : state) {
    Map map;
    for (uint64_t k = 0; k < live_keys; ++k) map.emplace(IndexerKey(k), IndexerValue(k, kStart));
    uint64_t found = 0;
    for (const std::string& key : SampleKeys(live_keys, kSamples, 1)) found += map.count(key);
    std::vector<double> micros = TimeLookups(
        SampleKeys(live_keys, kSamples, 7),
        [&](const std::string& key) {
          auto it = map.find(key);
          benchmark::DoNotOptimize(it);
          return it != map.end();
        },
        &found);
    if (found != 2 * kSamples) std::abort();
    state.counters["get_p50_us"] = Quantile(micros, 0.5);
    state.counters["get_p99_us"] = Quantile(micros, 0.99);
  }
  state.counters["keys"] = static_cast<double>(keys);
}

// Strips this benchmark's own flags from argv (Google Benchmark refuses unknown ones).
void ParseOwnFlags(int* argc, char** argv) {
  int kept = 1;
  for (int i = 1; i < *argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg.rfind("--scale_keys=", 0) == 0) {
      GetFlags().keys.clear();
      for (absl::string_view n : absl::StrSplit(arg.substr(13), ',')) {
        int64_t value = 0;
        if (!absl::SimpleAtoi(n, &value)) std::abort();
        GetFlags().keys.push_back(value);
      }
    } else if (arg.rfind("--scale_dir=", 0) == 0) {
      GetFlags().dir = std::string(arg.substr(12));
    } else if (arg == "--scale_warm_all") {
      GetFlags().warm_all = true;
    } else if (arg.rfind("--scale_block_cache=", 0) == 0) {
      if (!absl::SimpleAtoi(arg.substr(20), &GetFlags().block_cache_bytes)) std::abort();
    } else {
      argv[kept++] = argv[i];
    }
  }
  *argc = kept;
}

}  // namespace
}  // namespace tandem::bench

int main(int argc, char** argv) {
  tandem::bench::ParseOwnFlags(&argc, argv);
  auto* bench = benchmark::RegisterBenchmark("BM_StoreAtScale", tandem::bench::BM_StoreAtScale);
  for (int64_t keys : tandem::bench::GetFlags().keys) bench->Arg(keys);
  bench->ArgNames({"keys"})->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
  // map:0 is std::map, map:1 absl::flat_hash_map.
  for (int map = 0; map < 2; ++map) {
    auto* baseline = benchmark::RegisterBenchmark(
        "BM_InMemoryBaseline",
        map == 0
            ? tandem::bench::BM_InMemoryBaseline<std::map<std::string, std::string>>
            : tandem::bench::BM_InMemoryBaseline<absl::flat_hash_map<std::string, std::string>>);
    for (int64_t keys : tandem::bench::GetFlags().keys) baseline->Args({map, keys});
    baseline->ArgNames({"map", "keys"})
        ->Iterations(1)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
