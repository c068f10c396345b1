// The process-wide V8 platform: initialised once, with the page allocator that notices when the
// host fails to provide memory. It must never be torn down while instances exist.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "engine/guest_memory_ledger.h"

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
  // Who said no.
  enum class Failure {
    kNone,
    kHost,    // The operating system refused a reservation or a commit (rlimits, overcommit).
    kBudget,  // The commit would have passed the host memory budget (SetGuestMemoryBudget).
  };

  HostMemoryWatch();
  ~HostMemoryWatch();
  HostMemoryWatch(const HostMemoryWatch&) = delete;
  HostMemoryWatch& operator=(const HostMemoryWatch&) = delete;

  // True when a reservation or commit of memory failed on this thread since construction.
  bool failed() const { return kind_ != Failure::kNone; }
  // The first failure's kind, and its description ("commit of 33554432 bytes failed").
  Failure kind() const { return kind_; }
  const std::string& failure() const { return failure_; }

  // True when the calling thread runs inside a watch.
  static bool ActiveOnThisThread();
  // Called by the page allocator on the failing thread.
  static void RecordFailureOnThisThread(Failure kind, std::string what);

 private:
  HostMemoryWatch* outer_;
  Failure kind_ = Failure::kNone;
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

// ---- Host memory budget
//
// Guest linear memory committed by every instance of the process is accounted against one budget
// (GuestMemoryLedger) by the platform's page allocator. A commit inside a HostMemoryWatch that
// would pass the budget is refused like a host failure (HostMemoryWatch::Failure::kBudget), after
// the registered reclaimer has been asked to drop cached instances. REQUIRES for all of these:
// InitializeV8 succeeded.

// The budget in bytes; GuestMemoryLedger::kUnlimited (the default) turns refusals off.
void SetGuestMemoryBudget(uint64_t bytes);
// The budget, what is committed against it, and the refusals so far.
GuestMemoryLedger::Usage GuestMemoryUsage();
// Asked to drop cached instances before a commit is refused; null for none. Not owned: it must
// stay valid until replaced; returns once no call into the previous one is running.
void SetGuestMemoryReclaimer(GuestMemoryReclaimer* reclaimer);
// Unregisters `reclaimer` if it is the one registered; returns once no call into it is running.
void RemoveGuestMemoryReclaimer(GuestMemoryReclaimer* reclaimer);
// Gives the pages of a retired guest's linear memory at [data, data + length) back to the
// operating system now and takes them off the budget. The range stays reserved but becomes
// inaccessible: V8 frees the reservation itself when it collects the memory's buffer.
void ReleaseGuestMemory(void* data, size_t length);

// Fault injection through the production seam: while `bytes` is non-zero, any single reservation
// or read-write commit of more than `bytes` made inside a HostMemoryWatch fails as if the host
// had no memory. Zero turns it off.
void SetHostMemoryFailureThresholdForTesting(size_t bytes);

}  // namespace tandem::engine
