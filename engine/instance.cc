// One instantiated guest in its own isolate, driven by its own thread, with deadlines enforced.
// It never touches storage: reads go through a StateReader, a block's writes come back as a value.
#include "engine/instance.h"

#include <v8.h>

#include <cstring>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/guest_memory.h"
#include "engine/host_abi.h"
#include "engine/platform.h"
#include "util/status_macros.h"

namespace tandem::engine {

// What a finished guest call hands back to the caller.
struct CallOutput {
  BlockWrites writes;
  std::string answer;
};

// One queued call. `work` runs on the instance thread; the rest is shared with the waiting caller
// and guarded by the owning Instance's mu_ (not expressible as an annotation across classes).
struct Job {
  enum class State { kQueued, kRunning, kDone };

  Job(absl::Time deadline_in, absl::AnyInvocable<absl::StatusOr<CallOutput>(Runtime&)> work_in)
      : deadline(deadline_in), work(std::move(work_in)) {}

  const absl::Time deadline;
  absl::AnyInvocable<absl::StatusOr<CallOutput>(Runtime&)> work;

  State state = State::kQueued;
  bool terminated_for_deadline = false;
  absl::StatusOr<CallOutput> result;
};

namespace {

// Distinguishes "V8 terminated the call" from every other outcome until the instance, which knows
// why it terminated it, turns it into the caller's status.
constexpr absl::string_view kTerminatedMarker = "tandem: execution terminated";

bool IsTerminatedMarker(const absl::Status& status) {
  return status.code() == absl::StatusCode::kCancelled && status.message() == kTerminatedMarker;
}

std::string DescribeException(v8::Isolate* isolate, const v8::TryCatch& try_catch) {
  if (!try_catch.HasCaught()) return "unknown error";
  v8::String::Utf8Value text(isolate, try_catch.Exception());
  return *text != nullptr ? std::string(*text) : "unprintable exception";
}

std::string EncodeInput(uint32_t height, absl::string_view payload) {
  std::string input(4 + payload.size(), '\0');
  for (int i = 0; i < 4; ++i) input[i] = static_cast<char>((height >> (8 * i)) & 0xff);
  if (!payload.empty()) std::memcpy(input.data() + 4, payload.data(), payload.size());
  return input;
}

}  // namespace

// Everything that lives inside the isolate. Created, used and destroyed on the instance thread
// only; the isolate stays entered for the Runtime's whole life.
class Runtime {
 public:
  Runtime(const Module& module, const InstanceOptions& options)
      : module_(module),
        options_(options),
        allocator_(v8::ArrayBuffer::Allocator::NewDefaultAllocator()) {
    v8::Isolate::CreateParams params;
    params.array_buffer_allocator = allocator_.get();
    params.constraints.ConfigureDefaultsFromHeapSize(0, options.heap_limit_bytes);
    isolate_ = v8::Isolate::New(params);
    isolate_->Enter();
    isolate_->AddNearHeapLimitCallback(&Runtime::NearHeapLimit, this);
    v8::HandleScope handles(isolate_);
    context_.Reset(isolate_, v8::Context::New(isolate_));
  }

  ~Runtime() {
    exports_.Reset();
    context_.Reset();
    abi_memory_reset();
    isolate_->Exit();
    NotifyIsolateShutdown(isolate_);
    isolate_->Dispose();
  }

  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  v8::Isolate* isolate() const { return isolate_; }

  // Instantiates the module from its compiled code and runs `_initialize` if it is exported.
  absl::StatusOr<CallOutput> Instantiate() {
    Scope scope(*this);
    v8::TryCatch try_catch(isolate_);
    v8::Local<v8::WasmModuleObject> module_object;
    if (!v8::WasmModuleObject::FromCompiledModule(isolate_, module_.compiled())
             .ToLocal(&module_object)) {
      return absl::UnavailableError(
          absl::StrCat("could not share the compiled module with a new isolate: ",
                       DescribeException(isolate_, try_catch)));
    }
    v8::Local<v8::Object> imports = v8::Object::New(isolate_);
    imports->Set(scope.context, Name("env"), abi_.MakeImportObject(isolate_, scope.context))
        .Check();

    v8::Local<v8::Value> web_assembly;
    v8::Local<v8::Value> instance_constructor;
    if (!scope.context->Global()->Get(scope.context, Name("WebAssembly")).ToLocal(&web_assembly) ||
        !web_assembly->IsObject() ||
        !web_assembly.As<v8::Object>()
             ->Get(scope.context, Name("Instance"))
             .ToLocal(&instance_constructor) ||
        !instance_constructor->IsFunction()) {
      return absl::InternalError("WebAssembly.Instance is not available in the context");
    }
    v8::Local<v8::Value> arguments[] = {module_object, imports};
    HostMemoryWatch watch;
    v8::MaybeLocal<v8::Object> instance =
        instance_constructor.As<v8::Function>()->NewInstance(scope.context, 2, arguments);
    if (watch.failed()) return HostMemoryFailure(watch);
    if (try_catch.HasTerminated() || isolate_->IsExecutionTerminating()) return Terminated();
    if (instance.IsEmpty()) {
      return absl::UnavailableError(
          absl::StrCat("instantiation failed: ", DescribeException(isolate_, try_catch)));
    }
    v8::Local<v8::Value> exports;
    v8::Local<v8::Value> memory;
    if (!instance.ToLocalChecked()->Get(scope.context, Name("exports")).ToLocal(&exports) ||
        !exports->IsObject() ||
        !exports.As<v8::Object>()->Get(scope.context, Name("memory")).ToLocal(&memory) ||
        !memory->IsWasmMemoryObject()) {
      return absl::InternalError("the instance's exports lack the validated memory");
    }
    exports_.Reset(isolate_, exports.As<v8::Object>());
    abi_.AttachMemory(isolate_, memory.As<v8::WasmMemoryObject>());
    if (module_.has_initialize()) {
      HostCallState state;
      state.kind = CallKind::kInitialize;
      state.input = EncodeInput(0, {});
      return Call(scope, "_initialize", state);
    }
    return CallOutput{};
  }

