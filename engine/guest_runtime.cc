// The V8 side of a worker: one isolate, one context, and the guest instance hosted there now.
// Only the worker's own thread may create, use or destroy it; nothing here waits or keeps policy.
#include "engine/guest_runtime.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/guest_memory.h"
#include "engine/instance.h"
#include "engine/platform.h"
#include "util/failure_cause.h"

namespace tandem::engine {
namespace {

// Every GuestRuntime's isolate, counted so that retirements can share one process-wide bound.
std::atomic<int> live_runtimes{0};

using util::CausedError;
using util::FailureCause;

constexpr absl::string_view kTerminatedMessage = "tandem: execution terminated";

std::string DescribeException(v8::Isolate* isolate, const v8::TryCatch& try_catch) {
  if (!try_catch.HasCaught()) return "unknown error";
  v8::String::Utf8Value text(isolate, try_catch.Exception());
  return *text != nullptr ? std::string(*text) : "unprintable exception";
}

// The constructor name of the caught exception ("RuntimeError", "RangeError", ...), or "".
std::string ExceptionKind(v8::Isolate* isolate, const v8::TryCatch& try_catch) {
  if (!try_catch.HasCaught() || !try_catch.Exception()->IsObject()) return "";
  v8::String::Utf8Value name(isolate, try_catch.Exception().As<v8::Object>()->GetConstructorName());
  return *name != nullptr ? std::string(*name) : "";
}

absl::Status HostMemoryFailure(const HostMemoryWatch& watch) {
  const FailureCause cause = watch.kind() == HostMemoryWatch::Failure::kBudget
                                 ? FailureCause::kHostMemoryBudget
                                 : FailureCause::kHostMemory;
  return CausedError(
      absl::StatusCode::kUnavailable, cause,
      absl::StrCat("the host could not provide memory below the cap (", watch.failure(),
                   "); nothing of this call counts, retry on a healthy host"));
}

}  // namespace

// The guest instance a runtime hosts now. Its `env` functions are the runtime's, pointing at the
// runtime's `abi_`, which serves whichever guest is hosted.
struct GuestRuntime::HostedGuest {
  const Module* module = nullptr;
  std::shared_ptr<const InstanceOptions> options;
  v8::Global<v8::Object> exports;
  v8::Global<v8::WasmMemoryObject> memory;
  absl::Status failure;
};

// Stack-only proof that the isolate's context is entered with a handle scope open. Everything
// that creates V8 handles takes one as its first parameter.
class GuestRuntime::Scope {
 public:
  explicit Scope(GuestRuntime& runtime)
      : handles_(runtime.isolate_),
        context(runtime.context_.Get(runtime.isolate_)),
        context_scope_(context) {}
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
  void* operator new(size_t) = delete;

 private:
  v8::HandleScope handles_;

 public:
  const v8::Local<v8::Context> context;

