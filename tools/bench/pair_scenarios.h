// tandem-bench's scenarios for the instance pair beyond plain ingest: swap pauses under streamed
// ingest with view clients, views at many past heights, clients whose views fail their instance,
// and memory over a long run of a leaking guest. Each reports figures as JSON and Markdown.
#pragma once

#include <functional>
#include <string>

#include "absl/time/time.h"
#include "tools/bench/harness.h"
#include "tools/client/json.h"

namespace tandem::bench {

// What one scenario measured.
struct ScenarioReport {
  std::string name;
  std::string error;     // Empty when it ran to the end.
  client::Json figures;  // Its figures, by name.
  std::string markdown;  // A paragraph or table for people.
};

// Makes the tandemd of a run: `guest` under `policy`, with tandem-bench's flags.
using TandemdConfigFor =
    std::function<Tandemd::Config(const std::string& guest, const std::string& policy)>;

// `blocks` small blocks streamed under `block` while `view_clients` clients ask views at the tip:
// swap pauses (p50 / p99 / max), blocks/s, views/s, view failures.
ScenarioReport StreamWithViews(const TandemdConfigFor& config, BlockSource& blocks,
                               const std::string& guest, int count, int view_clients);

// `heights` blocks ingested, then `clients` clients ask one view at each of those heights, each
// height once, in a shuffled order (fixed seed): no kept instance serves them, so each takes a
// fresh instance. Views/s, failures, and tandemd's RSS before, at its peak and after.
ScenarioReport PastHeightViews(const TandemdConfigFor& config, BlockSource& blocks,
                               const std::string& guest, int heights, int clients);

// Ingest of small blocks for `duration` under `policy` with `honest_clients` asking views at the
// tip, first alone and then with `flooders` clients (each its own connection) whose views abort
// (`outpoint` with a 3-byte request). Ingest with the flood as a fraction of ingest without,
// honest failures (blocks and views, which must be 0), and how the flood was answered.
ScenarioReport FailingViewFlood(const TandemdConfigFor& config, BlockSource& blocks,
                                const std::string& policy, int flooders, int honest_clients,
                                absl::Duration duration);

// `count` blocks of the leaky guest (64 KiB leaked per block) under `block`, submitted one by one;
// tandemd's RSS and address space (VmSize) sampled every 1,000 blocks. Reports the mean of each
// over blocks 10,001-20,000 and over the last 10,000, and their ratio.
ScenarioReport LeakyLongRun(const TandemdConfigFor& config, int count);

}  // namespace tandem::bench
