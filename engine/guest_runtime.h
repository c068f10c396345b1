// The V8 side of a worker: one isolate, one context, and the guest instance hosted there now.
// Only the worker's own thread may create, use or destroy it; nothing here waits or keeps policy.
#pragma once

#include <v8.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/call_types.h"
#include "engine/host_abi.h"
#include "engine/module.h"

namespace tandem::engine {

struct InstanceOptions;

// How many retired instances an isolate keeps uncollected before a full collection, when
// `live_isolates` isolates share the process's `per_process` (at least 1).
int CollectionShare(int per_process, int live_isolates);

// One isolate with one context, entered for the runtime's whole life, hosting at most one guest
// instance at a time. Instances come and go (a generation each); the isolate stays, which is what
// makes a fresh instance cost an instantiation instead of an Isolate::New.
//
// Why instances in one context cannot reach each other: a WebAssembly instance sees only its own
// memory, globals and tables (the module defines them; the host ABI imports none of them) and
// the `env` functions. Those are made once per runtime and call into the runtime's HostAbi, whose
// memory and call state are those of the guest hosted now and are cleared when it retires; the
// functions themselves hold no state a guest could leave behind. Guest code can reach no
// JavaScript object, so the context's global object and the `env` functions, all that instances
// share, are invisible to all of them. The compiled code they share is immutable
// (tier-up changes speed, never results: stack depth, the one tier-dependent outcome, is a host
// failure). Measured: a new context per instance costs 0.3-0.6 ms, an instantiation 20-200 µs.
//
// Threading: confined to its worker's thread, except isolate()->TerminateExecution().
class GuestRuntime {
 public:
  explicit GuestRuntime(const RuntimeLimits& limits);
  ~GuestRuntime();
  GuestRuntime(const GuestRuntime&) = delete;
  GuestRuntime& operator=(const GuestRuntime&) = delete;

  v8::Isolate* isolate() const { return isolate_; }

  // Instantiates `module` from its compiled code as the hosted guest and calls `_initialize` when
  // exported. On failure the guest is left hosted and failed (Retire it). Errors: UNAVAILABLE
  // (host memory, V8 refused), ABORTED (a trap in `_initialize`), a termination marker.
  // REQUIRES: no guest is hosted; `module` outlives the hosted guest.
  absl::Status Instantiate(const Module& module, std::shared_ptr<const InstanceOptions> options);

  // Calls the export `name` of the hosted guest with `state`. For views and init calls, reads the
  // answer from the returned pointer. Any error fails the hosted guest (see guest_failure()).
  // REQUIRES: a guest is hosted and healthy.
  absl::StatusOr<JobOutput> Call(absl::string_view name, HostCallState& state);

  // Drops the hosted guest. Its linear memory's pages go back to the operating system now; the
  // reservation behind them when the next collection runs, once this isolate holds its share of
  // limits.uncollected_retirements_per_process (CollectionShare).
  void Retire();

  bool hosting() const { return guest_ != nullptr; }
  // OK while the hosted guest is healthy; else the failure of the call that ended it.
  absl::Status guest_failure() const;
  // True once the isolate reached its heap limit: it must not host another guest.
  bool heap_limit_reached() const { return heap_limit_reached_; }

  MemoryReadout ReadMemory();
  // Runs the foreground tasks V8 posted (finishing compiles, GC steps); between calls only.
  void PumpTasks();

  // Retirements and collections so far, for tests and benchmarks.
  uint64_t retirements() const { return retirements_; }
  uint64_t collections() const { return collections_; }
  // GuestRuntimes alive in the process (each one an isolate).
  static int Live();

  // Marks a call terminated by TerminateExecution until the worker knows why it terminated it.
  static absl::Status TerminatedMarker();
  static bool IsTerminatedMarker(const absl::Status& status);

 private:
  struct HostedGuest;
  class Scope;

  v8::Local<v8::String> Name(absl::string_view text);
  absl::StatusOr<JobOutput> CallIn(Scope& scope, absl::string_view name, HostCallState& state);
  void CollectGarbage();
  static size_t NearHeapLimit(void* data, size_t current_limit, size_t initial_limit);

  const RuntimeLimits limits_;
  std::unique_ptr<v8::ArrayBuffer::Allocator> allocator_;
  v8::Isolate* isolate_ = nullptr;
  v8::Global<v8::Context> context_;
  // `WebAssembly.Instance`, looked up once.
  v8::Global<v8::Function> instance_constructor_;
  // The module object of the latest module instantiated here (FromCompiledModule once per module).
  const Module* cached_module_ = nullptr;
  v8::Global<v8::WasmModuleObject> cached_module_object_;

  // The `env` import object, made at the first instantiation; its functions call into `abi_`.
  v8::Global<v8::Object> imports_;
  HostAbi abi_;
  std::unique_ptr<HostedGuest> guest_;
  bool heap_limit_reached_ = false;
  int retired_since_collection_ = 0;
  uint64_t retirements_ = 0;
  uint64_t collections_ = 0;
};

}  // namespace tandem::engine
