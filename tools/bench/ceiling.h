// The ceiling tandemd's ingest is measured against: the same guest and real blocks run in-process
// over an in-memory map, one instance reused, no RocksDB and no gRPC (benchmarks/ingest_ceiling).
// tandem-bench never links the engine, so it runs that program as a child and reads its JSON.
#pragma once

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "tools/client/json.h"

namespace tandem::bench {

// The `real` block set: the fixture blocks in file order, over and over, for `blocks` heights
// (renumbered 1, 2, ... by whoever submits them).
std::vector<std::string> RealBlockSet(const std::vector<std::string>& fixtures, int blocks);

struct CeilingResult {
  std::string guest;
  int blocks = 0;
  double blocks_per_s = 0;
  std::string error;  // empty when the figure is valid
};

// Runs `binary` (ingest_ceiling) on `module` and the blocks of `fixtures` for `blocks` heights
// and reads the JSON line it prints. The child dies with the caller (PR_SET_PDEATHSIG) and is
// killed after `timeout`. Never fails: a failure is described in `error`.
CeilingResult RunCeiling(const std::string& binary, const std::string& guest,
                         const std::string& module, const std::string& fixtures, int blocks,
                         absl::Duration timeout);

client::Json CeilingJson(const std::vector<CeilingResult>& ceilings);

}  // namespace tandem::bench
