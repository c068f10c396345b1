// The measurements behind the store's layout (store/block_store.cc, "Layout"): the same indexer
// state written and read through raw RocksDB in each candidate layout and memtable setting, so
// the choice can be re-checked on any machine. It must never link BlockStore: each layout is
// written out here in a few lines, exactly as the store would use RocksDB.
//
// Layouts (benchmark argument `layout`):
//   0 v1       the old format: one keyspace, 'v' ‖ len ‖ key ‖ ~height; Get = iterator Seek.
//   1 latest   a `latest` column family (key -> height ‖ value, a point lookup at the tip) beside
//              a `history` column family in the v1 encoding; past heights seek the history.
//   2 udt      RocksDB's user-defined timestamps (u64 height) on one column family; Get at any
//              height is a point lookup with ReadOptions::timestamp.
// Memtables (arguments `latest_rep` and `history_rep`, the second also for v1 and udt):
//   0 skiplist (RocksDB's default)
//   1 skiplist with insert hints (memtable_insert_with_hint_prefix_extractor on the tag byte)
//   2 hash skiplist: latest keyed by the whole key; history by the user-key part (prefix seek)
//   3 hash linked list, keyed as 2
//   4 hash linked list with in-place updates (latest only)
// and `write_buffer_mib`, each memtable's size.
//
// Every run: prefill 1 M distinct keys (half new, half rewrites per block), then time
// commits of 10,000 writes, Gets at the tip of keys that exist and of keys never written,
// and Gets 100 blocks back. Counters are microseconds; p50/p99 over single operations.
//
// Run: store_layout_bench [--benchmark_format=json] [--benchmark_filter=...]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "benchmarks/bench_support.h"
#include "benchmarks/indexer_state.h"
#include "engine/instance.h"
#include "rocksdb/comparator.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/memtablerep.h"
#include "rocksdb/options.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "tools/bench/bitcoin_blocks.h"

namespace rocksdb {
// Defined in RocksDB 7.8 (util/comparator.cc) but not declared in its public headers yet.
extern const Comparator* BytewiseComparatorWithU64Ts();
}  // namespace rocksdb

namespace tandem::bench {
namespace {

using Clock = std::chrono::steady_clock;

enum Layout { kV1 = 0, kLatest = 1, kUdt = 2 };
enum Memtable {
  kSkipList = 0,
  kHinted = 1,
  kHashSkipList = 2,
  kHashLinkList = 3,
  kHashLinkListInPlace = 4,  // 3, and a rewrite no longer than the value it replaces is in place
};

void Check(const rocksdb::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
    std::abort();
  }
}

void AppendU32(std::string* out, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  out->append(b, 4);
}

std::string VersionPrefix(std::string_view key) {
  std::string out(1, 'v');
  AppendU32(&out, static_cast<uint32_t>(key.size()));
  out.append(key);
  return out;
}

std::string U64Ts(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(v >> (8 * i));  // fixed64, little end
  return out;
}

// Everything but the trailing 4-byte height: one user key's versions share it.
class UserKeyPart : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "tandem.bench.UserKeyPart"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), key.size() - 4);
  }
  bool InDomain(const rocksdb::Slice& key) const override { return key.size() >= 5; }
};

// The whole key: a hash memtable then holds one bucket per key (a hash table).
class WholeKey : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "tandem.bench.WholeKey"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override { return key; }
  bool InDomain(const rocksdb::Slice&) const override { return true; }
};

// One layout over one database.
class Store {
 public:
  Store(const std::filesystem::path& path, Layout layout, Memtable latest_rep, Memtable history_rep,
        size_t write_buffer)
      : layout_(layout) {
    rocksdb::Options db_options;
    db_options.create_if_missing = true;
    db_options.create_missing_column_families = true;
    db_options.max_background_jobs = 2;
    db_options.allow_concurrent_memtable_write = std::max(latest_rep, history_rep) < kHashSkipList;

    rocksdb::BlockBasedTableOptions table;
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    table.block_cache = rocksdb::NewLRUCache(256 << 20);
    auto data_options = [&](bool versioned) {
      const Memtable memtable = versioned ? history_rep : latest_rep;
      rocksdb::ColumnFamilyOptions cf;
      cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
      cf.write_buffer_size = write_buffer;
      if (memtable < kHashSkipList) {
        // A hash memtable finds a key's bucket directly; a bloom filter only helps the skiplist.
        cf.memtable_whole_key_filtering = true;
        cf.memtable_prefix_bloom_size_ratio = 0.02;
      }
      if (memtable == kHinted) {
        cf.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(1));
      } else if (memtable >= kHashSkipList) {
        cf.inplace_update_support = memtable == kHashLinkListInPlace;
        cf.memtable_factory.reset(memtable == kHashSkipList
                                      ? rocksdb::NewHashSkipListRepFactory(1 << 18)
                                      : rocksdb::NewHashLinkListRepFactory(1 << 18));
        if (versioned) {
          cf.prefix_extractor = std::make_shared<UserKeyPart>();
        } else {
          cf.prefix_extractor = std::make_shared<WholeKey>();
        }
      }
      return cf;
    };

