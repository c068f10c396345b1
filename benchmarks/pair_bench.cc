// The instance pair in-process: swap pauses (idle and under view load) and block ingest under
// each swap policy, with the small example indexer and the 2–3 MB benchmark guest. It must never
// time set-up: stores, pairs and blocks are made before the timed loop.
//
// Run: pair_bench [--benchmark_format=json] [--benchmark_out=FILE]. Benchmarks of one guest run
// in the order none, sync, block, threshold, so `block` reports its ratios to the `none` and
// `sync` runs of the same process (counters vs_none, vs_sync). The store runs without fsync:
// durability costs the same under every policy and is measured by store_commit_bench.
#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "benchmark/benchmark.h"
#include "benchmarks/bench_support.h"
#include "proxy/events.h"
#include "proxy/instance_pair.h"
#include "store/block_store.h"
#include "tools/bench/bitcoin_blocks.h"
#include "util/mutex.h"

namespace tandem::bench {
namespace {

using proxy::PairEvent;
using proxy::SwapPolicy;

// Collects what the benchmarks report from the pair's events.
class EventCollector : public proxy::PairEventSink {
 public:
  void OnPairEvent(const PairEvent& event) override {
    util::MutexLock lock(&mu_);
    if (event.kind == PairEvent::Kind::kSwap && event.reason != proxy::SwapReason::kStartup) {
      swap_pauses_us_.push_back(Micros(event.pause));
    } else if (event.kind == PairEvent::Kind::kWarmReady) {
      warms_us_.push_back(Micros(event.duration));
    }
  }
  std::vector<double> swap_pauses_us() const {
    util::MutexLock lock(&mu_);
    return swap_pauses_us_;
  }
  std::vector<double> warms_us() const {
    util::MutexLock lock(&mu_);
    return warms_us_;
  }
  void Clear() {
    util::MutexLock lock(&mu_);
    swap_pauses_us_.clear();
    warms_us_.clear();
  }

 private:
  mutable util::Mutex mu_;
  std::vector<double> swap_pauses_us_ ABSL_GUARDED_BY(mu_);
  std::vector<double> warms_us_ ABSL_GUARDED_BY(mu_);
};

// A store in a scratch directory and a pair over it, ready to serve.
struct PairFixture {
  ScratchDir dir;
  std::unique_ptr<store::BlockStore> store;
  EventCollector events;
  std::unique_ptr<proxy::InstancePair> pair;

  absl::Status Start(absl::string_view guest, SwapPolicy policy) {
    store::BlockStoreOptions store_options;
    store_options.sync = false;
    absl::StatusOr<std::unique_ptr<store::BlockStore>> opened =
        store::BlockStore::Open(dir.path(), store_options);
    if (!opened.ok()) return opened.status();
    store = *std::move(opened);
    proxy::PairOptions options;
    options.policy = policy;
    options.random_seed = 7;
    pair = std::make_unique<proxy::InstancePair>(GuestModule(guest), *store, options, &events);
    return pair->WaitUntilReady(absl::Seconds(30));
  }
  ~PairFixture() { pair.reset(); }
};

// The view each guest answers cheaply at the tip.
absl::string_view ViewOf(absl::string_view guest) {
  return guest == kLargeGuest ? "stats" : "block_summary";
}

// Threads that call a view at the tip in a loop until destroyed.
class ViewLoad {
 public:
  ViewLoad(proxy::InstancePair& pair, absl::string_view view, int threads) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this, &pair, view] {
        while (!stop_.load(std::memory_order_relaxed)) {
          absl::StatusOr<proxy::ViewOutcome> outcome = pair.View(view, std::nullopt, "");
          (outcome.ok() ? views_ : failures_).fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
  }
  ~ViewLoad() { Stop(); }
  void Stop() {
    stop_ = true;
    for (std::thread& thread : threads_) thread.join();
    threads_.clear();
  }
  uint64_t views() const { return views_.load(); }
  uint64_t failures() const { return failures_.load(); }

 private:
  // Atomics: plain counters and a stop flag, read only for reporting and loop exit.
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> views_{0};
  std::atomic<uint64_t> failures_{0};
  std::vector<std::thread> threads_;
};

absl::string_view GuestByIndex(int64_t index) { return index == 0 ? kSmallGuest : kLargeGuest; }
SwapPolicy PolicyByIndex(int64_t index) {
  constexpr SwapPolicy kPolicies[] = {SwapPolicy::kNone, SwapPolicy::kSync, SwapPolicy::kBlock,
                                      SwapPolicy::kThreshold};
  return kPolicies[index];
}

// Synthetic blocks of one size class, made on demand and kept, so every run of a class sees
// the same bytes at the same height. Small: a coinbase and up to 3 spends (~300–700 bytes, the
// guest's work is tiny next to a warm-up). Large: up to 1,500 spends (about 100–300 KB once
// enough outputs exist, so the block's own work outlasts a warm-up). Not thread-safe: used by the
// benchmark thread only.
class BlockCache {
 public:
  explicit BlockCache(int max_spends) : generator_(42, max_spends) {}
  const std::string& At(uint32_t height) {
    while (blocks_.size() < height) {
      blocks_.push_back(generator_.Next(static_cast<uint32_t>(blocks_.size() + 1)));
    }
    return blocks_[height - 1];
  }

