// tandem-bench: end-to-end load over gRPC. It starts its own tandemd per run (a fresh temporary
// database, the chosen module and swap policy, loopback ports), ingests the same blocks under
// each policy, and reports blocks/s, block latency, swap pauses, peak RSS, CPU per block and
// views/s as JSON and a Markdown table. It speaks only gRPC and never links the server, engine
// or store.
//
// Usage: tandem-bench [--blocks=300] [--policies=none,sync,block,threshold] [--json_out=FILE]
//                     [--markdown_out=FILE] ...   (`tandem-bench --help` lists every flag)
// Every child tandemd is killed when tandem-bench exits, is interrupted, or dies (PDEATHSIG).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "tandem/v1/tandem.grpc.pb.h"
#include "tools/bench/bitcoin_blocks.h"
#include "tools/bench/ceiling.h"
#include "tools/bench/harness.h"
#include "tools/bench/pair_scenarios.h"
#include "tools/client/connection.h"
#include "tools/client/json.h"
#include "tools/client/proto_time.h"
#include "util/command_line.h"

ABSL_FLAG(std::string, tandemd, TANDEM_BENCH_DEFAULT_TANDEMD,
          "Path of the tandemd binary to start.");
ABSL_FLAG(std::string, guest_dir, TANDEM_BENCH_DEFAULT_GUEST_DIR,
          "Folder of the built guests (bitcoin_indexer.wasm, bench_guest.wasm).");
ABSL_FLAG(std::string, guests, "bitcoin_indexer,bench_guest",
          "Guests to run, by file name without .wasm (the small example indexer, the 2-3 MB "
          "benchmark guest).");
ABSL_FLAG(std::string, fixtures, TANDEM_BENCH_DEFAULT_FIXTURES,
          "tests/data/bitcoin_blocks.json: real blocks that start the `mixed` block set.");
ABSL_FLAG(std::string, policies, "none,sync,block,threshold",
          "Swap policies to compare, each on its own tandemd. `none` and `sync` are the baselines "
          "of the ratios.");
ABSL_FLAG(std::string, ceiling, TANDEM_BENCH_DEFAULT_CEILING,
          "The ingest_ceiling binary (benchmarks/): the `real` block set's guest over an in-memory "
          "map in-process, one instance reused. The `real` runs report their ratio to it. Empty "
          "or missing: no ceiling.");
ABSL_FLAG(std::string, block_sets, "small,mixed,real",
          "`small`: synthetic blocks of a coinbase and up to 3 spends (~300-700 bytes). `mixed`: "
          "the 20 real fixture blocks (215 bytes to 1.38 MB), then synthetic ones. `real`: the "
          "fixture blocks over and over, renumbered 1, 2, ... (run unary and over StreamBlocks "
          "for every policy of --stream_policies, and against the ceiling).");
ABSL_FLAG(int, blocks, 300, "Blocks per ingest run (heights 1..N).");
ABSL_FLAG(absl::Duration, run_timeout, absl::Seconds(60),
          "Upper bound of one ingest run; a run that hits it reports the blocks it did.");
ABSL_FLAG(std::string, stream_policies, "none,block",
          "Policies whose `small` ingest is repeated over StreamBlocks (unary vs stream).");
ABSL_FLAG(std::string, view_policies, "block",
          "Policies under which views/s are measured while ingest runs.");
ABSL_FLAG(std::string, view_clients, "1,8,32", "Concurrent view clients of the view runs.");
ABSL_FLAG(absl::Duration, view_duration, absl::Seconds(4), "Length of each view run.");
ABSL_FLAG(bool, fsync, true, "Passed to tandemd --fsync (its default: fsync on every commit).");
ABSL_FLAG(std::string, extra_tandemd_flags, "",
          "More tandemd flags, space-separated (e.g. --memory_limit=256MiB).");
ABSL_FLAG(std::string, scenarios, "stream_views,past_views,flood",
          "Pair scenarios after the ingest runs (empty: none): `stream_views` (swap pauses under "
          "streamed ingest with view clients), `past_views` (views at many past heights, each on "
          "a fresh instance), `flood` (clients whose views abort, against honest clients).");
ABSL_FLAG(std::string, scenario_guest, "bitcoin_indexer",
          "Guest of the stream_views and past_views scenarios (flood always uses "
          "bitcoin_indexer, whose `outpoint` view aborts on a short request).");
