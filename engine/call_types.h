// Values that cross the engine's boundary: what a call returns and what memory it left behind.
// Plain data: no V8 types, no behaviour.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "util/write_set.h"

namespace tandem::engine {

// A block's final writes: key -> value, last write of a key wins. An empty value deletes the key.
// The store's WriteSet is this same type (util/), so the writes reach a commit by move.
using BlockWrites = util::WriteSet;

// Memory of one instance, read after every call.
struct MemoryReadout {
  uint64_t linear_memory_bytes = 0;  // The guest's linear memory (what the cap applies to).
  uint64_t heap_used_bytes = 0;      // V8 heap figures of the instance's isolate.
  uint64_t heap_total_bytes = 0;
  uint64_t heap_limit_bytes = 0;
  uint64_t external_memory_bytes = 0;
  uint64_t malloced_memory_bytes = 0;
};

struct BlockResult {
  BlockWrites writes;
  MemoryReadout memory;
};

// The answer of a view or an init call: the bytes the export's returned pointer designates.
struct CallResult {
  std::string answer;
  MemoryReadout memory;
};

// What a job on a worker hands back to the caller that waits for it.
struct JobOutput {
  BlockWrites writes;                // A block's final writes.
  std::string answer;                // A view's or init call's answer.
  std::vector<std::string> answers;  // Replayed init calls' answers, in order.
  MemoryReadout memory;              // The hosted guest's memory after the job.
};

// Limits fixed for the life of a worker's isolate.
struct RuntimeLimits {
  // The isolate's JavaScript heap limit (guests live in linear memory, not on this heap).
  size_t heap_limit_bytes = 256ull << 20;
  // A retired instance leaves its linear memory's address-space reservation (10 GiB with V8's
  // guard regions) until its isolate's next full collection. The process holds fewer than this
  // many such reservations, however many workers it has: each isolate collects once it holds its
  // share (this divided by the isolates alive, at least 1). 64 keeps a process below 640 GiB of
  // them, far from V8's 1 TiB limit on wasm reservations, and collects every 8 retirements with
  // the 8 workers `block` keeps busy under streamed ingest.
  int uncollected_retirements_per_process = 64;
};

// Receives the guests' `__log` lines. Implemented above the engine (the server's log).
// Threading: called from instance threads, concurrently for different instances.
class GuestLogSink {
 public:
  virtual ~GuestLogSink() = default;
  // `instance` names the instance ("generation 12"); `text` is at most the per-line cap.
  virtual void OnGuestLog(absl::string_view instance, absl::string_view text) = 0;
};

}  // namespace tandem::engine
