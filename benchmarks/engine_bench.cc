// What the engine's steps cost: a new isolate, sharing compiled code with it, instantiating, a
// whole warm-up (Instance::Create plus replayed init calls) on a new or a reused worker, memory
// over thousands of generations in one worker, and host calls (__get, __flush).
// It must never time set-up or tear-down: every figure is manual time around the step alone.
//
// Run: engine_bench [--benchmark_format=json] [--benchmark_out=FILE]. Times are per iteration;
// counters named *_us / *_ns are derived figures explained where they are set.
#include <v8.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "benchmark/benchmark.h"
#include "benchmarks/bench_support.h"
#include "engine/instance.h"
#include "engine/module.h"
#include "engine/platform.h"
#include "engine/state_reader.h"
#include "proxy/store_reader.h"
#include "store/block_store.h"
#include "tools/bench/bitcoin_blocks.h"

namespace tandem::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration<double>(end - start).count();
}

// Every guest name the engine benchmarks take, by benchmark argument.
absl::string_view GuestByIndex(int64_t index) { return index == 0 ? kSmallGuest : kLargeGuest; }

// ---------------------------------------------------------------------------------------------
// V8 alone: one isolate on the benchmark thread, the way an instance's thread holds its own.

class BenchIsolate {
 public:
  BenchIsolate() : allocator_(v8::ArrayBuffer::Allocator::NewDefaultAllocator()) {
    v8::Isolate::CreateParams params;
    params.array_buffer_allocator = allocator_.get();
    isolate_ = v8::Isolate::New(params);
    isolate_->Enter();
    v8::HandleScope handles(isolate_);
    context_.Reset(isolate_, v8::Context::New(isolate_));
  }
  ~BenchIsolate() {
    context_.Reset();
    isolate_->Exit();
    engine::NotifyIsolateShutdown(isolate_);
    isolate_->Dispose();
  }
  v8::Isolate* isolate() const { return isolate_; }
  v8::Local<v8::Context> context() const { return context_.Get(isolate_); }

 private:
  std::unique_ptr<v8::ArrayBuffer::Allocator> allocator_;
  v8::Isolate* isolate_;
  v8::Global<v8::Context> context_;
};

v8::Local<v8::String> Name(v8::Isolate* isolate, const char* text) {
  return v8::String::NewFromUtf8(isolate, text).ToLocalChecked();
}

// An import object whose every ABI function is a no-op: enough to instantiate any guest.
v8::Local<v8::Object> StubImports(v8::Isolate* isolate, v8::Local<v8::Context> context) {
  v8::Local<v8::Object> env = v8::Object::New(isolate);
  for (const char* name :
       {"__host_len", "__load_input", "__get_len", "__get", "__flush", "__log", "abort"}) {
    v8::Local<v8::Function> stub =
        v8::Function::New(context, [](const v8::FunctionCallbackInfo<v8::Value>&) {
        }).ToLocalChecked();
    env->Set(context, Name(isolate, name), stub).Check();
  }
  v8::Local<v8::Object> imports = v8::Object::New(isolate);
  imports->Set(context, Name(isolate, "env"), env).Check();
  return imports;
}

// Isolate::New + Context::New: what every fresh instance pays before its module is involved.
void BM_NewIsolateAndContext(benchmark::State& state) {
  GuestModule(kSmallGuest);  // Initializes V8.
  for (auto _ : state) {
    auto start = Clock::now();
    auto isolate = std::make_unique<BenchIsolate>();
    state.SetIterationTime(Seconds(start, Clock::now()));
    isolate.reset();
  }
}
BENCHMARK(BM_NewIsolateAndContext)->UseManualTime()->Unit(benchmark::kMicrosecond);