ABSL_FLAG(int, stream_view_blocks, 2000, "Blocks streamed in the stream_views scenario.");
ABSL_FLAG(int, stream_view_clients, 8, "View clients of the stream_views scenario.");
ABSL_FLAG(int, past_view_heights, 1000, "Distinct past heights viewed in past_views.");
ABSL_FLAG(int, past_view_clients, 8, "View clients of the past_views scenario.");
ABSL_FLAG(std::string, flood_policies, "block,none", "Policies of the flood scenario.");
ABSL_FLAG(int, flooders, 4, "Clients whose views abort, in the flood scenario.");
ABSL_FLAG(int, flood_honest_clients, 2, "Honest view clients of the flood scenario.");
ABSL_FLAG(absl::Duration, flood_duration, absl::Seconds(5),
          "Ingest time of each half (alone, flooded) of the flood scenario.");
ABSL_FLAG(int, leaky_blocks, 0,
          "When more than 0: that many blocks of the leaky guest under `block`, with tandemd's "
          "RSS and VmSize sampled every 100 (100000 for the memory target; takes minutes).");
ABSL_FLAG(std::string, json_out, "tandem-bench.json", "Where to write the JSON results.");
ABSL_FLAG(std::string, markdown_out, "", "Where to write the Markdown table (also printed).");