 private:
  SyntheticBlocks generator_;
  std::vector<std::string> blocks_;
};

BlockCache& Blocks(int64_t size_class) {
  static auto* small = new BlockCache(3);
  static auto* large = new BlockCache(1500);
  return size_class == 0 ? *small : *large;
}

// V8 compiles a module with Liftoff first and tiers hot functions up to TurboFan in the
// background; the compiled code is shared by every instance of the process. Whichever benchmark
// ran a guest first would run on slower code than the ones after it, so before the first
// measurement of a guest this ingests 1,000 small and 50 large blocks, untimed.
void EnsureTieredUp(absl::string_view guest) {
  static auto* done = new std::vector<std::string>();
  if (std::find(done->begin(), done->end(), guest) != done->end()) return;
  done->emplace_back(guest);
  for (int64_t size_class : {0, 1}) {
    PairFixture fixture;
    if (!fixture.Start(guest, SwapPolicy::kNone).ok()) return;
    const uint32_t count = size_class == 0 ? 1000 : 50;
    for (uint32_t height = 1; height <= count; ++height) {
      proxy::BlockSubmission block;
      block.height = height;
      block.bytes = Blocks(size_class).At(height);
      if (!fixture.pair->SubmitBlock(block).ok()) return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Swap pause.

// InstancePair::Swap under `none` (so only these swaps happen), each waiting for the warmer's next
// READY standby. Manual time is the pause the pair reports (no call could start). Counters:
// pause p50/p99/max; `call_p99_us`: Swap's own wall time minus its wait for a READY standby
// (lock acquisition and publishing included), the pause as a caller would bound it; views/s of
// the load threads (0 or 2 calling the guest's view at the tip).
void BM_Swap(benchmark::State& state) {
  const absl::string_view guest = GuestByIndex(state.range(0));
  const int view_threads = static_cast<int>(state.range(1));
  EnsureTieredUp(guest);
  PairFixture fixture;
  if (absl::Status started = fixture.Start(guest, SwapPolicy::kNone); !started.ok()) {
    return state.SkipWithError(started.ToString().c_str());
  }
  proxy::BlockSubmission block;
  block.height = 1;
  block.bytes = Blocks(0).At(1);
  if (auto outcome = fixture.pair->SubmitBlock(block); !outcome.ok()) {
    return state.SkipWithError(outcome.status().ToString().c_str());
  }
  ViewLoad load(*fixture.pair, ViewOf(guest), view_threads);
  std::vector<double> pauses_us, calls_us;
  const absl::Time start = absl::Now();
  for (auto _ : state) {
    const absl::Time call_start = absl::Now();
    absl::StatusOr<proxy::SwapOutcome> swapped = fixture.pair->Swap(absl::Seconds(10));
    const absl::Duration call = absl::Now() - call_start;
    if (!swapped.ok()) return state.SkipWithError(swapped.status().ToString().c_str());
    state.SetIterationTime(absl::ToDoubleSeconds(swapped->pause));
    pauses_us.push_back(Micros(swapped->pause));
    calls_us.push_back(Micros(call - swapped->waited));
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  load.Stop();
  state.counters["pause_p50_us"] = Quantile(pauses_us, 0.5);
  state.counters["pause_p99_us"] = Quantile(pauses_us, 0.99);
  state.counters["pause_max_us"] = Quantile(pauses_us, 1.0);
  state.counters["call_p50_us"] = Quantile(calls_us, 0.5);
  state.counters["call_p99_us"] = Quantile(calls_us, 0.99);
  state.counters["views_per_s"] = static_cast<double>(load.views()) / seconds;
  state.counters["view_failures"] = static_cast<double>(load.failures());
  state.SetLabel(absl::StrCat(guest, ", ", view_threads, " view threads"));
}
BENCHMARK(BM_Swap)
    ->ArgNames({"large", "view_threads"})
    ->ArgsProduct({{0, 1}, {0, 2}})
    ->Iterations(300)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------------------------------------
// Ingest under each policy.

// Blocks per second of each (guest, block size, view threads, policy) run so far, for ratios.
std::map<std::string, double>& IngestRates() {
  static auto* rates = new std::map<std::string, double>();
  return *rates;
}

// Submits blocks 1, 2, ... back to back, as many as fit in the benchmark's minimum time (each
// call of this function is a fresh store and pair). Counters: blocks/s, block latency p50/p99
// (SubmitBlock's wall time), swap pause p50/p99/max and warm p50 from the pair's events, views/s
// of the load threads, and the ratio of blocks/s to the `none` and `sync` runs of the same guest,
// block size and view load (vs_none, vs_sync).
void BM_Ingest(benchmark::State& state) {
  const absl::string_view guest = GuestByIndex(state.range(0));
  const int64_t size_class = state.range(1);
  const SwapPolicy policy = PolicyByIndex(state.range(2));
  const int view_threads = static_cast<int>(state.range(3));
  BlockCache& blocks = Blocks(size_class);
  EnsureTieredUp(guest);
  PairFixture fixture;
  if (absl::Status started = fixture.Start(guest, policy); !started.ok()) {
    return state.SkipWithError(started.ToString().c_str());
  }
  // Every block of this run is made before the clock starts (the benchmark knows how many).
  blocks.At(static_cast<uint32_t>(state.max_iterations));
  fixture.events.Clear();
  ViewLoad load(*fixture.pair, ViewOf(guest), view_threads);
  std::vector<double> latencies_us;
  uint64_t block_bytes = 0;
  uint32_t height = 1;
  const absl::Time start = absl::Now();
  const ProcessCpu cpu;
  for (auto _ : state) {
    proxy::BlockSubmission block;
    block.height = height;
    block.bytes = blocks.At(height);
    block_bytes += block.bytes.size();
    const absl::Time block_start = absl::Now();
    absl::StatusOr<proxy::BlockOutcome> outcome = fixture.pair->SubmitBlock(block);
    latencies_us.push_back(Micros(absl::Now() - block_start));
    if (!outcome.ok()) return state.SkipWithError(outcome.status().ToString().c_str());
    ++height;
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const double submitted = static_cast<double>(state.iterations());
  state.counters["cpu_us_per_block"] = cpu.CpuMicrosPer(submitted);
  state.counters["switches_per_block"] = cpu.SwitchesPer(submitted);
  load.Stop();
  const double rate = submitted / seconds;
  const std::string policy_name(proxy::SwapPolicyName(policy));
  const std::string key_prefix = absl::StrCat(guest, "/", size_class, "/", view_threads, "/");
  IngestRates()[key_prefix + policy_name] = rate;

  std::vector<double> pauses = fixture.events.swap_pauses_us();
  std::vector<double> warms = fixture.events.warms_us();
  state.counters["blocks_per_s"] = rate;
  state.counters["block_kib"] = static_cast<double>(block_bytes) / 1024.0 / submitted;
  state.counters["latency_p50_us"] = Quantile(latencies_us, 0.5);
  state.counters["latency_p99_us"] = Quantile(latencies_us, 0.99);
  state.counters["swaps"] = static_cast<double>(pauses.size());
  state.counters["pause_p50_us"] = Quantile(pauses, 0.5);
  state.counters["pause_p99_us"] = Quantile(pauses, 0.99);
  state.counters["pause_max_us"] = Quantile(pauses, 1.0);
  state.counters["warm_p50_us"] = Quantile(warms, 0.5);
  if (view_threads > 0) state.counters["views_per_s"] = static_cast<double>(load.views()) / seconds;
  for (const char* baseline : {"none", "sync"}) {
    auto found = IngestRates().find(key_prefix + baseline);
    if (found != IngestRates().end() && policy_name != baseline) {
      state.counters[absl::StrCat("vs_", baseline)] = rate / found->second;
    }
  }
  state.SetLabel(absl::StrCat(guest, ", ", size_class == 0 ? "small" : "large", " blocks, ",
                              policy_name, ", ", view_threads, " view threads"));
}
BENCHMARK(BM_Ingest)
    ->ArgNames({"large_guest", "large_blocks", "policy", "view_threads"})
    // policy: 0 none, 1 sync, 2 block, 3 threshold. none and sync first: the others divide by them.
    ->ArgsProduct({{0, 1}, {0, 1}, {0, 1, 2, 3}, {0}})
    ->ArgsProduct({{0, 1}, {0}, {0, 1, 2}, {2}})
    ->MinTime(1.0)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Blocks that arrive one every 10 ms (slower than a warm-up, as on a live chain), 100 of them.
// The latency of a block is what the policy puts on its critical path: `block` should match
// `none` (the standby was warmed while waiting), `sync` pays a warm-up after every block.
void BM_PacedLatency(benchmark::State& state) {
  const absl::string_view guest = GuestByIndex(state.range(0));
  const SwapPolicy policy = PolicyByIndex(state.range(1));
  EnsureTieredUp(guest);
  PairFixture fixture;
  if (absl::Status started = fixture.Start(guest, policy); !started.ok()) {
    return state.SkipWithError(started.ToString().c_str());
  }
  std::vector<double> latencies_us, durations_us;
  uint32_t height = 1;
  absl::Time next = absl::Now();
  for (auto _ : state) {
    state.PauseTiming();
    absl::SleepFor(next - absl::Now());
    next += absl::Milliseconds(10);
    proxy::BlockSubmission block;
    block.height = height;
    block.bytes = Blocks(0).At(height);
    state.ResumeTiming();
    const absl::Time block_start = absl::Now();
    absl::StatusOr<proxy::BlockOutcome> outcome = fixture.pair->SubmitBlock(block);
    const absl::Duration latency = absl::Now() - block_start;
    latencies_us.push_back(Micros(latency));
    state.SetIterationTime(absl::ToDoubleSeconds(latency));
    if (!outcome.ok()) return state.SkipWithError(outcome.status().ToString().c_str());
    durations_us.push_back(Micros(outcome->duration));
    ++height;
  }
  state.counters["latency_p50_us"] = Quantile(latencies_us, 0.5);
  state.counters["latency_p99_us"] = Quantile(latencies_us, 0.99);
  // The pair's own figure (BlockOutcome::duration: from taking the ingest lock to the commit).
  state.counters["pair_p50_us"] = Quantile(durations_us, 0.5);
  state.SetLabel(
      absl::StrCat(guest, ", ", proxy::SwapPolicyName(policy), ", small blocks every 10 ms"));
}
BENCHMARK(BM_PacedLatency)
    ->ArgNames({"large_guest", "policy"})
    ->ArgsProduct({{0, 1}, {0, 1, 2}})
    ->Iterations(100)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace tandem::bench
