// The process-wide V8 platform: initialised once, with the page allocator that notices when the
// host fails to provide memory. It must never be torn down while instances exist.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace v8 {
class Isolate;
class Platform;
}  // namespace v8

namespace tandem::engine {

// Records, for the calls running on one thread, whether the host failed to reserve or commit
// memory. Guest-visible memory failures must depend on the cap alone; a failure of the host below
// the cap makes V8 answer `memory.grow` with -1 (or refuse to instantiate), which would let the
// machine decide a guest's result. So every guest call runs inside a HostMemoryWatch and fails as
// a host error when the watch saw a failure, whatever the guest did with it.
//
// Threading: a watch belongs to the thread that created it and must be destroyed on it; watches
// nest (the innermost one records).
class HostMemoryWatch {
 public:
  HostMemoryWatch();
  ~HostMemoryWatch();
  HostMemoryWatch(const HostMemoryWatch&) = delete;
  HostMemoryWatch& operator=(const HostMemoryWatch&) = delete;

  // True when a reservation or commit of memory failed on this thread since construction.
  bool failed() const { return failed_; }
  // Description of the first failure ("commit of 33554432 bytes failed").
  const std::string& failure() const { return failure_; }

  // Called by the page allocator on the failing thread.
  static void RecordFailureOnThisThread(std::string what);

 private:
  HostMemoryWatch* outer_;
  bool failed_ = false;
  std::string failure_;
};

struct PlatformOptions {
  // Extra V8 flags, space-separated (`--flag --other-flag`). Fixed for the life of the process:
  // every instance of the pair must run under the same flags.
  std::string v8_flags;
};

// Initialises V8 once for the process: ICU, the platform (wrapped so that page allocation failures
// reach the HostMemoryWatch of the failing thread), V8 itself, and the WebAssembly trap handler.
// Later calls return the first call's status; their options are ignored.
absl::Status InitializeV8(const PlatformOptions& options = {});

// The version of the V8 this process runs ("10.2.154.26-node.36"), for build identity in metrics
// and logs. Needs no initialisation.
std::string V8Version();

// The platform handed to V8. REQUIRES: InitializeV8 succeeded.
v8::Platform& V8Platform();

// Runs pending foreground tasks that V8 posted for `isolate` (finalising background compiles,
// GC steps). Call it on the isolate's thread between calls. REQUIRES: InitializeV8 succeeded.
void PumpForegroundTasks(v8::Isolate* isolate);

// Tells the platform that `isolate` is about to be disposed, so its task queue is freed.
void NotifyIsolateShutdown(v8::Isolate* isolate);

// Fault injection through the production seam: while `bytes` is non-zero, any single reservation
// or read-write commit of more than `bytes` made inside a HostMemoryWatch fails as if the host
// had no memory. Zero turns it off.
void SetHostMemoryFailureThresholdForTesting(size_t bytes);

}  // namespace tandem::engine