// WasmModuleObject::FromCompiledModule into an existing isolate.
void BM_FromCompiledModule(benchmark::State& state) {
  const engine::Module& module = GuestModule(GuestByIndex(state.range(0)));
  BenchIsolate bench;
  v8::HandleScope outer(bench.isolate());
  v8::Context::Scope context_scope(bench.context());
  for (auto _ : state) {
    v8::HandleScope handles(bench.isolate());
    auto start = Clock::now();
    v8::MaybeLocal<v8::WasmModuleObject> object =
        v8::WasmModuleObject::FromCompiledModule(bench.isolate(), module.compiled());
    state.SetIterationTime(Seconds(start, Clock::now()));
    if (object.IsEmpty()) return state.SkipWithError("FromCompiledModule failed");
  }
  state.SetLabel(
      absl::StrCat(GuestByIndex(state.range(0)), ", ", module.wire_bytes_size(), " bytes"));
}
BENCHMARK(BM_FromCompiledModule)
    ->ArgName("large")
    ->Arg(0)
    ->Arg(1)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// `new WebAssembly.Instance(module, imports)` alone, in an existing isolate and context, with
// the module object already shared into it.
void BM_InstantiateAlone(benchmark::State& state) {
  const engine::Module& module = GuestModule(GuestByIndex(state.range(0)));
  BenchIsolate bench;
  v8::Isolate* isolate = bench.isolate();
  v8::HandleScope outer(isolate);
  v8::Local<v8::Context> context = bench.context();
  v8::Context::Scope context_scope(context);
  v8::Local<v8::Object> web_assembly = context->Global()
                                           ->Get(context, Name(isolate, "WebAssembly"))
                                           .ToLocalChecked()
                                           .As<v8::Object>();
  v8::Local<v8::Function> constructor =
      web_assembly->Get(context, Name(isolate, "Instance")).ToLocalChecked().As<v8::Function>();
  v8::Local<v8::Object> imports = StubImports(isolate, context);
  v8::Local<v8::WasmModuleObject> object =
      v8::WasmModuleObject::FromCompiledModule(isolate, module.compiled()).ToLocalChecked();
  int since_gc = 0;
  for (auto _ : state) {
    v8::HandleScope handles(isolate);
    v8::Local<v8::Value> arguments[] = {object, imports};
    auto start = Clock::now();
    v8::MaybeLocal<v8::Object> instance = constructor->NewInstance(context, 2, arguments);
    state.SetIterationTime(Seconds(start, Clock::now()));
    if (instance.IsEmpty()) return state.SkipWithError("instantiation failed");
    if (++since_gc == 64) {  // Dead instances hold linear memories: collect them, untimed.
      isolate->LowMemoryNotification();
      engine::PumpForegroundTasks(isolate);
      since_gc = 0;
    }
  }
  state.SetLabel(std::string(GuestByIndex(state.range(0))));
}
BENCHMARK(BM_InstantiateAlone)
    ->ArgName("large")
    ->Arg(0)
    ->Arg(1)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------------------------------------
// The engine: a whole warm-up, as the pair's warmer does it.

// Answers every key with nothing.
class EmptyReaderForGenerations : public engine::StateReader {
 public:
  absl::StatusOr<std::optional<std::string>> Get(absl::string_view, uint32_t) const override {
    return std::nullopt;
  }
};

// Instance::Acquire and Instantiate with `init_calls` replayed init calls (init_config with a
// 256-byte payload), in one job as the pair's factory makes a standby, i.e. an engine-level
// warm-up with a replay log of that length. reused = 1: the worker comes back to the pool between
// iterations (what the pair does); reused = 0: every iteration starts a new worker (thread,
// isolate, context), as every warm-up did before workers were reused. Retiring the previous
// instance is not part of the time: a worker returns to the pool only once its retirement is done
// (BM_Generations measures it).
void BM_Warm(benchmark::State& state) {
  const absl::string_view guest = GuestByIndex(state.range(0));
  const int init_calls = static_cast<int>(state.range(1));
  const bool reused = state.range(2) != 0;
  const engine::Module& module = GuestModule(guest);
  std::vector<engine::InitCall> calls(init_calls, {"init_config", std::string(256, 'c')});
  engine::WorkerPoolOptions pool_options;
  pool_options.max_idle_workers = reused ? 1 : 0;
  engine::WorkerPool workers(pool_options);
  std::vector<double> warm_us;
  for (auto _ : state) {
    workers.AwaitRetirementsForTesting();  // As the pair's idle workers are: retired already.
    auto start = Clock::now();
    absl::StatusOr<std::unique_ptr<engine::Instance>> instance =
        engine::Instance::Acquire(workers, module, engine::InstanceOptions{});
    if (!instance.ok()) return state.SkipWithError(instance.status().ToString().c_str());
    absl::StatusOr<std::vector<std::string>> answers = (*instance)->Instantiate(calls, nullptr);
    if (!answers.ok()) return state.SkipWithError(answers.status().ToString().c_str());
    const double seconds = Seconds(start, Clock::now());
    state.SetIterationTime(seconds);
    warm_us.push_back(seconds * 1e6);
    instance->reset();
  }
  state.counters["warm_p50_us"] = Quantile(warm_us, 0.5);
  state.SetLabel(absl::StrCat(guest, ", ", init_calls, " init calls, ",
                              reused ? "reused worker" : "new worker"));
}
BENCHMARK(BM_Warm)
    ->ArgNames({"large", "init_calls", "reused"})
    ->Args({0, 0, 0})
    ->Args({0, 0, 1})
    ->Args({1, 0, 0})
    ->Args({1, 0, 1})
    ->Args({1, 10, 1})
    ->Args({1, 100, 1})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// 10,000 generations in one worker, as `block` makes them: create an instance, run one block of
