// tandem-bench's scenarios for the instance pair beyond plain ingest: swap pauses under streamed
// ingest with view clients, views at many past heights, clients whose views fail their instance,
// and memory over a long run of a leaking guest. Each reports figures as JSON and Markdown.
#include "tools/bench/pair_scenarios.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <numeric>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "util/status_macros.h"

namespace tandem::bench {
namespace {

namespace v1 = ::tandem::v1;

double Mib(uint64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

std::string U32Le(uint32_t value) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  return out;
}

// Blocks/s of unary ingest of `blocks` from `first` on, for `duration`; the first failure ends it.
struct IngestFigures {
  double blocks_per_s = 0;
  uint64_t blocks = 0;
  uint64_t failures = 0;
  std::string first_failure;
};

IngestFigures IngestFor(Tandemd& tandemd, BlockSource& blocks, uint32_t first,
                        absl::Duration duration) {
  IngestFigures figures;
  const auto start = Clock::now();
  const absl::Time end = absl::Now() + duration;
  for (uint32_t height = first; absl::Now() < end; ++height) {
    absl::Status status = tandemd.SubmitBlocks(
        height, 1, [&](uint32_t h) -> const std::string& { return blocks.At(h); });
    if (!status.ok()) {
      ++figures.failures;
      if (figures.first_failure.empty()) figures.first_failure = std::string(status.message());
      break;
    }
    ++figures.blocks;
  }
  figures.blocks_per_s = static_cast<double>(figures.blocks) / SecondsSince(start);
  return figures;
}

std::string CodesText(const std::map<int, uint64_t>& codes) {
  std::string text;
  for (const auto& [code, count] : codes) {
    absl::StrAppend(&text, text.empty() ? "" : ", ", count, " × code ", code);
  }
  return text.empty() ? "none" : text;
}

}  // namespace

ScenarioReport StreamWithViews(const TandemdConfigFor& config, BlockSource& blocks,
                               const std::string& guest, int count, int view_clients) {
  ScenarioReport report;
  report.name = "stream_with_views";
  absl::StatusOr<std::unique_ptr<Tandemd>> server = Tandemd::Start(config(guest, "block"));
  if (!server.ok()) {
    report.error = server.status().ToString();
    return report;
  }
  Tandemd& tandemd = **server;
  EventWatcher events(tandemd.admin_connection());
  absl::SleepFor(absl::Milliseconds(100));  // The watch is registered before the first block.
  if (absl::Status first = tandemd.SubmitBlocks(
          1, 1, [&](uint32_t h) -> const std::string& { return blocks.At(h); });
      !first.ok()) {
    report.error = first.ToString();
    return report;
  }
  for (int i = 0; i < count; ++i) blocks.At(2 + i);  // Made before timing starts.
  const v1::ViewRequest at_tip = ViewAtTip(guest == "bench_guest" ? "stats" : "block_summary");
  ViewClients views(tandemd.public_connection(), view_clients, [at_tip](int) { return at_tip; });

  auto context = tandemd.public_connection().StreamContext();
  auto stream = tandemd.indexer().StreamBlocks(context.get());
  const auto start = Clock::now();
  std::thread writer([&] {
    for (int i = 0; i < count; ++i) {
      v1::SubmitBlockRequest request;
      request.set_height(2 + i);
      request.set_block(blocks.At(2 + i));
      if (!stream->Write(request)) break;
    }
    stream->WritesDone();
  });
  v1::SubmitBlockResponse response;
  int received = 0;
  while (received < count && stream->Read(&response)) ++received;
  writer.join();
  grpc::Status status = stream->Finish();
  const double seconds = SecondsSince(start);
  views.Stop();
  events.Stop();
  if (!status.ok()) report.error = absl::StrCat("StreamBlocks: ", status.error_message());
  std::vector<double> pauses = events.pauses_us();
  report.figures = {{"guest", guest},
                    {"blocks", received},
                    {"view_clients", view_clients},
                    {"blocks_per_s", received / seconds},
                    {"views_per_s", static_cast<double>(views.ok()) / seconds},
                    {"view_failures", views.failed()},
                    {"swaps", pauses.size()},
                    {"swap_pause_p50_us", Quantile(pauses, 0.5)},
                    {"swap_pause_p99_us", Quantile(pauses, 0.99)},
                    {"swap_pause_max_us", Quantile(pauses, 1.0)},
                    {"warm_p50_ms", Quantile(events.warms_us(), 0.5) / 1e3},
                    {"events_dropped", events.dropped()}};
  report.markdown = absl::StrFormat(
      "Streamed ingest under `block` with %d view clients (%s): %d blocks at %.0f blocks/s, "
      "%.0f views/s, %d view failures; swap pause p50 / p99 / max %.1f / %.1f / %.1f µs over %d "
      "swaps; warm p50 %.3f ms.\n",
      view_clients, guest, received, received / seconds, views.ok() / seconds,
      static_cast<int>(views.failed()), Quantile(pauses, 0.5), Quantile(pauses, 0.99),
      Quantile(pauses, 1.0), static_cast<int>(pauses.size()),
      Quantile(events.warms_us(), 0.5) / 1e3);
  return report;
}

ScenarioReport PastHeightViews(const TandemdConfigFor& config, BlockSource& blocks,
                               const std::string& guest, int heights, int clients) {
  ScenarioReport report;
  report.name = "past_height_views";
  absl::StatusOr<std::unique_ptr<Tandemd>> server = Tandemd::Start(config(guest, "block"));
  if (!server.ok()) {
    report.error = server.status().ToString();
    return report;
  }
  Tandemd& tandemd = **server;
  // One more block than views, so that every viewed height is below the tip.
  if (absl::Status ingested = tandemd.SubmitBlocks(
          1, heights + 1, [&](uint32_t h) -> const std::string& { return blocks.At(h); });
      !ingested.ok()) {
    report.error = ingested.ToString();
    return report;
  }
  std::vector<uint32_t> order(heights);
  std::iota(order.begin(), order.end(), 1);
  std::shuffle(order.begin(), order.end(), std::mt19937(7));
  std::atomic<size_t> next{0};
  const std::string view = guest == "bench_guest" ? "stats" : "block_summary";
  const ProcessMemory before = tandemd.Memory();
  const auto start = Clock::now();
  ViewClients views(tandemd.public_connection(), clients,
                    [&](int) -> std::optional<v1::ViewRequest> {
                      const size_t index = next.fetch_add(1);
                      if (index >= order.size()) return std::nullopt;
                      v1::ViewRequest request = ViewAtTip(view);
                      request.set_height(order[index]);
                      return request;
                    });
  views.Join();
  const double seconds = SecondsSince(start);
  const ProcessMemory after = tandemd.Memory();
  report.figures = {{"guest", guest},
                    {"heights", heights},
                    {"clients", clients},
                    {"views_per_s", static_cast<double>(views.ok()) / seconds},
                    {"views", views.ok()},
                    {"view_failures", views.failed()},
                    {"rss_before_mib", Mib(before.rss_bytes)},
                    {"rss_after_mib", Mib(after.rss_bytes)},
                    {"peak_rss_mib", Mib(after.peak_rss_bytes)}};
  report.markdown = absl::StrFormat(
      "Views at %d distinct past heights (%s, %d clients, no instance kept for any of them): "
      "%.0f views/s, %d failures (%s); RSS %.0f MiB before, %.0f MiB after, peak %.0f MiB.\n",
      heights, guest, clients, views.ok() / seconds, static_cast<int>(views.failed()),
      CodesText(views.failures_by_code()), Mib(before.rss_bytes), Mib(after.rss_bytes),
      Mib(after.peak_rss_bytes));
  return report;
}

ScenarioReport FailingViewFlood(const TandemdConfigFor& config, BlockSource& blocks,
                                const std::string& policy, int flooders, int honest_clients,
                                absl::Duration duration) {
  ScenarioReport report;
  report.name = "failing_view_flood";
  const std::string guest = "bitcoin_indexer";
  const v1::ViewRequest honest_view = ViewAtTip("block_summary");
  // The indexer aborts on an outpoint request shorter than 36 bytes, failing its instance.
  const v1::ViewRequest failing_view = ViewAtTip("outpoint", "abc");

  struct Phase {
    IngestFigures ingest;
    uint64_t honest_ok = 0, honest_failed = 0, flood_calls = 0, instance_failures = 0;
    std::map<int, uint64_t> flood_codes, honest_codes;
  };
  auto run = [&](bool flood) -> absl::StatusOr<Phase> {
    absl::StatusOr<std::unique_ptr<Tandemd>> server = Tandemd::Start(config(guest, policy));
    if (!server.ok()) return server.status();
    Tandemd& tandemd = **server;
    EventWatcher events(tandemd.admin_connection());
    TANDEM_RETURN_IF_ERROR(
        tandemd.SubmitBlocks(1, 1, [&](uint32_t h) -> const std::string& { return blocks.At(h); }));
    ViewClients honest(
        tandemd.public_connection(), honest_clients, [&](int) { return honest_view; },
        /*own_connections=*/true);
    std::unique_ptr<ViewClients> flooding;
    if (flood) {
      flooding = std::make_unique<ViewClients>(
          tandemd.public_connection(), flooders, [&](int) { return failing_view; },
          /*own_connections=*/true);
    }
    Phase phase;
    phase.ingest = IngestFor(tandemd, blocks, 2, duration);
    honest.Stop();
    if (flooding != nullptr) flooding->Stop();
    events.Stop();
    phase.honest_ok = honest.ok();
    phase.honest_failed = honest.failed();
    phase.honest_codes = honest.failures_by_code();
    if (flooding != nullptr) {
      phase.flood_calls = flooding->ok() + flooding->failed();
      phase.flood_codes = flooding->failures_by_code();
    }
    phase.instance_failures = events.instance_failures();
    return phase;
  };
  absl::StatusOr<Phase> quiet = run(false);
  absl::StatusOr<Phase> flooded = quiet.ok() ? run(true) : quiet;
  if (!flooded.ok()) {
    report.error = flooded.status().ToString();
    return report;
  }
  const double ratio = flooded->ingest.blocks_per_s / std::max(quiet->ingest.blocks_per_s, 1e-9);
  const uint64_t honest_failures = flooded->honest_failed + flooded->ingest.failures +
                                   quiet->honest_failed + quiet->ingest.failures;
  report.figures = {{"policy", policy},
                    {"flooders", flooders},
                    {"honest_clients", honest_clients},
                    {"blocks_per_s_alone", quiet->ingest.blocks_per_s},
                    {"blocks_per_s_flooded", flooded->ingest.blocks_per_s},
                    {"ingest_ratio", ratio},
                    {"honest_failures", honest_failures},
                    {"honest_views_flooded", flooded->honest_ok},
                    {"flood_calls", flooded->flood_calls},
                    {"instance_failures", flooded->instance_failures}};
  client::Json codes = client::Json::object();
  for (const auto& [code, count] : flooded->flood_codes) codes[std::to_string(code)] = count;
  report.figures["flood_answers_by_code"] = codes;
  report.markdown = absl::StrFormat(
      "Flood under `%s` (%d clients whose views abort, %d honest view clients, unary ingest of "
      "small blocks for %s): ingest %.0f blocks/s alone, %.0f flooded (%.2f×); honest failures "
      "%d (blocks and views; first: %s); %d flood calls answered %s; %d instances failed.\n",
      policy, flooders, honest_clients, absl::FormatDuration(duration), quiet->ingest.blocks_per_s,
      flooded->ingest.blocks_per_s, ratio, static_cast<int>(honest_failures),
      flooded->ingest.first_failure.empty() ? "-" : flooded->ingest.first_failure,
      static_cast<int>(flooded->flood_calls), CodesText(flooded->flood_codes),
      static_cast<int>(flooded->instance_failures));
  return report;
}

ScenarioReport LeakyLongRun(const TandemdConfigFor& config, int count) {
  ScenarioReport report;
  report.name = "leaky_long_run";
  // The question is whether instances leak, so the store's caches must reach their steady state
  // (memtables fill to --db_write_buffers, flush, start again; the block cache fills to
  // --db_block_cache with the index and filter blocks of new tables) well inside the first
  // window. Under the 256 MiB defaults the memtables keep filling for ~90,000 of these tiny blocks
  // (about 290 bytes each) before the first flush: bounded, but the two windows would then sample
  // two points of one fill instead of the instances' memory.
  Tandemd::Config leaky = config("leaky", "block");
  leaky.extra_flags.push_back("--db_write_buffers=16MiB");
  leaky.extra_flags.push_back("--db_block_cache=16MiB");
  absl::StatusOr<std::unique_ptr<Tandemd>> server = Tandemd::Start(leaky);
  if (!server.ok()) {
    report.error = server.status().ToString();
    return report;
  }
  Tandemd& tandemd = **server;
  // Every 100 blocks, so that each 10,000-block window averages 100 samples: VmSize moves in steps
  // of one worker's uncollected reservations (its share of uncollected_retirements_per_process,
  // 10 GiB each), and a mean of 10 samples (one every 1,000 blocks) moved by up to 11% between
  // runs with it.
  constexpr int kSampleEvery = 100;
  constexpr size_t kWindow = 10'000 / kSampleEvery;  // Samples per 10,000 blocks.
  std::vector<ProcessMemory> samples;                // After blocks 100, 200, ...
  std::string block;
  const auto start = Clock::now();
  for (int height = 1; height <= count; ++height) {
    block = absl::StrCat(U32Le(64), U32Le(height));  // 64 KiB leaked; unique bytes per height.
    if (absl::Status status =
            tandemd.SubmitBlocks(height, 1, [&](uint32_t) -> const std::string& { return block; });
        !status.ok()) {
      report.error = status.ToString();
      break;
    }
    if (height % kSampleEvery == 0) {
      samples.push_back(tandemd.Memory());
      if (height % 10'000 == 0) {
        std::fprintf(stderr, "(leaky: %d blocks, RSS %.0f MiB, VmSize %.0f GiB) ", height,
                     Mib(samples.back().rss_bytes), Mib(samples.back().vm_bytes) / 1024);
      }
    }
  }
  const double seconds = SecondsSince(start);
  auto mean = [&](size_t first, size_t last, bool vm) {  // Samples [first, last).
    double sum = 0;
    for (size_t i = first; i < last && i < samples.size(); ++i) {
      sum += static_cast<double>(vm ? samples[i].vm_bytes : samples[i].rss_bytes);
    }
    return sum / static_cast<double>(std::max<size_t>(1, std::min(last, samples.size()) - first));
  };
  const size_t n = samples.size();
  if (n < 3 * kWindow) {
    if (report.error.empty()) report.error = "too few samples: run at least 30,000 blocks";
    return report;
  }
  // Blocks 10,001-20,000 and the last 10,000.
  const double rss_early = mean(kWindow, 2 * kWindow, false);
  const double rss_late = mean(n - kWindow, n, false);
  const double vm_early = mean(kWindow, 2 * kWindow, true);
  const double vm_late = mean(n - kWindow, n, true);
  client::Json rss = client::Json::array(), vm = client::Json::array();
  for (const ProcessMemory& sample : samples) {
    rss.push_back(Mib(sample.rss_bytes));
    vm.push_back(Mib(sample.vm_bytes));
  }
  report.figures = {{"blocks", count},
                    {"blocks_per_s", count / seconds},
                    {"rss_mib_blocks_10001_20000", Mib(static_cast<uint64_t>(rss_early))},
                    {"rss_mib_last_10000", Mib(static_cast<uint64_t>(rss_late))},
                    {"rss_ratio", rss_late / rss_early},
                    {"vmsize_mib_blocks_10001_20000", Mib(static_cast<uint64_t>(vm_early))},
                    {"vmsize_mib_last_10000", Mib(static_cast<uint64_t>(vm_late))},
                    {"vmsize_ratio", vm_late / vm_early},
                    {"rss_mib_every_100_blocks", rss},
                    {"vmsize_mib_every_100_blocks", vm}};
  report.markdown = absl::StrFormat(
      "%d blocks of the leaky guest under `block` (%.0f blocks/s): mean RSS %.1f MiB over blocks "
      "10,001-20,000 and %.1f MiB over the last 10,000 (%.3f×); mean VmSize %.1f GiB and %.1f GiB "
      "(%.3f×).\n",
      count, count / seconds, Mib(static_cast<uint64_t>(rss_early)),
      Mib(static_cast<uint64_t>(rss_late)), rss_late / rss_early,
      Mib(static_cast<uint64_t>(vm_early)) / 1024, Mib(static_cast<uint64_t>(vm_late)) / 1024,
      vm_late / vm_early);
  return report;
}

}  // namespace tandem::bench