  // Calls the export `name` with `state`; for views and init calls, reads the answer from the
  // returned pointer.
  absl::StatusOr<CallOutput> Run(absl::string_view name, HostCallState& state) {
    Scope scope(*this);
    return Call(scope, name, state);
  }

  MemoryReadout ReadMemory() {
    v8::HandleScope handles(isolate_);
    MemoryReadout readout;
    readout.linear_memory_bytes = abi_.MemoryBytes(isolate_).size();
    v8::HeapStatistics heap;
    isolate_->GetHeapStatistics(&heap);
    readout.heap_used_bytes = heap.used_heap_size();
    readout.heap_total_bytes = heap.total_heap_size();
    readout.heap_limit_bytes = heap.heap_size_limit();
    readout.external_memory_bytes = heap.external_memory();
    readout.malloced_memory_bytes = heap.malloced_memory();
    return readout;
  }

  void PumpTasks() { PumpForegroundTasks(isolate_); }

 private:
  // Stack-only proof that the isolate's context is entered with a handle scope open. Everything
  // that creates V8 handles takes one as its first parameter.
  class Scope {
   public:
    explicit Scope(Runtime& runtime)
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

  v8::Local<v8::String> Name(absl::string_view text) {
    return v8::String::NewFromUtf8(isolate_, text.data(), v8::NewStringType::kNormal,
                                   static_cast<int>(text.size()))
        .ToLocalChecked();
  }

  static absl::Status Terminated() { return absl::CancelledError(kTerminatedMarker); }

  static absl::Status HostMemoryFailure(const HostMemoryWatch& watch) {
    return absl::UnavailableError(
        absl::StrCat("the host could not provide memory below the cap (", watch.failure(),
                     "); nothing of this call counts, retry on a healthy host"));
  }

  absl::StatusOr<CallOutput> Call(Scope& scope, absl::string_view name, HostCallState& state) {
    state.limits.max_block_write_bytes = options_.max_block_write_bytes;
    state.limits.max_log_lines = options_.max_log_lines_per_call;
    state.limits.max_log_line_bytes = options_.max_log_line_bytes;
    state.log_sink = options_.log_sink;
    state.instance_label = options_.label;

    v8::Local<v8::Value> function;
    if (!exports_.Get(isolate_)->Get(scope.context, Name(name)).ToLocal(&function) ||
        !function->IsFunction()) {
      return absl::NotFoundError(absl::StrCat("module has no function export \"", name, "\""));
    }
    v8::TryCatch try_catch(isolate_);
    HostMemoryWatch watch;
    abi_.set_call(&state);
    v8::MaybeLocal<v8::Value> result =
        function.As<v8::Function>()->Call(scope.context, v8::Undefined(isolate_), 0, nullptr);
    abi_.set_call(nullptr);

    // Host outcomes first: whatever the guest made of them, they must not decide the result.
    if (watch.failed()) return HostMemoryFailure(watch);
    if (heap_limit_reached_) {
      return absl::UnavailableError(
          "the instance's V8 heap reached its limit; the call was terminated");
    }
    if (try_catch.HasTerminated() || isolate_->IsExecutionTerminating()) return Terminated();
    if (!state.failure.ok()) return state.failure;
    if (result.IsEmpty()) {
      std::string what = DescribeException(isolate_, try_catch);
      if (absl::StrContains(what, "Maximum call stack size exceeded")) {
        // Stack depth differs between V8 tiers and builds: a host outcome, not the block's.
        return absl::UnavailableError(absl::StrCat(
            "the guest overflowed the native stack (depends on the host, not the block): ", what));
      }
      return absl::AbortedError(absl::StrCat("guest trapped in ", name, ": ", what));
    }

    CallOutput output;
    switch (state.kind) {
      case CallKind::kBlock:
        if (!state.flushed) {
          return absl::AbortedError("block finished without calling __flush; nothing is committed");
        }
        output.writes = std::move(state.writes);
        break;
      case CallKind::kView:
      case CallKind::kInit: {
        v8::Local<v8::Value> value = result.ToLocalChecked();
        if (!value->IsInt32() && !value->IsUint32()) {
          return absl::AbortedError(absl::StrCat("export ", name, " returned no i32 pointer"));
        }
        uint32_t pointer = value->IsInt32() ? static_cast<uint32_t>(value.As<v8::Int32>()->Value())
                                            : value.As<v8::Uint32>()->Value();
        absl::StatusOr<absl::string_view> answer =
            ReadLengthPrefixed(abi_.MemoryBytes(isolate_), pointer);
        if (!answer.ok()) {
          return absl::AbortedError(absl::StrCat(
              "export ", name, " returned a bad pointer: ", answer.status().message()));
        }
        output.answer = std::string(*answer);
        break;
      }
      case CallKind::kInitialize:
        break;
    }
    return output;
  }