// the leaky guest (it leaks 1 MiB, touching every page), retire it. Reports RSS and address space
// (VmSize) after the first 1,000 and after all generations: retired instances give their memory
// back at retirement (pages) and at the next collection (reservations), so neither grows.
void BM_Generations(benchmark::State& state) {
  const engine::Module& module = GuestModule("leaky");
  constexpr int kGenerations = 10'000;
  engine::WorkerPoolOptions pool_options;
  pool_options.max_idle_workers = 1;
  engine::WorkerPool workers(pool_options);
  EmptyReaderForGenerations reader;
  std::vector<double> generation_us;
  long rss_after_1000 = 0;
  long vm_after_1000 = 0;
  for (auto _ : state) {
    for (int generation = 1; generation <= kGenerations; ++generation) {
      auto start = Clock::now();
      absl::StatusOr<std::unique_ptr<engine::Instance>> instance =
          engine::Instance::Create(workers, module, engine::InstanceOptions{});
      if (!instance.ok()) return state.SkipWithError(instance.status().ToString().c_str());
      absl::StatusOr<engine::BlockResult> block =
          (*instance)->RunBlock(1, std::string("\x00\x04\x00\x00", 4), reader, absl::Seconds(60));
      if (!block.ok()) return state.SkipWithError(block.status().ToString().c_str());
      instance->reset();
      generation_us.push_back(Seconds(start, Clock::now()) * 1e6);
      if (generation == 1'000) {
        rss_after_1000 = ProcStatusKiB("VmRSS:");
        vm_after_1000 = ProcStatusKiB("VmSize:");
      }
    }
  }
  const engine::WorkerPoolStats stats = workers.Stats();
  state.counters["generations"] = kGenerations;
  state.counters["workers_started"] = static_cast<double>(stats.started);
  state.counters["generation_p50_us"] = Quantile(generation_us, 0.5);
  state.counters["generation_p99_us"] = Quantile(generation_us, 0.99);
  state.counters["rss_after_1000_mib"] = rss_after_1000 / 1024.0;
  state.counters["rss_after_all_mib"] = ProcStatusKiB("VmRSS:") / 1024.0;
  state.counters["vmsize_after_1000_gib"] = vm_after_1000 / 1048576.0;
  state.counters["vmsize_after_all_gib"] = ProcStatusKiB("VmSize:") / 1048576.0;
  state.SetLabel("leaky guest, 1 MiB per generation, one worker");
}
BENCHMARK(BM_Generations)->Iterations(1)->Unit(benchmark::kMillisecond);

// ---------------------------------------------------------------------------------------------
// The first block on a fresh instance against a later one: what `block` pays per block beyond the
// swap (a fresh instance's first call touches new linear memory and cold code paths).

// Answers every key with nothing: the indexers then write without reading old totals.
class EmptyReader : public engine::StateReader {
 public:
  absl::StatusOr<std::optional<std::string>> Get(absl::string_view, uint32_t) const override {
    return std::nullopt;
  }
};