 private:
  v8::Context::Scope context_scope_;
};

int CollectionShare(int per_process, int live_isolates) {
  return std::max(1, per_process / std::max(1, live_isolates));
}

int GuestRuntime::Live() { return live_runtimes.load(std::memory_order_relaxed); }

GuestRuntime::GuestRuntime(const RuntimeLimits& limits)
    : limits_(limits), allocator_(v8::ArrayBuffer::Allocator::NewDefaultAllocator()) {
  live_runtimes.fetch_add(1, std::memory_order_relaxed);
  v8::Isolate::CreateParams params;
  params.array_buffer_allocator = allocator_.get();
  params.constraints.ConfigureDefaultsFromHeapSize(0, limits.heap_limit_bytes);
  isolate_ = v8::Isolate::New(params);
  isolate_->Enter();
  isolate_->AddNearHeapLimitCallback(&GuestRuntime::NearHeapLimit, this);
  v8::HandleScope handles(isolate_);
  v8::Local<v8::Context> context = v8::Context::New(isolate_);
  context_.Reset(isolate_, context);
  v8::Context::Scope context_scope(context);
  v8::Local<v8::Value> web_assembly;
  v8::Local<v8::Value> constructor;
  if (context->Global()->Get(context, Name("WebAssembly")).ToLocal(&web_assembly) &&
      web_assembly->IsObject() &&
      web_assembly.As<v8::Object>()->Get(context, Name("Instance")).ToLocal(&constructor) &&
      constructor->IsFunction()) {
    instance_constructor_.Reset(isolate_, constructor.As<v8::Function>());
  }
}

GuestRuntime::~GuestRuntime() {
  // Every handle goes before the isolate: a guest may still be hosted (a worker disposed after a
  // terminated call), and then `abi_` still holds its memory.
  abi_.AttachMemory(isolate_, v8::Local<v8::WasmMemoryObject>());
  guest_.reset();
  imports_.Reset();
  cached_module_object_.Reset();
  instance_constructor_.Reset();
  context_.Reset();
  isolate_->Exit();
  NotifyIsolateShutdown(isolate_);
  isolate_->Dispose();
  live_runtimes.fetch_sub(1, std::memory_order_relaxed);
}

absl::Status GuestRuntime::TerminatedMarker() {
  return CausedError(absl::StatusCode::kCancelled, FailureCause::kShutdown, kTerminatedMessage);
}

bool GuestRuntime::IsTerminatedMarker(const absl::Status& status) {
  return status.code() == absl::StatusCode::kCancelled && status.message() == kTerminatedMessage;
}

v8::Local<v8::String> GuestRuntime::Name(absl::string_view text) {
  return v8::String::NewFromUtf8(isolate_, text.data(), v8::NewStringType::kNormal,
                                 static_cast<int>(text.size()))
      .ToLocalChecked();
}

absl::Status GuestRuntime::guest_failure() const {
  if (guest_ == nullptr) return absl::FailedPreconditionError("no guest is hosted");
  return guest_->failure;
}

absl::Status GuestRuntime::Instantiate(const Module& module,
                                       std::shared_ptr<const InstanceOptions> options) {
  guest_ = std::make_unique<HostedGuest>();
  guest_->module = &module;
  guest_->options = std::move(options);
  absl::Status status = [&]() -> absl::Status {
    Scope scope(*this);
    if (instance_constructor_.IsEmpty()) {
      return CausedError(absl::StatusCode::kInternal, FailureCause::kHostError,
                         "WebAssembly.Instance is not available in the context");
    }
    v8::TryCatch try_catch(isolate_);
    if (cached_module_ != &module) {
      v8::Local<v8::WasmModuleObject> module_object;
      if (!v8::WasmModuleObject::FromCompiledModule(isolate_, module.compiled())
               .ToLocal(&module_object)) {
        return CausedError(absl::StatusCode::kUnavailable, FailureCause::kHostError,
                           absl::StrCat("could not share the compiled module with the isolate: ",
                                        DescribeException(isolate_, try_catch)));
      }
      cached_module_object_.Reset(isolate_, module_object);
      cached_module_ = &module;
    }
    if (imports_.IsEmpty()) {
      // Made once per runtime: building seven functions was a tenth of an instance's cost.
      v8::Local<v8::Object> imports = v8::Object::New(isolate_);
      imports->Set(scope.context, Name("env"), abi_.MakeImportObject(isolate_, scope.context))
          .Check();
      imports_.Reset(isolate_, imports);
    }
    v8::Local<v8::Value> arguments[] = {cached_module_object_.Get(isolate_),
                                        imports_.Get(isolate_)};
    HostMemoryWatch watch;
    v8::MaybeLocal<v8::Object> instance =
        instance_constructor_.Get(isolate_)->NewInstance(scope.context, 2, arguments);
    if (watch.failed()) return HostMemoryFailure(watch);
    if (try_catch.HasTerminated() || isolate_->IsExecutionTerminating()) {
      return TerminatedMarker();
    }
    // V8 10.2 can hand back an object even when the start function threw: the caught exception,
    // not the result, says whether instantiation failed.
    if (instance.IsEmpty() || try_catch.HasCaught()) {
      const std::string what = DescribeException(isolate_, try_catch);
      const std::string kind = ExceptionKind(isolate_, try_catch);
      if (kind == "RuntimeError") {
        // A trap in the module's start function: the module's own doing, on every node alike.
        return CausedError(absl::StatusCode::kAborted, FailureCause::kGuestTrap,
                           absl::StrCat("guest trapped while instantiating: ", what));
      }
      if (kind == "RangeError") {
        // V8 could not reserve the linear memory (its address-space limit, or the host's).
        return CausedError(absl::StatusCode::kUnavailable, FailureCause::kHostMemory,
                           absl::StrCat("instantiation failed for lack of memory: ", what));
      }
      return CausedError(absl::StatusCode::kUnavailable, FailureCause::kHostError,
                         absl::StrCat("instantiation failed: ", what));
    }
    v8::Local<v8::Value> exports;
    v8::Local<v8::Value> memory;
    if (!instance.ToLocalChecked()->Get(scope.context, Name("exports")).ToLocal(&exports) ||
        !exports->IsObject() ||
        !exports.As<v8::Object>()->Get(scope.context, Name("memory")).ToLocal(&memory) ||
        !memory->IsWasmMemoryObject()) {
      return CausedError(absl::StatusCode::kInternal, FailureCause::kHostError,
                         "the instance's exports lack the validated memory");
    }
    guest_->exports.Reset(isolate_, exports.As<v8::Object>());
    guest_->memory.Reset(isolate_, memory.As<v8::WasmMemoryObject>());
    abi_.AttachMemory(isolate_, memory.As<v8::WasmMemoryObject>());
    if (module.has_initialize()) {
      HostCallState state;
      state.kind = CallKind::kInitialize;
      state.input = std::string(4, '\0');  // Height 0, no payload.
      return CallIn(scope, "_initialize", state).status();
    }
    return absl::OkStatus();
  }();
  if (!status.ok() && guest_->failure.ok()) guest_->failure = status;
  return status;
}

absl::StatusOr<JobOutput> GuestRuntime::Call(absl::string_view name, HostCallState& state) {
  Scope scope(*this);
  absl::StatusOr<JobOutput> output = CallIn(scope, name, state);
  if (!output.ok() && guest_->failure.ok()) guest_->failure = output.status();
  return output;
}

absl::StatusOr<JobOutput> GuestRuntime::CallIn(Scope& scope, absl::string_view name,
                                               HostCallState& state) {
  const InstanceOptions& options = *guest_->options;
  state.limits.max_block_write_bytes = options.max_block_write_bytes;
  state.limits.max_log_lines = options.max_log_lines_per_call;
  state.limits.max_log_line_bytes = options.max_log_line_bytes;
  state.log_sink = options.log_sink;
  state.instance_label = options.label;

  v8::Local<v8::Value> function;
  if (!guest_->exports.Get(isolate_)->Get(scope.context, Name(name)).ToLocal(&function) ||
      !function->IsFunction()) {
    return CausedError(absl::StatusCode::kNotFound, FailureCause::kGuestAbi,
                       absl::StrCat("module has no function export \"", name, "\""));
  }
  v8::TryCatch try_catch(isolate_);
  HostMemoryWatch watch;
  HostAbi& abi = abi_;
  abi.set_call(&state);
  v8::MaybeLocal<v8::Value> result =
      function.As<v8::Function>()->Call(scope.context, v8::Undefined(isolate_), 0, nullptr);
  abi.set_call(nullptr);

  // Host outcomes first: whatever the guest made of them, they must not decide the result.
  if (watch.failed()) return HostMemoryFailure(watch);
  if (heap_limit_reached_) {
    return CausedError(absl::StatusCode::kUnavailable, FailureCause::kHeapLimit,
                       "the instance's V8 heap reached its limit; the call was terminated");
  }
  if (try_catch.HasTerminated() || isolate_->IsExecutionTerminating()) return TerminatedMarker();
  if (!state.failure.ok()) return state.failure;
  if (result.IsEmpty()) {
    std::string what = DescribeException(isolate_, try_catch);
    if (absl::StrContains(what, "Maximum call stack size exceeded")) {
      // Stack depth differs between V8 tiers and builds: a host outcome, not the block's.
      return CausedError(
          absl::StatusCode::kUnavailable, FailureCause::kStackOverflow,
          absl::StrCat("the guest overflowed the native stack (depends on the host, not the "
                       "block): ",
                       what));
    }
    return CausedError(absl::StatusCode::kAborted, FailureCause::kGuestTrap,
                       absl::StrCat("guest trapped in ", name, ": ", what));
  }

  JobOutput output;
  switch (state.kind) {
    case CallKind::kBlock:
      if (!state.flushed) {
        return CausedError(absl::StatusCode::kAborted, FailureCause::kGuestAbi,
                           "block finished without calling __flush; nothing is committed");
      }
      output.writes = std::move(state.writes);
      break;
    case CallKind::kView:
    case CallKind::kInit: {
      v8::Local<v8::Value> value = result.ToLocalChecked();
      if (!value->IsInt32() && !value->IsUint32()) {
        return CausedError(absl::StatusCode::kAborted, FailureCause::kGuestAbi,
                           absl::StrCat("export ", name, " returned no i32 pointer"));
      }
      uint32_t pointer = value->IsInt32() ? static_cast<uint32_t>(value.As<v8::Int32>()->Value())
                                          : value.As<v8::Uint32>()->Value();
      absl::StatusOr<absl::string_view> answer =
          ReadLengthPrefixed(abi.MemoryBytes(isolate_), pointer);
      if (!answer.ok()) {
        return CausedError(
            absl::StatusCode::kAborted, FailureCause::kGuestAbi,
            absl::StrCat("export ", name, " returned a bad pointer: ", answer.status().message()));
      }
      output.answer = std::string(*answer);
      break;
    }
    case CallKind::kInitialize:
      break;
  }
  return output;
}

void GuestRuntime::Retire() {
  if (guest_ == nullptr) return;
  {
    v8::HandleScope handles(isolate_);
    if (!guest_->memory.IsEmpty()) {
      // The guest never runs again and nothing reads its memory, so its pages can go back to the
      // operating system now rather than when a collection frees the buffer. The buffer is
      // page-aligned and a whole number of 64 KiB wasm pages long.
      std::shared_ptr<v8::BackingStore> backing =
          guest_->memory.Get(isolate_)->Buffer()->GetBackingStore();
      if (backing->Data() != nullptr && backing->ByteLength() > 0) {
        ReleaseGuestMemory(backing->Data(), backing->ByteLength());
      }
    }
  }
  abi_.AttachMemory(isolate_, v8::Local<v8::WasmMemoryObject>());
  abi_.set_call(nullptr);
  guest_.reset();
  ++retirements_;
  // A scavenge cannot stand in for this: V8 allocates wasm instances and memory objects in the
  // old generation (measured: after a scavenge the retired memory is still there).
  // The share, not a fixed count per isolate: what a process holds uncollected (its VmSize, and
  // its distance from V8's limit) then stays put when the worker pool grows under load.
  if (++retired_since_collection_ >=
      CollectionShare(limits_.uncollected_retirements_per_process, Live())) {
    CollectGarbage();
  }
}

void GuestRuntime::CollectGarbage() {
  // One full collection frees the retired instances' buffers, and with them their reservations.
  // V8 would collect them only under JavaScript heap pressure, which guests barely create, or when
  // a reservation fails, which in a process of several isolates comes too late.
  // RequestGarbageCollectionForTesting is the API for exactly one full collection (it needs
  // --expose-gc, which InitializeV8 sets); LowMemoryNotification runs several and costs 2-3x more.
  isolate_->RequestGarbageCollectionForTesting(v8::Isolate::kFullGarbageCollection);
  retired_since_collection_ = 0;
  ++collections_;
}

MemoryReadout GuestRuntime::ReadMemory() {
  v8::HandleScope handles(isolate_);
  MemoryReadout readout;
  if (guest_ != nullptr) readout.linear_memory_bytes = abi_.MemoryBytes(isolate_).size();
  v8::HeapStatistics heap;
  isolate_->GetHeapStatistics(&heap);
  readout.heap_used_bytes = heap.used_heap_size();
  readout.heap_total_bytes = heap.total_heap_size();
  readout.heap_limit_bytes = heap.heap_size_limit();
  readout.external_memory_bytes = heap.external_memory();
  readout.malloced_memory_bytes = heap.malloced_memory();
  return readout;
}

void GuestRuntime::PumpTasks() { PumpForegroundTasks(isolate_); }

// V8 calls this on the worker's thread when the JavaScript heap nears its limit. The call is
// terminated (a host outcome) and V8 gets room to unwind instead of aborting the process; the
// worker is disposed afterwards.
size_t GuestRuntime::NearHeapLimit(void* data, size_t current_limit, size_t /*initial_limit*/) {
  auto* runtime = static_cast<GuestRuntime*>(data);
  runtime->heap_limit_reached_ = true;
  runtime->isolate_->TerminateExecution();
  return current_limit * 2;
}

}  // namespace tandem::engine
