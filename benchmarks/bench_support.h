// Shared helpers of the in-process benchmarks: guest bytes, a scratch directory, percentiles.
// Benchmark-only; it must never be linked into the product.
#pragma once

#include <sys/resource.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "benchmarks/bench_util.h"
#include "engine/module.h"
#include "engine/platform.h"
#include "engine/worker_pool.h"

namespace tandem::bench {

// The example indexer (76 KB) and the 2–3 MB benchmark guest.
inline constexpr absl::string_view kSmallGuest = "bitcoin_indexer";
inline constexpr absl::string_view kLargeGuest = "bench_guest";

inline std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in.good()) return "";
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Loads build/guests/NAME.wasm (compiled once per process and cached: every benchmark of a run
// shares one compiled module per guest, as a server does). Aborts when the guest is missing.
inline const engine::Module& GuestModule(absl::string_view name) {
  static auto* modules = new std::vector<std::pair<std::string, std::unique_ptr<engine::Module>>>();
  for (auto& [loaded, module] : *modules) {
    if (loaded == name) return *module;
  }
  // TANDEM_BENCH_V8_FLAGS runs a benchmark under other V8 flags, to measure one before tandemd
  // adopts it.
  engine::PlatformOptions platform;
  if (const char* flags = std::getenv("TANDEM_BENCH_V8_FLAGS"); flags != nullptr) {
    platform.v8_flags = flags;
  }
  if (absl::Status status = engine::InitializeV8(platform); !status.ok()) {
    std::fprintf(stderr, "InitializeV8: %s\n", status.ToString().c_str());
    std::abort();
  }
  const std::string path = absl::StrCat(TANDEM_GUEST_DIR, "/", name, ".wasm");
  const std::string bytes = ReadFileOrEmpty(path);
  absl::StatusOr<std::unique_ptr<engine::Module>> module =
      engine::Module::Load(bytes, engine::ModuleOptions{});
  if (!module.ok()) {
    std::fprintf(stderr, "cannot load %s: %s\n", path.c_str(), module.status().ToString().c_str());
    std::abort();
  }
  modules->emplace_back(std::string(name), *std::move(module));
  return *modules->back().second;
}

// The worker pool every in-process engine benchmark shares (benchmark-only: the product hands a
// pool to whoever needs one).
inline engine::WorkerPool& BenchWorkers() {
  static auto* pool = new engine::WorkerPool(engine::WorkerPoolOptions{});
  return *pool;
}

// A field of /proc/self/status in KiB ("VmRSS:", "VmSize:"); -1 when absent.
inline long ProcStatusKiB(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(field.size()));
  }
  return -1;
}

inline double Micros(absl::Duration d) { return absl::ToDoubleMicroseconds(d); }

// The process's CPU time (every thread: workers, V8's and RocksDB's background threads) and
// context switches since construction. On a 2-core machine shared with the client, CPU per block
// is what bounds throughput, and it is far less noisy than wall time when the VM has steal time.
class ProcessCpu {
 public:
  ProcessCpu() : start_(Sample()) {}
  // Microseconds of CPU and context switches (voluntary and not) per `units`, since construction.
  double CpuMicrosPer(double units) const { return (Sample().cpu_us - start_.cpu_us) / units; }
  double SwitchesPer(double units) const { return (Sample().switches - start_.switches) / units; }

 private:
  struct Reading {
    double cpu_us = 0;
    double switches = 0;
  };
  static Reading Sample() {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    auto micros = [](const timeval& t) { return t.tv_sec * 1e6 + static_cast<double>(t.tv_usec); };
    return {micros(usage.ru_utime) + micros(usage.ru_stime),
            static_cast<double>(usage.ru_nvcsw + usage.ru_nivcsw)};
  }
  const Reading start_;
};

}  // namespace tandem::bench