    std::vector<rocksdb::ColumnFamilyDescriptor> families = {
        {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()}};
    if (layout == kV1) {
      families[0].options = data_options(true);
    } else if (layout == kLatest) {
      families.push_back({"latest", data_options(false)});
      families.push_back({"history", data_options(true)});
    } else {
      // Timestamps need the skiplist (ordered by key, then timestamp): history_rep is ignored.
      rocksdb::ColumnFamilyOptions cf = data_options(false);
      cf.comparator = rocksdb::BytewiseComparatorWithU64Ts();
      families.push_back({"udt", cf});
    }
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    Check(rocksdb::DB::Open(db_options, path.string(), families, &handles, &raw), "open");
    db_.reset(raw);
    for (auto* h : handles) handles_.emplace_back(h);
  }

  ~Store() {
    handles_.clear();
    Check(db_->Close(), "close");
  }

  rocksdb::ColumnFamilyHandle* cf(size_t i) { return handles_[i].get(); }

  // Waits until RocksDB has flushed and compacted what the writes so far asked for.
  void WaitForBackgroundWork() {
    for (;;) {
      uint64_t pending = 0, running = 0, flushes = 0;
      db_->GetIntProperty(rocksdb::DB::Properties::kEstimatePendingCompactionBytes, &pending);
      db_->GetIntProperty(rocksdb::DB::Properties::kNumRunningCompactions, &running);
      db_->GetIntProperty(rocksdb::DB::Properties::kNumRunningFlushes, &flushes);
      if (pending == 0 && running == 0 && flushes == 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  void Commit(uint32_t height, const util::WriteSet& writes) {
    rocksdb::WriteBatch batch;
    std::string touched;
    std::string height_tag;
    AppendU32(&height_tag, height);
    const std::string ts = U64Ts(height);
    std::string version;
    std::string latest;
    for (const auto& [key, value] : writes) {
      AppendU32(&touched, static_cast<uint32_t>(key.size()));
      touched.append(key);
      if (layout_ == kUdt) {
        Check(value.empty() ? batch.Delete(cf(1), key, ts) : batch.Put(cf(1), key, ts, value),
              "put");
        continue;
      }
      version = VersionPrefix(key);
      AppendU32(&version, ~height);
      Check(batch.Put(layout_ == kV1 ? cf(0) : cf(2), version, value), "put");
      if (layout_ == kLatest) {
        latest = height_tag;
        latest.append(value);
        Check(batch.Put(cf(1), key, latest), "put");
      }
    }
    std::string touched_key = "t";
    AppendU32(&touched_key, height);
    Check(batch.Put(cf(0), touched_key, touched), "put");
    rocksdb::WriteOptions options;
    options.sync = false;
    Check(db_->Write(options, &batch), "write");
  }

  // The value at `height`; false when absent. `tip` is the store's tip height.
  bool Get(std::string_view key, uint32_t height, uint32_t tip, std::string* value) {
    if (layout_ == kUdt) {
      const std::string ts = U64Ts(height);
      rocksdb::Slice ts_slice(ts);
      rocksdb::ReadOptions options;
      options.timestamp = &ts_slice;
      rocksdb::PinnableSlice found;
      std::string found_ts;
      const rocksdb::Status s =
          db_->Get(options, cf(1), rocksdb::Slice(key.data(), key.size()), &found, &found_ts);
      if (s.IsNotFound()) return false;
      Check(s, "get");
      value->assign(found.data(), found.size());
      return true;
    }
    if (layout_ == kLatest && height >= tip) {
      rocksdb::PinnableSlice found;
      const rocksdb::Status s =
          db_->Get(rocksdb::ReadOptions(), cf(1), rocksdb::Slice(key.data(), key.size()), &found);
      if (s.IsNotFound()) return false;
      Check(s, "get");
      if (found.size() == 4) return false;  // a delete
      value->assign(found.data() + 4, found.size() - 4);
      return true;
    }
    // Seek the newest version at or below `height`, as the v1 store does.
    const std::string prefix = VersionPrefix(key);
    std::string target = prefix;
    AppendU32(&target, ~height);
    const std::string upper = prefix + std::string("\xff\xff\xff\xff\x00", 5);
    const rocksdb::Slice upper_slice(upper);
    rocksdb::ReadOptions options;
    options.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(options, layout_ == kV1 ? cf(0) : cf(2)));
    it->Seek(target);
    Check(it->status(), "seek");
    if (!it->Valid() || it->key().size() != prefix.size() + 4 || !it->key().starts_with(prefix)) {
      return false;
    }
    if (it->value().empty()) return false;
    value->assign(it->value().data(), it->value().size());
    return true;
  }

 private:
  const Layout layout_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<std::unique_ptr<rocksdb::ColumnFamilyHandle>> handles_;
};

double ProcessCpuSeconds() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

double Micros(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

void BM_Layout(benchmark::State& state) {
  const Layout layout = static_cast<Layout>(state.range(0));
  const Memtable latest_rep = static_cast<Memtable>(state.range(1));
  const Memtable history_rep = static_cast<Memtable>(state.range(2));
  const size_t write_buffer = static_cast<size_t>(state.range(3)) << 20;
  const uint64_t keys = 1'000'000;
  ScratchDir dir;
  auto store = std::make_unique<Store>(dir.path(), layout, latest_rep, history_rep, write_buffer);
  // Prefill: blocks of 2,500 new keys and 2,500 rewrites.
  const IndexerBlocks prefill{2'500, 2'500};
  const uint32_t start = 1;
  uint32_t tip = 0;
  const Clock::time_point fill_start = Clock::now();
  const double fill_cpu_start = ProcessCpuSeconds();
  for (uint32_t h = start; prefill.KeysBefore(start, h) < keys; ++h) {
    store->Commit(h, prefill.Block(start, h));
    tip = h;
  }
  store->WaitForBackgroundWork();
  const double fill_s = Micros(fill_start, Clock::now()) / 1e6;
  const double fill_cpu_s = ProcessCpuSeconds() - fill_cpu_start;
  const uint64_t written = prefill.KeysBefore(start, tip + 1);
  const double fill_writes = static_cast<double>(written) * 2;

  for (auto _ : state) {
    // Commits of 10,000 writes (5,000 new keys, 5,000 rewrites), on top of the prefill.
    std::vector<double> commit_us;
    IndexerBlocks big{5'000, 5'000};
    uint64_t next_fresh = written;
    for (int i = 0; i < 20; ++i) {
      // Continue the key numbering after the prefill.
      util::WriteSet writes;
      const uint32_t h = ++tip;
      for (uint64_t k = next_fresh; k < next_fresh + big.fresh; ++k) {
        writes.insert_or_assign(IndexerKey(k), IndexerValue(k, h));
      }
      uint64_t bits = Mix64(h);
      for (uint64_t r = 0; r < big.rewrites; ++r) {
        bits = Mix64(bits);
        writes.insert_or_assign(IndexerKey(bits % next_fresh), IndexerValue(bits, h));
      }
      next_fresh += big.fresh;
      const Clock::time_point t0 = Clock::now();
      store->Commit(h, writes);
      commit_us.push_back(Micros(t0, Clock::now()));
    }

    std::string value;
    std::vector<double> hit_us, miss_us, past_us, recent_us;
    uint64_t bits = 12345;
    int found = 0;
    for (int i = 0; i < 100'000; ++i) {
      bits = Mix64(bits);
      const std::string key = IndexerKey(bits % next_fresh);
      Clock::time_point t0 = Clock::now();
      found += store->Get(key, tip, tip, &value);
      hit_us.push_back(Micros(t0, Clock::now()));

      const std::string absent = IndexerKey(next_fresh + 1'000'000 + bits % 1'000'000);
      t0 = Clock::now();
      found += store->Get(absent, tip, tip, &value);
      miss_us.push_back(Micros(t0, Clock::now()));

      const std::string recent = IndexerKey(written + bits % (next_fresh - written));
      t0 = Clock::now();
      found += store->Get(recent, tip, tip, &value);
      recent_us.push_back(Micros(t0, Clock::now()));

      const std::string old_key = IndexerKey(bits % written);
      t0 = Clock::now();
      found += store->Get(old_key, tip - 100, tip, &value);
      past_us.push_back(Micros(t0, Clock::now()));
    }
    benchmark::DoNotOptimize(found);
    state.counters["fill_s"] = fill_s;
    // Process CPU (foreground and RocksDB's flushes and compactions) per write of the prefill.
    state.counters["fill_cpu_us_per_write"] = fill_cpu_s * 1e6 / fill_writes;
    state.counters["fill_wall_us_per_write"] = fill_s * 1e6 / fill_writes;
    state.counters["commit10k_p50_us"] = Quantile(commit_us, 0.5);
    state.counters["get_tip_p50_us"] = Quantile(hit_us, 0.5);
    state.counters["get_tip_p99_us"] = Quantile(hit_us, 0.99);
    state.counters["get_recent_p50_us"] = Quantile(recent_us, 0.5);
    state.counters["get_absent_p50_us"] = Quantile(miss_us, 0.5);
    state.counters["get_absent_p99_us"] = Quantile(miss_us, 0.99);
    state.counters["get_past_p50_us"] = Quantile(past_us, 0.5);
    state.counters["get_past_p99_us"] = Quantile(past_us, 0.99);
  }
}

BENCHMARK(BM_Layout)
    ->ArgNames({"layout", "latest_rep", "history_rep", "write_buffer_mib"})
    ->Args({kV1, kSkipList, kSkipList, 64})
    ->Args({kUdt, kSkipList, kSkipList, 64})
    ->Args({kLatest, kSkipList, kSkipList, 64})
    ->Args({kLatest, kSkipList, kSkipList, 16})
    ->Args({kLatest, kSkipList, kSkipList, 4})
    ->Args({kLatest, kHinted, kHinted, 64})
    ->Args({kLatest, kHashSkipList, kHashSkipList, 64})
    ->Args({kLatest, kHashLinkList, kHashLinkList, 64})
    ->Args({kLatest, kHashLinkList, kHashLinkList, 16})
    ->Args({kLatest, kHashLinkList, kSkipList, 64})
    ->Args({kLatest, kHashLinkList, kSkipList, 16})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------------------------------------
// The real workload: the example indexer on the fixture blocks repeated 16 times (tandem-bench's
// `real` set). Its reads and writes are recorded once over an in-memory map, then replayed on
// each layout: per block, every read at height - 1, then the commit.

struct TracedBlock {
  std::vector<std::string> reads;
  util::WriteSet writes;
};

class RecordingReader final : public engine::StateReader {
 public:
  absl::StatusOr<std::optional<std::string>> Get(absl::string_view key,
                                                 uint32_t /*height*/) const override {
    reads_->emplace_back(key);
    auto it = state_.find(key);
    if (it == state_.end()) return std::nullopt;
    return it->second;
  }
  void Record(std::vector<std::string>* reads) { reads_ = reads; }
  void Apply(const util::WriteSet& writes) {
    for (const auto& [key, value] : writes) {
      if (value.empty()) {
        state_.erase(key);
      } else {
        state_.insert_or_assign(key, value);
      }
    }
  }

 private:
  std::vector<std::string>* reads_ = nullptr;
  std::map<std::string, std::string, std::less<>> state_;
};

const std::vector<TracedBlock>& RealTrace() {
  static const std::vector<TracedBlock>* trace = [] {
    auto* blocks = new std::vector<TracedBlock>();
    const std::vector<std::string> fixtures = LoadFixtureBlocks(TANDEM_FIXTURES);
    const engine::Module& module = GuestModule(kSmallGuest);
    absl::StatusOr<std::unique_ptr<engine::Instance>> instance =
        engine::Instance::Create(BenchWorkers(), module, engine::InstanceOptions{});
    if (!instance.ok() || fixtures.empty()) std::abort();
    RecordingReader reader;
    for (uint32_t i = 0; i < 16 * fixtures.size(); ++i) {
      TracedBlock& block = blocks->emplace_back();
      reader.Record(&block.reads);
      absl::StatusOr<engine::BlockResult> result =
          (*instance)->RunBlock(i + 1, fixtures[i % fixtures.size()], reader, absl::Seconds(60));
      if (!result.ok()) std::abort();
      block.writes = std::move(result->writes);
      reader.Apply(block.writes);
    }
    return blocks;
  }();
  return *trace;
}

void BM_RealTrace(benchmark::State& state) {
  const Layout layout = static_cast<Layout>(state.range(0));
  const Memtable latest_rep = static_cast<Memtable>(state.range(1));
  const Memtable history_rep = static_cast<Memtable>(state.range(2));
  const size_t write_buffer = static_cast<size_t>(state.range(3)) << 20;
  const std::vector<TracedBlock>& trace = RealTrace();
  uint64_t reads = 0, writes = 0;
  for (const TracedBlock& block : trace) {
    reads += block.reads.size();
    writes += block.writes.size();
  }
  for (auto _ : state) {
    ScratchDir dir;
    auto store = std::make_unique<Store>(dir.path(), layout, latest_rep, history_rep, write_buffer);
    double read_s = 0, commit_s = 0;
    const double cpu_start = ProcessCpuSeconds();
    std::string value;
    int found = 0;
    // The trace four times over (heights continue), so that flushes and compactions of the
    // larger write buffers happen within the run too.
    const uint32_t blocks_run = 4 * static_cast<uint32_t>(trace.size());
    for (uint32_t i = 0; i < blocks_run; ++i) {
      const uint32_t height = i + 1;
      const TracedBlock& block = trace[i % trace.size()];
      const Clock::time_point t0 = Clock::now();
      for (const std::string& key : block.reads) {
        found += store->Get(key, height - 1, height - 1, &value);
      }
      const Clock::time_point t1 = Clock::now();
      store->Commit(height, block.writes);
      const Clock::time_point t2 = Clock::now();
      read_s += Micros(t0, t1) / 1e6;
      commit_s += Micros(t1, t2) / 1e6;
    }
    store->WaitForBackgroundWork();
    const double cpu_s = ProcessCpuSeconds() - cpu_start;
    benchmark::DoNotOptimize(found);
    const double blocks = static_cast<double>(blocks_run);
    reads *= 4;
    writes *= 4;
    state.counters["reads_per_block"] = static_cast<double>(reads) / blocks;
    state.counters["writes_per_block"] = static_cast<double>(writes) / blocks;
    state.counters["read_us_per_block"] = read_s * 1e6 / blocks;
    state.counters["commit_us_per_block"] = commit_s * 1e6 / blocks;
    state.counters["ns_per_read"] = read_s * 1e9 / static_cast<double>(reads);
    state.counters["ns_per_write"] = commit_s * 1e9 / static_cast<double>(writes);
    // Process CPU including RocksDB's background flushes and compactions.
    state.counters["cpu_us_per_block"] = cpu_s * 1e6 / blocks;
  }
}

BENCHMARK(BM_RealTrace)
    ->ArgNames({"layout", "latest_rep", "history_rep", "write_buffer_mib"})
    ->Args({kV1, kSkipList, kSkipList, 64})
    ->Args({kUdt, kSkipList, kSkipList, 64})
    ->Args({kUdt, kHinted, kHinted, 64})
    ->Args({kUdt, kSkipList, kSkipList, 8})
    ->Args({kLatest, kSkipList, kSkipList, 64})
    ->Args({kLatest, kSkipList, kSkipList, 16})
    ->Args({kLatest, kSkipList, kSkipList, 4})
    ->Args({kLatest, kHinted, kHinted, 64})
    ->Args({kLatest, kHashLinkList, kHashLinkList, 64})
    ->Args({kLatest, kHashLinkList, kHashLinkList, 32})
    ->Args({kLatest, kHashLinkList, kHashLinkList, 16})
    ->Args({kLatest, kHashLinkList, kHashLinkList, 4})
    ->Args({kLatest, kHashLinkList, kSkipList, 16})
    ->Args({kLatest, kHashSkipList, kHashSkipList, 64})
    ->Args({kLatest, kHashLinkListInPlace, kHashLinkList, 64})
    ->Args({kLatest, kHashLinkListInPlace, kHashLinkList, 32})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tandem::bench