namespace tandem::bench {
namespace {

namespace v1 = ::tandem::v1;

// ---------------------------------------------------------------------------------------------
// Runs.

struct RunSpec {
  std::string guest;
  std::string block_set;
  std::string policy;
  bool stream = false;
  int view_clients = 0;
};

struct RunResult {
  RunSpec spec;
  std::string error;
  int blocks = 0;
  double seconds = 0;
  double blocks_per_s = 0;
  double latency_p50_ms = 0, latency_p99_ms = 0;
  double server_block_p50_ms = 0;
  size_t swaps = 0;
  double pause_p50_us = 0, pause_p99_us = 0, pause_max_us = 0;
  size_t warms = 0;
  double warm_p50_ms = 0;
  uint64_t events_dropped = 0;
  double peak_rss_mb = 0;
  // CPU over the timed part of the run: tandemd's and tandem-bench's own per block, in µs, and
  // the machine's busy and stolen time in cores (1.0: one core busy for the whole run). On a
  // machine whose cores are all busy, blocks/s follows CPU per block.
  double tandemd_cpu_us_per_block = 0, bench_cpu_us_per_block = 0;
  double busy_cores = 0, steal_cores = 0;
  uint64_t views = 0, view_failures = 0;
  double views_per_s = 0;
  std::optional<double> vs_none, vs_sync;
  std::optional<double> vs_ceiling;  // `real` runs: blocks/s over the ceiling's (same guest)
};

// The tandemd of a run: `guest` under `policy`, with the flags tandem-bench was given.
Tandemd::Config TandemdConfig(const std::string& guest, const std::string& policy) {
  Tandemd::Config config;
  config.binary = absl::GetFlag(FLAGS_tandemd);
  config.module_path = absl::StrCat(absl::GetFlag(FLAGS_guest_dir), "/", guest, ".wasm");
  config.policy = policy;
  config.fsync = absl::GetFlag(FLAGS_fsync);
  for (absl::string_view extra :
       absl::StrSplit(absl::GetFlag(FLAGS_extra_tandemd_flags), ' ', absl::SkipEmpty())) {
    config.extra_flags.emplace_back(extra);
  }
  return config;
}

std::string ViewOf(const std::string& guest) {
  return guest == "bench_guest" ? "stats" : "block_summary";
}

RunResult Run(const RunSpec& spec, BlockSource& source) {
  RunResult result;
  result.spec = spec;
  absl::StatusOr<std::unique_ptr<Tandemd>> server =
      Tandemd::Start(TandemdConfig(spec.guest, spec.policy));
  if (!server.ok()) {
    result.error = server.status().ToString();
    return result;
  }
  Tandemd& tandemd = **server;
  EventWatcher events(tandemd.admin_connection());
  absl::SleepFor(absl::Milliseconds(100));  // The watch is registered before the first block.

  const bool view_run = spec.view_clients > 0;
  const int max_blocks = view_run ? 1'000'000 : absl::GetFlag(FLAGS_blocks);
  const absl::Duration limit =
      view_run ? absl::GetFlag(FLAGS_view_duration) : absl::GetFlag(FLAGS_run_timeout);
  std::vector<double> latencies_ms, server_ms;
  std::unique_ptr<ViewClients> views;
  if (view_run) {
    // One block first, so that views at the tip have a height to answer at.
    const std::string& bytes = source.At(1);
    auto context = tandemd.public_connection().UnaryContext();
    v1::SubmitBlockRequest request;
    request.set_height(1);
    request.set_block(bytes);
    v1::SubmitBlockResponse response;
    grpc::Status status = tandemd.indexer().SubmitBlock(context.get(), request, &response);
    if (!status.ok()) {
      result.error = absl::StrCat("block 1: ", status.error_message());
      return result;
    }
    const v1::ViewRequest at_tip = ViewAtTip(ViewOf(spec.guest));
    views = std::make_unique<ViewClients>(tandemd.public_connection(), spec.view_clients,
                                          [at_tip](int) { return at_tip; });
  }
  const uint32_t first = view_run ? 2 : 1;
  const CpuSeconds tandemd_cpu_before = tandemd.Cpu(), bench_cpu_before = SelfCpu(),
                   machine_cpu_before = MachineCpu();
  const auto start = Clock::now();
  const absl::Time end = absl::Now() + limit;
  uint32_t height = first;
  if (!spec.stream) {
    for (; height < first + static_cast<uint32_t>(max_blocks) && absl::Now() < end; ++height) {
      auto context = tandemd.public_connection().UnaryContext();
      v1::SubmitBlockRequest request;
      request.set_height(height);
      request.set_block(source.At(height));
      v1::SubmitBlockResponse response;
      const auto sent = Clock::now();
      grpc::Status status = tandemd.indexer().SubmitBlock(context.get(), request, &response);
      latencies_ms.push_back(SecondsSince(sent) * 1e3);
      if (!status.ok()) {
        result.error = absl::StrCat("block ", height, ": ", status.error_message());
        break;
      }
      server_ms.push_back(DurationMicros(response.duration()) / 1e3);
    }
  } else {
    // Pipelined: a writer thread sends every block; responses come back in order.
    auto context = tandemd.public_connection().StreamContext();
    auto stream = tandemd.indexer().StreamBlocks(context.get());
    const int count = max_blocks;
    // Send times in steady-clock nanoseconds: written by the writer, read by this thread.
    std::vector<std::atomic<int64_t>> sent(count);
    for (int i = 0; i < count; ++i) source.At(first + i);  // Made before timing starts.
    std::thread writer([&] {
      for (int i = 0; i < count; ++i) {
        v1::SubmitBlockRequest request;
        request.set_height(first + i);
        request.set_block(source.At(first + i));
        sent[i] = Clock::now().time_since_epoch().count();
        if (!stream->Write(request)) break;
      }
      stream->WritesDone();
    });
    v1::SubmitBlockResponse response;
    int received = 0;
    while (received < count && stream->Read(&response)) {
      const Clock::time_point sent_at{Clock::duration(sent[received].load())};
      latencies_ms.push_back(std::chrono::duration<double>(Clock::now() - sent_at).count() * 1e3);
      server_ms.push_back(DurationMicros(response.duration()) / 1e3);
      ++received;
    }
    writer.join();
    grpc::Status status = stream->Finish();
    if (!status.ok()) result.error = absl::StrCat("StreamBlocks: ", status.error_message());
    height = first + received;
  }
  result.seconds = SecondsSince(start);
  const CpuSeconds tandemd_cpu_after = tandemd.Cpu(), bench_cpu_after = SelfCpu(),
                   machine_cpu_after = MachineCpu();
  if (views) {
    views->Stop();
    result.views = views->ok();
    result.view_failures = views->failed();
    result.views_per_s = static_cast<double>(result.views) / result.seconds;
  }
  events.Stop();
  result.blocks = static_cast<int>(latencies_ms.size());
  result.blocks_per_s = result.blocks / result.seconds;
  if (result.blocks > 0) {
    result.tandemd_cpu_us_per_block =
        (tandemd_cpu_after.busy - tandemd_cpu_before.busy) * 1e6 / result.blocks;
    result.bench_cpu_us_per_block =
        (bench_cpu_after.busy - bench_cpu_before.busy) * 1e6 / result.blocks;
  }
  result.busy_cores = (machine_cpu_after.busy - machine_cpu_before.busy) / result.seconds;
  result.steal_cores = (machine_cpu_after.steal - machine_cpu_before.steal) / result.seconds;
  result.latency_p50_ms = Quantile(latencies_ms, 0.5);
  result.latency_p99_ms = Quantile(latencies_ms, 0.99);
  result.server_block_p50_ms = Quantile(server_ms, 0.5);
  std::vector<double> pauses = events.pauses_us();
  result.swaps = pauses.size();
  result.pause_p50_us = Quantile(pauses, 0.5);
  result.pause_p99_us = Quantile(pauses, 0.99);
  result.pause_max_us = Quantile(pauses, 1.0);
  result.warms = events.warms_us().size();
  result.warm_p50_ms = Quantile(events.warms_us(), 0.5) / 1e3;
  result.events_dropped = events.dropped();
  result.peak_rss_mb = static_cast<double>(tandemd.Memory().peak_rss_bytes) / (1 << 20);
  return result;
}

// ---------------------------------------------------------------------------------------------
// The machine and the report.

struct Machine {
  unsigned cores = 0;
  std::string cpu;
  double ram_gib = 0;
  std::string date;
  std::string load_before, load_after;
};

std::string LoadAverage() {
  std::string text = ReadFile("/proc/loadavg");
  std::vector<std::string> parts = absl::StrSplit(text, ' ');
  if (parts.size() < 3) return "?";
  return absl::StrCat(parts[0], " ", parts[1], " ", parts[2]);
}

Machine DescribeMachine() {
  Machine machine;
  machine.cores = std::thread::hardware_concurrency();
  std::istringstream cpuinfo(ReadFile("/proc/cpuinfo"));
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (absl::StartsWith(line, "model name")) {
      machine.cpu = std::string(absl::StripAsciiWhitespace(line.substr(line.find(':') + 1)));
      break;
    }
  }
  std::istringstream meminfo(ReadFile("/proc/meminfo"));
  while (std::getline(meminfo, line)) {
    if (absl::StartsWith(line, "MemTotal:")) {
      double kib = 0;
      std::string number(absl::StripAsciiWhitespace(
          absl::StripSuffix(absl::StripAsciiWhitespace(line.substr(9)), "kB")));
      absl::SimpleAtod(absl::StripAsciiWhitespace(number), &kib);
      machine.ram_gib = kib / (1 << 20);
    }
  }
  machine.date = absl::FormatTime("%Y-%m-%d %H:%M UTC", absl::Now(), absl::UTCTimeZone());
  machine.load_before = LoadAverage();
  return machine;
}

// A figure rounded to `digits` decimals, so the JSON reads like the table (nlohmann writes the
// shortest text that round-trips, so 1164.73 stays "1164.73").
double Rounded(double value, int digits) {
  const double scale = std::pow(10.0, digits);
  return std::round(value * scale) / scale;
}

client::Json RatioJson(const std::optional<double>& ratio) {
  return ratio ? client::Json(Rounded(*ratio, 3)) : client::Json(nullptr);
}

// `extra`: more top-level members (the ceiling).
std::string Json(const Machine& machine, const std::vector<RunResult>& results,
                 const std::vector<ScenarioReport>& scenarios, const std::string& command,
                 const client::Json& extra) {
  client::Json document;
  document["machine"] = {{"cores", machine.cores},
                         {"cpu", machine.cpu},
                         {"ram_gib", Rounded(machine.ram_gib, 1)},
                         {"date", machine.date},
                         {"load_before", machine.load_before},
                         {"load_after", machine.load_after}};
  document["command"] = command;
  client::Json runs = client::Json::array();
  for (const RunResult& r : results) {
    client::Json run;
    run["guest"] = r.spec.guest;
    run["block_set"] = r.spec.block_set;
    run["policy"] = r.spec.policy;
    run["mode"] = r.spec.stream ? "stream" : "unary";
    run["view_clients"] = r.spec.view_clients;
    run["error"] = r.error;
    run["blocks"] = r.blocks;
    run["seconds"] = Rounded(r.seconds, 3);
    run["blocks_per_s"] = Rounded(r.blocks_per_s, 2);
    run["latency_p50_ms"] = Rounded(r.latency_p50_ms, 3);
    run["latency_p99_ms"] = Rounded(r.latency_p99_ms, 3);
    run["server_block_p50_ms"] = Rounded(r.server_block_p50_ms, 3);
    run["swaps"] = r.swaps;
    run["swap_pause_p50_us"] = Rounded(r.pause_p50_us, 2);
    run["swap_pause_p99_us"] = Rounded(r.pause_p99_us, 2);
    run["swap_pause_max_us"] = Rounded(r.pause_max_us, 2);
    run["warms"] = r.warms;
    run["warm_p50_ms"] = Rounded(r.warm_p50_ms, 3);
    run["events_dropped"] = r.events_dropped;
    run["peak_rss_mib"] = Rounded(r.peak_rss_mb, 1);
    run["tandemd_cpu_us_per_block"] = Rounded(r.tandemd_cpu_us_per_block, 1);
    run["bench_cpu_us_per_block"] = Rounded(r.bench_cpu_us_per_block, 1);
    run["busy_cores"] = Rounded(r.busy_cores, 2);
    run["steal_cores"] = Rounded(r.steal_cores, 2);
    run["views"] = r.views;
    run["view_failures"] = r.view_failures;
    run["views_per_s"] = Rounded(r.views_per_s, 1);
    run["vs_none"] = RatioJson(r.vs_none);
    run["vs_sync"] = RatioJson(r.vs_sync);
    run["vs_ceiling"] = RatioJson(r.vs_ceiling);
    runs.push_back(std::move(run));
  }
  document["runs"] = std::move(runs);
  client::Json scenario_list = client::Json::array();
  for (const ScenarioReport& scenario : scenarios) {
    scenario_list.push_back(
        {{"name", scenario.name}, {"error", scenario.error}, {"figures", scenario.figures}});
  }
  document["scenarios"] = std::move(scenario_list);
  for (const auto& [key, value] : extra.items()) document[key] = value;
  return client::DumpJson(document, /*indent=*/2) + "\n";
}

// The first line of an error, for a table cell or a list item.
std::string OneLine(const std::string& error) {
  std::string line = error.substr(0, error.find('\n'));
  std::replace(line.begin(), line.end(), '|', '/');
  return line;
}

std::string Ratio(const std::optional<double>& ratio) {
  return ratio ? absl::StrFormat("%.2f", *ratio) : "";
}

std::string Markdown(const Machine& machine, const std::vector<RunResult>& results,
                     const std::vector<ScenarioReport>& scenarios, const std::string& command) {
  std::string out = absl::StrFormat(
      "Machine: %u cores, %s, %.1f GiB RAM; %s; load average before %s, after %s.\n\n",
      machine.cores, machine.cpu, machine.ram_gib, machine.date, machine.load_before,
      machine.load_after);
  absl::StrAppend(&out, "Command: `", command, "`\n\n");
  const auto any = [&](bool with_views) {
    return std::any_of(results.begin(), results.end(),
                       [&](const RunResult& r) { return (r.spec.view_clients > 0) == with_views; });
  };
  if (any(false)) {
    absl::StrAppend(
        &out,
        "| guest | blocks | policy | mode | blocks/s | vs none | vs sync | latency p50 / "
        "p99 ms | swaps | swap pause p50 / p99 / max µs | warm p50 ms | peak RSS MiB | CPU µs / "
        "block: tandemd, bench | cores busy (stolen) |\n"
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (const RunResult& r : results) {
      if (r.spec.view_clients > 0) continue;
      if (!r.error.empty() && r.blocks == 0) {
        absl::StrAppend(&out, "| ", r.spec.guest, " | ", r.spec.block_set, " | ", r.spec.policy,
                        " | ", r.spec.stream ? "stream" : "unary", " | failed: ", OneLine(r.error),
                        " | | | | | | | | | |\n");
        continue;
      }
      absl::StrAppendFormat(
          &out,
          "| %s | %s ×%d | %s | %s | %.1f | %s | %s | %.2f / %.2f | %d | %.1f / "
          "%.1f / %.1f | %.2f | %.0f | %.0f, %.0f | %.2f (%.2f) |\n",
          r.spec.guest, r.spec.block_set, r.blocks, r.spec.policy,
          r.spec.stream ? "stream" : "unary", r.blocks_per_s, Ratio(r.vs_none), Ratio(r.vs_sync),
          r.latency_p50_ms, r.latency_p99_ms, static_cast<int>(r.swaps), r.pause_p50_us,
          r.pause_p99_us, r.pause_max_us, r.warm_p50_ms, r.peak_rss_mb, r.tandemd_cpu_us_per_block,
          r.bench_cpu_us_per_block, r.busy_cores, r.steal_cores);
    }
  }
  if (any(true)) {
    absl::StrAppend(&out,
                    "\nViews while ingest runs (small blocks, unary ingest):\n\n"
                    "| guest | policy | view clients | views/s | view failures | blocks/s during | "
                    "swap pause p50 / p99 / max µs | peak RSS MiB |\n"
                    "|---|---|---:|---:|---:|---:|---:|---:|\n");
    for (const RunResult& r : results) {
      if (r.spec.view_clients == 0) continue;
      if (!r.error.empty() && r.blocks == 0) {
        absl::StrAppend(&out, "| ", r.spec.guest, " | ", r.spec.policy, " | ", r.spec.view_clients,
                        " | failed: ", OneLine(r.error), " | | | | |\n");
        continue;
      }
      absl::StrAppendFormat(
          &out, "| %s | %s | %d | %.0f | %d | %.1f | %.1f / %.1f / %.1f | %.0f |\n", r.spec.guest,
          r.spec.policy, r.spec.view_clients, r.views_per_s, static_cast<int>(r.view_failures),
          r.blocks_per_s, r.pause_p50_us, r.pause_p99_us, r.pause_max_us, r.peak_rss_mb);
    }
  }
  if (!scenarios.empty()) absl::StrAppend(&out, "\nScenarios:\n\n");
  for (const ScenarioReport& scenario : scenarios) {
    absl::StrAppend(&out, "- ",
                    scenario.markdown.empty() ? scenario.name + "\n" : scenario.markdown);
  }
  std::vector<std::string> errors;
  for (const ScenarioReport& scenario : scenarios) {
    if (!scenario.error.empty()) {
      errors.push_back(absl::StrCat("- ", scenario.name, ": ", OneLine(scenario.error)));
    }
  }
  for (const RunResult& r : results) {
    if (!r.error.empty()) {
      errors.push_back(absl::StrCat(
          "- ", r.spec.guest, " ", r.spec.block_set, " ", r.spec.policy,
          r.spec.stream ? " stream" : "",
          r.spec.view_clients > 0 ? absl::StrCat(" ", r.spec.view_clients, " view clients") : "",
          ": ", OneLine(r.error)));
    }
  }
  if (!errors.empty()) absl::StrAppend(&out, "\nErrors:\n", absl::StrJoin(errors, "\n"), "\n");
  return out;
}

// ---------------------------------------------------------------------------------------------
// The `real` block set against the ceiling (tools/bench/ceiling.h).

// Sets vs_ceiling on every `real` run whose guest has a ceiling.
void AddCeilingRatios(const std::vector<CeilingResult>& ceilings, std::vector<RunResult>& results) {
  for (RunResult& r : results) {
    if (r.spec.block_set != "real" || r.blocks == 0) continue;
    for (const CeilingResult& ceiling : ceilings) {
      if (ceiling.guest == r.spec.guest && ceiling.error.empty() && ceiling.blocks_per_s > 0) {
        r.vs_ceiling = r.blocks_per_s / ceiling.blocks_per_s;
      }
    }
  }
}

std::string CeilingMarkdown(const std::vector<CeilingResult>& ceilings,
                            const std::vector<RunResult>& results) {
  if (ceilings.empty()) return "";
  std::string out =
      "\nReal blocks (the fixtures repeated, renumbered) against the ceiling (the same guest and "
      "blocks in-process over an in-memory map, one instance reused, no RocksDB or gRPC):\n\n"
      "| guest | policy | mode | blocks/s | ceiling blocks/s | vs ceiling |\n"
      "|---|---|---|---:|---:|---:|\n";
  for (const CeilingResult& ceiling : ceilings) {
    if (!ceiling.error.empty()) {
      absl::StrAppend(&out, "| ", ceiling.guest, " | ceiling failed: ", OneLine(ceiling.error),
                      " | | | | |\n");
      continue;
    }
    for (const RunResult& r : results) {
      if (r.spec.block_set != "real" || r.spec.guest != ceiling.guest || r.blocks == 0) continue;
      absl::StrAppendFormat(&out, "| %s | %s | %s | %.1f | %.1f | %s |\n", r.spec.guest,
                            r.spec.policy, r.spec.stream ? "stream" : "unary", r.blocks_per_s,
                            ceiling.blocks_per_s, Ratio(r.vs_ceiling));
    }
  }
  return out;
}

int Main(int argc, char** argv) {
  util::CommandLineOptions command_line;
  command_line.usage =
      "end-to-end load over gRPC: starts tandemd per swap policy and guest, ingests the same "
      "blocks, reports JSON and Markdown.\nUsage: tandem-bench [flags]";
  command_line.help_flag_files = {"tools/bench/tandem_bench.cc"};
  std::vector<char*> rest = util::ParseCommandLineOrExit(argc, argv, command_line);
  if (rest.size() > 1) {
    std::fprintf(stderr, "tandem-bench takes no arguments, only flags (see --help)\n");
    return 2;
  }
  std::string command = "tandem-bench";
  for (int i = 1; i < argc; ++i) absl::StrAppend(&command, " ", argv[i]);

  KillChildrenOnExit();

  if (access(absl::GetFlag(FLAGS_tandemd).c_str(), X_OK) != 0) {
    std::fprintf(stderr, "tandem-bench: no tandemd at %s (build it, or pass --tandemd)\n",
                 absl::GetFlag(FLAGS_tandemd).c_str());
    return 1;
  }
  std::vector<std::string> fixtures = LoadFixtureBlocks(absl::GetFlag(FLAGS_fixtures));
  if (fixtures.empty()) {
    std::fprintf(stderr, "tandem-bench: no fixture blocks in %s\n",
                 absl::GetFlag(FLAGS_fixtures).c_str());
    return 1;
  }
  std::map<std::string, std::unique_ptr<BlockSource>> sources;
  sources["small"] = std::make_unique<BlockSource>(std::vector<std::string>());
  sources["mixed"] = std::make_unique<BlockSource>(fixtures);
  sources["real"] =
      std::make_unique<BlockSource>(RealBlockSet(fixtures, absl::GetFlag(FLAGS_blocks)));

  Machine machine = DescribeMachine();
  const std::vector<std::string> policies = SplitList(absl::GetFlag(FLAGS_policies));
  std::vector<RunSpec> specs;
  for (const std::string& guest : SplitList(absl::GetFlag(FLAGS_guests))) {
    for (const std::string& set : SplitList(absl::GetFlag(FLAGS_block_sets))) {
      if (sources.count(set) == 0) {
        std::fprintf(stderr, "tandem-bench: unknown block set %s\n", set.c_str());
        return 2;
      }
      for (const std::string& policy : policies) specs.push_back({guest, set, policy, false, 0});
    }
    for (const std::string& policy : SplitList(absl::GetFlag(FLAGS_stream_policies))) {
      specs.push_back({guest, "small", policy, true, 0});
    }
    if (absl::StrContains(absl::GetFlag(FLAGS_block_sets), "real")) {
      for (const std::string& policy : SplitList(absl::GetFlag(FLAGS_stream_policies))) {
        specs.push_back({guest, "real", policy, true, 0});
      }
    }
    for (const std::string& policy : SplitList(absl::GetFlag(FLAGS_view_policies))) {
      for (const std::string& clients : SplitList(absl::GetFlag(FLAGS_view_clients))) {
        int n = 0;
        if (!absl::SimpleAtoi(clients, &n) || n <= 0) {
          std::fprintf(stderr, "tandem-bench: bad --view_clients entry %s\n", clients.c_str());
          return 2;
        }
        specs.push_back({guest, "small", policy, false, n});
      }
    }
  }

  // The ceiling first, while no tandemd runs beside it.
  std::vector<CeilingResult> ceilings;
  if (absl::StrContains(absl::GetFlag(FLAGS_block_sets), "real")) {
    for (const std::string& guest : SplitList(absl::GetFlag(FLAGS_guests))) {
      std::fprintf(stderr, "ceiling: %s, real blocks ... ", guest.c_str());
      ceilings.push_back(RunCeiling(
          absl::GetFlag(FLAGS_ceiling), guest,
          absl::StrCat(absl::GetFlag(FLAGS_guest_dir), "/", guest, ".wasm"),
          absl::GetFlag(FLAGS_fixtures), absl::GetFlag(FLAGS_blocks), absl::Minutes(10)));
      std::fprintf(stderr, "%.1f blocks/s%s%s\n", ceilings.back().blocks_per_s,
                   ceilings.back().error.empty() ? "" : ", error: ", ceilings.back().error.c_str());
    }
  }

  std::vector<RunResult> results;
  for (const RunSpec& spec : specs) {
    std::fprintf(stderr, "run: %s, %s blocks, %s, %s%s ... ", spec.guest.c_str(),
                 spec.block_set.c_str(), spec.policy.c_str(), spec.stream ? "stream" : "unary",
                 spec.view_clients > 0
                     ? absl::StrCat(", ", spec.view_clients, " view clients").c_str()
                     : "");
    RunResult result = Run(spec, *sources[spec.block_set]);
    std::fprintf(stderr, "%d blocks, %.1f blocks/s%s%s\n", result.blocks, result.blocks_per_s,
                 result.error.empty() ? "" : ", error: ", result.error.c_str());
    results.push_back(std::move(result));
  }
  // Ratios against the baselines of the same guest, block set and mode.
  for (RunResult& r : results) {
    if (r.spec.view_clients > 0 || r.blocks == 0) continue;
    for (const RunResult& base : results) {
      if (base.spec.view_clients > 0 || base.blocks == 0 || base.spec.guest != r.spec.guest ||
          base.spec.block_set != r.spec.block_set || base.spec.stream != r.spec.stream ||
          &base == &r) {
        continue;
      }
      if (base.spec.policy == "none") r.vs_none = r.blocks_per_s / base.blocks_per_s;
      if (base.spec.policy == "sync") r.vs_sync = r.blocks_per_s / base.blocks_per_s;
    }
  }
  std::vector<ScenarioReport> scenarios;
  const TandemdConfigFor config_for = TandemdConfig;
  for (const std::string& name : SplitList(absl::GetFlag(FLAGS_scenarios))) {
    std::fprintf(stderr, "scenario: %s ... ", name.c_str());
    if (name == "stream_views") {
      scenarios.push_back(StreamWithViews(
          config_for, *sources["small"], absl::GetFlag(FLAGS_scenario_guest),
          absl::GetFlag(FLAGS_stream_view_blocks), absl::GetFlag(FLAGS_stream_view_clients)));
    } else if (name == "past_views") {
      scenarios.push_back(PastHeightViews(
          config_for, *sources["small"], absl::GetFlag(FLAGS_scenario_guest),
          absl::GetFlag(FLAGS_past_view_heights), absl::GetFlag(FLAGS_past_view_clients)));
    } else if (name == "flood") {
      for (const std::string& policy : SplitList(absl::GetFlag(FLAGS_flood_policies))) {
        scenarios.push_back(FailingViewFlood(
            config_for, *sources["small"], policy, absl::GetFlag(FLAGS_flooders),
            absl::GetFlag(FLAGS_flood_honest_clients), absl::GetFlag(FLAGS_flood_duration)));
      }
    } else {
      std::fprintf(stderr, "unknown scenario %s\n", name.c_str());
      return 2;
    }
    std::fprintf(stderr, "%s\n", scenarios.back().error.empty() ? "done" : "failed");
  }
  if (const int leaky = absl::GetFlag(FLAGS_leaky_blocks); leaky > 0) {
    std::fprintf(stderr, "scenario: leaky_long_run ... ");
    scenarios.push_back(LeakyLongRun(config_for, leaky));
    std::fprintf(stderr, "%s\n", scenarios.back().error.empty() ? "done" : "failed");
  }
  machine.load_after = LoadAverage();
  AddCeilingRatios(ceilings, results);

  client::Json extra;
  if (!ceilings.empty()) extra["ceiling"] = CeilingJson(ceilings);
  const std::string json = Json(machine, results, scenarios, command, extra);
  const std::string markdown =
      Markdown(machine, results, scenarios, command) + CeilingMarkdown(ceilings, results);
  std::cout << markdown;
  if (const std::string path = absl::GetFlag(FLAGS_json_out); !path.empty()) {
    std::ofstream(path) << json;
    std::fprintf(stderr, "JSON written to %s\n", path.c_str());
  }
  if (const std::string path = absl::GetFlag(FLAGS_markdown_out); !path.empty()) {
    std::ofstream(path) << markdown;
  }
  bool failed = false;
  for (const RunResult& r : results) failed |= !r.error.empty();
  for (const ScenarioReport& scenario : scenarios) failed |= !scenario.error.empty();
  return failed ? 1 : 0;
}

}  // namespace
}  // namespace tandem::bench

int main(int argc, char** argv) { return tandem::bench::Main(argc, argv); }