  // V8 calls this on the instance thread when the JavaScript heap nears its limit. The call is
  // terminated (a host outcome) and V8 gets room to unwind instead of aborting the process.
  static size_t NearHeapLimit(void* data, size_t current_limit, size_t /*initial_limit*/) {
    auto* runtime = static_cast<Runtime*>(data);
    runtime->heap_limit_reached_ = true;
    runtime->isolate_->TerminateExecution();
    return current_limit * 2;
  }

  void abi_memory_reset() { abi_.AttachMemory(isolate_, v8::Local<v8::WasmMemoryObject>()); }

  const Module& module_;
  const InstanceOptions& options_;
  std::unique_ptr<v8::ArrayBuffer::Allocator> allocator_;
  v8::Isolate* isolate_ = nullptr;
  v8::Global<v8::Context> context_;
  v8::Global<v8::Object> exports_;
  HostAbi abi_;
  bool heap_limit_reached_ = false;
};

absl::StatusOr<std::unique_ptr<Instance>> Instance::Create(const Module& module,
                                                           InstanceOptions options) {
  absl::Duration deadline = options.create_deadline;
  std::unique_ptr<Instance> instance(new Instance(module, std::move(options)));
  instance->thread_ = std::thread(&Instance::ThreadMain, instance.get());
  auto job = std::make_shared<Job>(absl::Now() + deadline,
                                   [](Runtime& runtime) { return runtime.Instantiate(); });
  TANDEM_RETURN_IF_ERROR(instance->Execute(job));
  return instance;
}

Instance::Instance(const Module& module, InstanceOptions options)
    : module_(module), options_(std::move(options)) {}

Instance::~Instance() {
  {
    util::MutexLock lock(&mu_);
    stopping_ = true;
    if (running_ != nullptr && isolate_ != nullptr) isolate_->TerminateExecution();
  }
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<BlockResult> Instance::RunBlock(uint32_t height, absl::string_view block,
                                               const StateReader& reader, absl::Duration deadline) {
  auto job = std::make_shared<Job>(
      absl::Now() + deadline,
      [input = EncodeInput(height, block), height, &reader](Runtime& runtime) mutable {
        HostCallState state;
        state.kind = CallKind::kBlock;
        state.input = std::move(input);
        // A block reads what was committed before it; the first height has nothing below it.
        state.reader = height > 0 ? &reader : nullptr;
        state.read_height = height > 0 ? height - 1 : 0;
        return runtime.Run("_start", state);
      });
  TANDEM_RETURN_IF_ERROR(Execute(job));
  util::MutexLock lock(&mu_);
  return BlockResult{std::move(job->result->writes), memory_};
}

absl::StatusOr<CallResult> Instance::RunView(absl::string_view name, uint32_t height,
                                             absl::string_view request, const StateReader& reader,
                                             absl::Duration deadline) {
  TANDEM_RETURN_IF_ERROR(module_.CheckCallableExport(name));
  auto job = std::make_shared<Job>(absl::Now() + deadline,
                                   [name = std::string(name), input = EncodeInput(height, request),
                                    height, &reader](Runtime& runtime) mutable {
                                     HostCallState state;
                                     state.kind = CallKind::kView;
                                     state.input = std::move(input);
                                     state.reader = &reader;
                                     state.read_height = height;
                                     return runtime.Run(name, state);
                                   });
  TANDEM_RETURN_IF_ERROR(Execute(job));
  util::MutexLock lock(&mu_);
  return CallResult{std::move(job->result->answer), memory_};
}

absl::StatusOr<CallResult> Instance::RunInit(absl::string_view name, absl::string_view payload,
                                             absl::Duration deadline) {
  TANDEM_RETURN_IF_ERROR(module_.CheckCallableExport(name));
  auto job = std::make_shared<Job>(
      absl::Now() + deadline,
      [name = std::string(name), input = EncodeInput(0, payload)](Runtime& runtime) mutable {
        HostCallState state;
        state.kind = CallKind::kInit;
        state.input = std::move(input);
        return runtime.Run(name, state);
      });
  TANDEM_RETURN_IF_ERROR(Execute(job));
  util::MutexLock lock(&mu_);
  return CallResult{std::move(job->result->answer), memory_};
}

absl::Status Instance::health() const {
  util::MutexLock lock(&mu_);
  return failure_;
}

MemoryReadout Instance::memory() const {
  util::MutexLock lock(&mu_);
  return memory_;
}

uint64_t Instance::calls_completed() const {
  util::MutexLock lock(&mu_);
  return calls_completed_;
}

void Instance::Fail(absl::Status cause) {
  if (failure_.ok()) failure_ = std::move(cause);
}

absl::Status Instance::Execute(const std::shared_ptr<Job>& job) {
  util::MutexLock lock(&mu_);
  if (!failure_.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(options_.label, " failed earlier and cannot serve: ", failure_.ToString()));
  }
  if (stopping_) return absl::UnavailableError(absl::StrCat(options_.label, " is shutting down"));
  queue_.push_back(job);

  auto done = [&job]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return job->state == Job::State::kDone; };
  mu_.AwaitWithDeadline(done, job->deadline);
  if (job->state == Job::State::kQueued) {
    std::erase(queue_, job);
    return absl::DeadlineExceededError(absl::StrCat("the call waited for ", options_.label,
                                                    " past its deadline and never started"));
  }
  if (job->state == Job::State::kRunning) {
    // The watchdog's work: stop the guest where it is. The instance is never used again.
    job->terminated_for_deadline = true;
    Fail(absl::DeadlineExceededError("a call ran past its deadline and was terminated"));
    if (isolate_ != nullptr) isolate_->TerminateExecution();
    mu_.AwaitWithTimeout(done, options_.termination_grace);
    if (job->state != Job::State::kDone) {
      return absl::DeadlineExceededError(absl::StrCat("the call ran past its deadline; ",
                                                      options_.label,
                                                      " was terminated and is still unwinding"));
    }
  }
  return job->result.status();
}

void Instance::ThreadMain() {
  runtime_ = std::make_unique<Runtime>(module_, options_);
  {
    util::MutexLock lock(&mu_);
    isolate_ = runtime_->isolate();
  }
  while (true) {
    std::shared_ptr<Job> job;
    {
      util::MutexLock lock(&mu_);
      mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return stopping_ || !queue_.empty(); });
      // Calls queued behind a failure or a shutdown never run: they are answered right away.
      while (!queue_.empty() && (stopping_ || !failure_.ok())) {
        std::shared_ptr<Job> dropped = std::move(queue_.front());
        queue_.pop_front();
        dropped->result =
            stopping_
                ? absl::UnavailableError(absl::StrCat(options_.label, " is shutting down"))
                : absl::FailedPreconditionError(absl::StrCat(
                      options_.label, " failed earlier and cannot serve: ", failure_.ToString()));
        dropped->state = Job::State::kDone;
      }
      if (stopping_) break;
      if (queue_.empty()) continue;
      job = std::move(queue_.front());
      queue_.pop_front();
      job->state = Job::State::kRunning;
      running_ = job;
    }

    absl::StatusOr<CallOutput> result = job->work(*runtime_);
    MemoryReadout readout = runtime_->ReadMemory();
    if (result.ok()) runtime_->PumpTasks();

    util::MutexLock lock(&mu_);
    if (!result.ok() && IsTerminatedMarker(result.status())) {
      if (job->terminated_for_deadline) {
        result = absl::DeadlineExceededError(
            absl::StrCat("the call ran past its deadline and was terminated; ", options_.label,
                         " is discarded"));
      } else {
        result = absl::UnavailableError(
            absl::StrCat("the call was terminated because ", options_.label, " is shutting down"));
      }
    }
    if (!result.ok()) Fail(result.status());
    job->result = std::move(result);
    job->state = Job::State::kDone;
    running_ = nullptr;
    memory_ = readout;
    ++calls_completed_;
  }
  {
    util::MutexLock lock(&mu_);
    isolate_ = nullptr;
  }
  runtime_.reset();
}

}  // namespace tandem::engine
