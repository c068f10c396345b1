// ingest_ceiling: the fastest a guest can index a block set on this machine: the same guest and
// blocks as tandemd, in-process, one instance reused, state in an in-memory map (no RocksDB, no
// gRPC, no fsync, no swaps). tandem-bench runs it beside tandemd and reports tandemd's blocks/s
// as a ratio of this ceiling. It must never measure anything but the guest and the map: the
// module is compiled and the instance created before the clock starts.
//
// Usage: ingest_ceiling --module=build/guests/bitcoin_indexer.wasm
//                       --fixtures=tests/data/bitcoin_blocks.json [--blocks=320] [--runs=3]
// Prints one JSON object on stdout: {"blocks":N,"seconds":S,"blocks_per_s":R,...}; the figure
// is the best of --runs runs (each on a fresh map and instance), as a ceiling should be.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"
#include "benchmarks/map_state.h"
#include "engine/instance.h"
#include "engine/module.h"
#include "engine/platform.h"
#include "engine/state_reader.h"
#include "engine/worker_pool.h"
#include "tools/bench/bitcoin_blocks.h"

ABSL_FLAG(std::string, module, "",
          "The guest .wasm to run (e.g. build/guests/bitcoin_indexer.wasm).");
ABSL_FLAG(std::string, fixtures, "", "tests/data/bitcoin_blocks.json: the real blocks.");
ABSL_FLAG(int, blocks, 320,
          "Blocks to run: the fixture blocks over and over, at heights 1, 2, ... (tandem-bench's "
          "`real` block set).");
ABSL_FLAG(int, runs, 3, "Runs; the best is reported.");

namespace tandem::bench {
namespace {

using Clock = std::chrono::steady_clock;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "ingest_ceiling: %s\n", what.c_str());
  return 1;
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "runs a guest over an in-memory map on the real fixture blocks: the ceiling tandemd's "
      "ingest is compared with.\nUsage: ingest_ceiling --module=M.wasm --fixtures=F.json");
  absl::ParseCommandLine(argc, argv);
  const std::vector<std::string> fixtures = LoadFixtureBlocks(absl::GetFlag(FLAGS_fixtures));
  if (fixtures.empty()) return Fail("no fixture blocks (pass --fixtures)");
  const std::string bytes = ReadFile(absl::GetFlag(FLAGS_module));
  if (bytes.empty()) return Fail("cannot read --module");
  if (absl::Status status = engine::InitializeV8(); !status.ok()) return Fail(status.ToString());
  absl::StatusOr<std::unique_ptr<engine::Module>> module =
      engine::Module::Load(bytes, engine::ModuleOptions{});
  if (!module.ok()) return Fail(module.status().ToString());

  const int blocks = absl::GetFlag(FLAGS_blocks);
  if (blocks <= 0) return Fail("--blocks must be positive");
  double best = 0;
  size_t keys = 0;
  engine::WorkerPool workers(engine::WorkerPoolOptions{});
  for (int run = 0; run < absl::GetFlag(FLAGS_runs); ++run) {
    absl::StatusOr<std::unique_ptr<engine::Instance>> instance =
        engine::Instance::Create(workers, **module, engine::InstanceOptions{});
    if (!instance.ok()) return Fail(instance.status().ToString());
    MapReader state;
    const Clock::time_point start = Clock::now();
    for (int i = 0; i < blocks; ++i) {
      const uint32_t height = static_cast<uint32_t>(i + 1);
      absl::StatusOr<engine::BlockResult> result =
          (*instance)->RunBlock(height, fixtures[i % fixtures.size()], state, absl::Seconds(60));
      if (!result.ok()) return Fail(result.status().ToString());
      state.Apply(result->writes);
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (best == 0 || seconds < best) best = seconds;
    keys = state.size();
  }
  std::printf("{\"blocks\":%d,\"seconds\":%.6f,\"blocks_per_s\":%.2f,\"keys\":%zu,\"runs\":%d}\n",
              blocks, best, blocks / best, keys, absl::GetFlag(FLAGS_runs));
  return 0;
}

}  // namespace
}  // namespace tandem::bench

int main(int argc, char** argv) { return tandem::bench::Main(argc, argv); }