// A small synthetic block (coinbase and three spends' worth of bytes, as pair_bench uses) run on
// a new instance (first = 1) or on one that has already run the same block once (first = 0).
void BM_BlockOnInstance(benchmark::State& state) {
  const absl::string_view guest = GuestByIndex(state.range(0));
  const bool first = state.range(1) != 0;
  const engine::Module& module = GuestModule(guest);
  EmptyReader reader;
  SyntheticBlocks generator(42);
  std::string block;
  for (uint32_t h = 1; h <= 20; ++h) block = generator.Next(h);
  std::unique_ptr<engine::Instance> instance;
  auto fresh = [&]() -> absl::Status {
    instance.reset();
    absl::StatusOr<std::unique_ptr<engine::Instance>> created =
        engine::Instance::Create(BenchWorkers(), module, engine::InstanceOptions{});
    if (!created.ok()) return created.status();
    instance = *std::move(created);
    return absl::OkStatus();
  };
  if (absl::Status status = fresh(); !status.ok())
    return state.SkipWithError(status.ToString().c_str());
  if (!first && !instance->RunBlock(20, block, reader, absl::Seconds(60)).ok()) {
    return state.SkipWithError("block failed");
  }
  for (auto _ : state) {
    if (first) {
      if (absl::Status status = fresh(); !status.ok())
        return state.SkipWithError(status.ToString().c_str());
    }
    auto start = Clock::now();
    absl::StatusOr<engine::BlockResult> result =
        instance->RunBlock(20, block, reader, absl::Seconds(60));
    state.SetIterationTime(Seconds(start, Clock::now()));
    if (!result.ok()) return state.SkipWithError(result.status().ToString().c_str());
  }
  state.SetLabel(absl::StrCat(guest,
                              first ? ", first block of a fresh instance" : ", a later block", ", ",
                              block.size(), "-byte block"));
}
BENCHMARK(BM_BlockOnInstance)
    ->ArgNames({"large", "first"})
    ->ArgsProduct({{0, 1}, {0, 1}})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------------------------------------
// Host calls, with benchmarks/host_calls_bench.wat.

// Answers every key with the same 64-byte value.
class FixedReader : public engine::StateReader {
 public:
  absl::StatusOr<std::optional<std::string>> Get(absl::string_view, uint32_t) const override {
    return value_;
  }

 private:
  const std::string value_ = std::string(64, 'v');
};

std::string U32Le(uint32_t value) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  return out;
}

// Runs `call` `rounds` times and returns the median seconds of one run.
template <typename Call>
double MedianSeconds(int rounds, Call call) {
  std::vector<double> runs;
  for (int i = 0; i < rounds; ++i) {
    auto start = Clock::now();
    call();
    runs.push_back(Seconds(start, Clock::now()));
  }
  return Quantile(runs, 0.5);
}

