// In-process ingest of the real block set (the fixture blocks repeated, renumbered) by the example
// indexer: the guest over an in-memory map (the ceiling), over the block store committing each
// block before the next runs, and over the block store with the next block running while the
// previous one is written and synced (BlockStore::QueueCommit / WaitDurable). No gRPC, no pair:
// this isolates what the store costs and whether overlapping its commit pays. It must never
// measure setup: the module is compiled and the instance created before the clock starts.
//
// Run: ingest_bench [--benchmark_format=json]. Counters: blocks_per_s, and vs_ceiling, the
// ratio to the in-memory run of this process (run first).
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "benchmarks/bench_support.h"
#include "benchmarks/map_state.h"
#include "engine/instance.h"
#include "proxy/store_reader.h"
#include "store/block_store.h"
#include "tools/bench/bitcoin_blocks.h"

namespace tandem::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kBlocks = 320;  // the fixtures, 16 times

enum Mode { kMap = 0, kStoreSequential = 1, kStorePipelined = 2 };

const std::vector<std::string>& Fixtures() {
  static const auto* fixtures = new std::vector<std::string>(LoadFixtureBlocks(TANDEM_FIXTURES));
  return *fixtures;
}

double& CeilingBlocksPerSecond() {
  static double value = 0;
  return value;
}

void BM_RealIngest(benchmark::State& state) {
  const Mode mode = static_cast<Mode>(state.range(0));
  const bool sync = state.range(1) != 0;
  const std::vector<std::string>& fixtures = Fixtures();
  if (fixtures.empty()) return state.SkipWithError("no fixture blocks");
  const engine::Module& module = GuestModule(kSmallGuest);
  for (auto _ : state) {
    absl::StatusOr<std::unique_ptr<engine::Instance>> instance =
        engine::Instance::Create(BenchWorkers(), module, engine::InstanceOptions{});
    if (!instance.ok()) return state.SkipWithError(instance.status().ToString().c_str());
    ScratchDir dir;
    std::unique_ptr<store::BlockStore> store;
    std::unique_ptr<proxy::StoreReader> store_reader;
    MapReader map;
    if (mode != kMap) {
      store::BlockStoreOptions options;
      options.sync = sync;
      absl::StatusOr<std::unique_ptr<store::BlockStore>> opened =
          store::BlockStore::Open(dir.path() / "db", options);
      if (!opened.ok()) return state.SkipWithError(opened.status().ToString().c_str());
      store = *std::move(opened);
      store_reader = std::make_unique<proxy::StoreReader>(*store);
    }
    const engine::StateReader& reader =
        mode == kMap ? static_cast<const engine::StateReader&>(map) : *store_reader;

    const Clock::time_point start = Clock::now();
    for (uint32_t height = 1; height <= kBlocks; ++height) {
      const std::string& bytes = fixtures[(height - 1) % fixtures.size()];
      absl::StatusOr<engine::BlockResult> result =
          (*instance)->RunBlock(height, bytes, reader, absl::Seconds(60));
      if (!result.ok()) return state.SkipWithError(result.status().ToString().c_str());
      if (mode == kMap) {
        map.Apply(result->writes);
        continue;
      }
      store::BlockCommit commit;
      commit.height = height;
      commit.block_bytes = bytes;
      commit.hash = Sha256(absl::StrCat("real block ", height));
      commit.writes = std::move(result->writes);
      if (mode == kStoreSequential) {
        if (absl::StatusOr<store::BlockRecord> r = store->CommitBlock(std::move(commit)); !r.ok()) {
          return state.SkipWithError(r.status().ToString().c_str());
        }
        continue;
      }
      // Pipelined: queue this block, then acknowledge the one before it once durable; the next
      // block runs while this one is written.
      if (absl::Status queued = store->QueueCommit(std::move(commit)); !queued.ok()) {
        return state.SkipWithError(queued.ToString().c_str());
      }
      if (height > 1) {
        if (absl::StatusOr<store::BlockRecord> r = store->WaitDurable(height - 1); !r.ok()) {
          return state.SkipWithError(r.status().ToString().c_str());
        }
      }
    }
    if (mode == kStorePipelined) {
      if (absl::StatusOr<store::BlockRecord> r = store->WaitDurable(kBlocks); !r.ok()) {
        return state.SkipWithError(r.status().ToString().c_str());
      }
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    state.SetIterationTime(seconds);
    const double blocks_per_s = kBlocks / seconds;
    state.counters["blocks_per_s"] = blocks_per_s;
    if (mode == kMap) CeilingBlocksPerSecond() = std::max(CeilingBlocksPerSecond(), blocks_per_s);
    if (CeilingBlocksPerSecond() > 0) {
      state.counters["vs_ceiling"] = blocks_per_s / CeilingBlocksPerSecond();
    }
  }
}

BENCHMARK(BM_RealIngest)
    ->ArgNames({"mode", "sync"})
    ->Args({kMap, 0})
    ->Args({kStoreSequential, 1})
    ->Args({kStorePipelined, 1})
    ->Args({kStoreSequential, 0})
    ->Args({kStorePipelined, 0})
    ->Iterations(3)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tandem::bench