// A view that makes `count` reads: mode 1 = __get_len per read, 2 = __get_len + __get (one store
// lookup: the host keeps __get_len's value for the __get of the same key). Reader 0 answers from
// memory (the ABI's own cost), 1 is the real store (RocksDB, one key of 64 bytes at height 1).
// Counter ns_per_read = (view time - the same loop without calls) / count.
void BM_HostGet(benchmark::State& state) {
  const uint32_t mode = static_cast<uint32_t>(state.range(0));
  const bool real_store = state.range(1) != 0;
  constexpr uint32_t kCount = 10'000;
  const engine::Module& module = GuestModule("host_calls_bench");
  FixedReader fixed;
  ScratchDir dir;
  std::unique_ptr<store::BlockStore> store;
  std::unique_ptr<proxy::StoreReader> store_reader;
  if (real_store) {
    store::BlockStoreOptions options;
    options.sync = false;
    absl::StatusOr<std::unique_ptr<store::BlockStore>> opened =
        store::BlockStore::Open(dir.path(), options);
    if (!opened.ok()) return state.SkipWithError(opened.status().ToString().c_str());
    store = *std::move(opened);
    store::BlockCommit commit;
    commit.height = 1;
    commit.block_bytes = "block";
    commit.writes["bench/key"] = std::string(64, 'v');
    if (absl::StatusOr<store::BlockRecord> r = store->CommitBlock(commit); !r.ok()) {
      return state.SkipWithError(r.status().ToString().c_str());
    }
    store_reader = std::make_unique<proxy::StoreReader>(*store);
  }
  const engine::StateReader& reader =
      real_store ? static_cast<const engine::StateReader&>(*store_reader) : fixed;
  absl::StatusOr<std::unique_ptr<engine::Instance>> instance =
      engine::Instance::Create(BenchWorkers(), module, engine::InstanceOptions{});
  if (!instance.ok()) return state.SkipWithError(instance.status().ToString().c_str());
  auto run = [&](uint32_t run_mode) {
    absl::StatusOr<engine::CallResult> result = (*instance)->RunView(
        "get_loop", 1, U32Le(kCount) + U32Le(run_mode), reader, absl::Seconds(60));
    if (!result.ok()) std::abort();
  };
  const double baseline = MedianSeconds(20, [&] { run(0); });
  std::vector<double> runs;
  for (auto _ : state) {
    auto start = Clock::now();
    run(mode);
    double seconds = Seconds(start, Clock::now());
    state.SetIterationTime(seconds);
    runs.push_back(seconds);
  }
  state.counters["baseline_us"] = baseline * 1e6;
  state.counters["ns_per_read"] = (Quantile(runs, 0.5) - baseline) * 1e9 / kCount;
  state.counters["reads"] = benchmark::Counter(static_cast<double>(state.iterations()) * kCount,
                                               benchmark::Counter::kIsRate);
  state.SetLabel(absl::StrCat(mode == 1 ? "__get_len" : "__get_len+__get", ", ",
                              real_store ? "RocksDB store" : "in-memory reader"));
}
BENCHMARK(BM_HostGet)
    ->ArgNames({"mode", "rocksdb"})
    ->ArgsProduct({{1, 2}, {0, 1}})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// A block whose one __flush carries `pairs` key-value pairs (32-byte keys, 64-byte values).
// Counter ns_per_pair = (block time - the same block flushing an empty list) / pairs.
void BM_HostFlush(benchmark::State& state) {
  const int pairs = static_cast<int>(state.range(0));
  const engine::Module& module = GuestModule("host_calls_bench");
  FixedReader reader;
  std::string message;
  for (int i = 0; i < pairs; ++i) {
    std::string key = absl::StrCat("bench/key/", i);
    key.resize(32, '.');
    for (const std::string& field : {key, std::string(64, 'v')}) {
      message.push_back('\x0a');
      uint32_t len = static_cast<uint32_t>(field.size());
      while (len >= 0x80) {
        message.push_back(static_cast<char>((len & 0x7f) | 0x80));
        len >>= 7;
      }
      message.push_back(static_cast<char>(len));
      message.append(field);
    }
  }
  absl::StatusOr<std::unique_ptr<engine::Instance>> instance =
      engine::Instance::Create(BenchWorkers(), module, engine::InstanceOptions{});
  if (!instance.ok()) return state.SkipWithError(instance.status().ToString().c_str());
  auto run = [&](uint32_t mode) {
    absl::StatusOr<engine::BlockResult> result =
        (*instance)->RunBlock(1, U32Le(mode) + message, reader, absl::Seconds(60));
    if (!result.ok()) std::abort();
    if (mode == 1 && static_cast<int>(result->writes.size()) != pairs) std::abort();
  };
  const double baseline = MedianSeconds(20, [&] { run(0); });
  std::vector<double> runs;
  for (auto _ : state) {
    auto start = Clock::now();
    run(1);
    double seconds = Seconds(start, Clock::now());
    state.SetIterationTime(seconds);
    runs.push_back(seconds);
  }
  state.counters["baseline_us"] = baseline * 1e6;
  state.counters["ns_per_pair"] = (Quantile(runs, 0.5) - baseline) * 1e9 / pairs;
  state.counters["pairs"] = benchmark::Counter(static_cast<double>(state.iterations()) * pairs,
                                               benchmark::Counter::kIsRate);
}
BENCHMARK(BM_HostFlush)
    ->ArgName("pairs")
    ->Arg(100)
    ->Arg(1'000)
    ->Arg(10'000)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace tandem::bench
