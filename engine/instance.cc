// One instantiated guest (a generation), hosted by a worker from the pool, with deadlines enforced.
// It never touches storage: reads go through a StateReader, a block's writes come back as a value.
#include "engine/instance.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/guest_runtime.h"
#include "engine/host_abi.h"
#include "util/failure_cause.h"
#include "util/status_macros.h"

namespace tandem::engine {
namespace {

using util::CausedError;
using util::FailureCause;

std::string EncodeInput(uint32_t height, absl::string_view payload) {
  std::string input(4 + payload.size(), '\0');
  for (int i = 0; i < 4; ++i) input[i] = static_cast<char>((height >> (8 * i)) & 0xff);
  if (!payload.empty()) std::memcpy(input.data() + 4, payload.data(), payload.size());
  return input;
}

// Wraps a job so that it does not run on a guest that failed while it queued.
Worker::Work UnlessGuestFailed(std::string label, Worker::Work work) {
  return [label = std::move(label),
          work = std::move(work)](GuestRuntime& runtime) mutable -> absl::StatusOr<JobOutput> {
    if (absl::Status failure = runtime.guest_failure(); !failure.ok()) {
      return CausedError(
          absl::StatusCode::kUnavailable, FailureCause::kInstanceLost,
          absl::StrCat(label, " failed (", util::FailureCauseName(util::CauseOf(failure)),
                       ") before this call started; the call did not run"));
    }
    absl::StatusOr<JobOutput> output = work(runtime);
    if (output.ok()) output->memory = runtime.ReadMemory();
    return output;
  };
}

// Runs `calls` as init calls on the guest `runtime` hosts, in order; their answers, or the first
// failure with the failed call's index in its message.
absl::StatusOr<std::vector<std::string>> ReplayOn(GuestRuntime& runtime,
                                                  const std::vector<InitCall>& calls) {
  std::vector<std::string> answers;
  answers.reserve(calls.size());
  for (size_t i = 0; i < calls.size(); ++i) {
    HostCallState state;
    state.kind = CallKind::kInit;
    state.input = EncodeInput(0, calls[i].payload);
    absl::StatusOr<JobOutput> answer = runtime.Call(calls[i].export_name, state);
    if (!answer.ok()) {
      if (GuestRuntime::IsTerminatedMarker(answer.status())) return answer.status();
      absl::Status failed(answer.status().code(),
                          absl::StrCat("init call ", i + 1, " of ", calls.size(), " (",
                                       calls[i].export_name, "): ", answer.status().message()));
      return util::WithCause(failed, util::CauseOf(answer.status()));
    }
    answers.push_back(std::move(answer->answer));
  }
  return answers;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Instance>> Instance::Create(WorkerPool& workers,
                                                           const Module& module,
                                                           InstanceOptions options) {
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Instance> instance,
                          Acquire(workers, module, std::move(options)));
  TANDEM_RETURN_IF_ERROR(instance->Instantiate({}, nullptr).status());
  return instance;
}

absl::StatusOr<std::unique_ptr<Instance>> Instance::Acquire(WorkerPool& workers,
                                                            const Module& module,
                                                            InstanceOptions options) {
  const absl::Time deadline = absl::Now() + options.create_deadline;
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<Worker> worker, workers.Acquire(deadline));
  auto shared_options = std::make_shared<const InstanceOptions>(std::move(options));
  std::unique_ptr<Instance> instance(
      new Instance(workers, std::move(worker), module, shared_options));
  instance->create_deadline_ = deadline;
  return instance;
}

absl::StatusOr<std::vector<std::string>> Instance::Instantiate(absl::Span<const InitCall> replay,
                                                               ReadyCallback ready) {
  for (const InitCall& call : replay) {
    TANDEM_RETURN_IF_ERROR(module_.CheckCallableExport(call.export_name));
  }
  JobResult result = worker_->Run(
      create_deadline_,
      [&module = module_, options = options_,
       calls = std::vector<InitCall>(replay.begin(), replay.end()), ready = std::move(ready),
       this](GuestRuntime& runtime) mutable -> absl::StatusOr<JobOutput> {
        TANDEM_RETURN_IF_ERROR(runtime.Instantiate(module, options));
        JobOutput output;
        TANDEM_ASSIGN_OR_RETURN(output.answers, ReplayOn(runtime, calls));
        output.memory = runtime.ReadMemory();
        // `ready` hands the instance on before Settle runs: whoever receives it (the slot table,
        // a metrics scrape of the active instance) must already see its memory, not zeros.
        {
          util::MutexLock lock(&mu_);
          memory_ = output.memory;
        }
        if (ready) TANDEM_RETURN_IF_ERROR(ready(output.answers));
        return output;
      });
  TANDEM_ASSIGN_OR_RETURN(JobOutput output, Settle(std::move(result), /*instantiation=*/true));
  return std::move(output.answers);
}

Instance::Instance(WorkerPool& workers, std::unique_ptr<Worker> worker, const Module& module,
                   std::shared_ptr<const InstanceOptions> options)
    : workers_(workers),
      module_(module),
      options_(std::move(options)),
      worker_id_(worker->id()),
      worker_(std::move(worker)) {}

Instance::~Instance() {
  // The worker retires the guest (its memory goes back at once) before it hosts another.
  workers_.Return(std::move(worker_), [](GuestRuntime& runtime) -> absl::StatusOr<JobOutput> {
    runtime.Retire();
    return JobOutput{};
  });
}

absl::Status Instance::LostError() const {
  return CausedError(
      absl::StatusCode::kUnavailable, FailureCause::kInstanceLost,
      absl::StrCat(options_->label, " failed earlier (",
                   util::FailureCauseName(util::CauseOf(failure_)), "); the call did not run"));
}

absl::StatusOr<JobOutput> Instance::Execute(absl::Time deadline, Worker::Work work) {
  {
    util::MutexLock lock(&mu_);
    if (!failure_.ok()) return LostError();
  }
  return Settle(worker_->Run(deadline, UnlessGuestFailed(options_->label, std::move(work))),
                /*instantiation=*/false);
}

absl::StatusOr<JobOutput> Instance::Settle(JobResult result, bool instantiation) {
  util::MutexLock lock(&mu_);
  const bool lost =
      !result.output.ok() && util::CauseOf(result.output.status()) == FailureCause::kInstanceLost;
  if (!result.started || lost) return std::move(result.output);
  ++calls_completed_;
  if (result.output.ok()) {
    // An instantiation's job published its readout itself, before `ready` handed the instance
    // on; calls may have run and settled since, and their readouts are newer.
    if (!instantiation) memory_ = result.output->memory;
  } else if (failure_.ok()) {
    failure_ = result.output.status();
  }
  return std::move(result.output);
}

absl::StatusOr<BlockResult> Instance::RunBlock(uint32_t height, absl::string_view block,
                                               const StateReader& reader, absl::Duration deadline) {
  TANDEM_ASSIGN_OR_RETURN(JobOutput output,
                          Execute(absl::Now() + deadline,
                                  [input = EncodeInput(height, block), height, &reader](
                                      GuestRuntime& runtime) mutable -> absl::StatusOr<JobOutput> {
                                    HostCallState state;
                                    state.kind = CallKind::kBlock;
                                    state.input = std::move(input);
                                    // A block reads what was committed before it; the first height
                                    // has nothing below.
                                    state.reader = height > 0 ? &reader : nullptr;
                                    state.read_height = height > 0 ? height - 1 : 0;
                                    return runtime.Call("_start", state);
                                  }));
  return BlockResult{std::move(output.writes), output.memory};
}

absl::StatusOr<CallResult> Instance::RunView(absl::string_view name, uint32_t height,
                                             absl::string_view request, const StateReader& reader,
                                             absl::Duration deadline) {
  TANDEM_RETURN_IF_ERROR(module_.CheckCallableExport(name));
  TANDEM_ASSIGN_OR_RETURN(
      JobOutput output,
      Execute(absl::Now() + deadline,
              [name = std::string(name), input = EncodeInput(height, request), height,
               &reader](GuestRuntime& runtime) mutable -> absl::StatusOr<JobOutput> {
                HostCallState state;
                state.kind = CallKind::kView;
                state.input = std::move(input);
                state.reader = &reader;
                state.read_height = height;
                return runtime.Call(name, state);
              }));
  return CallResult{std::move(output.answer), output.memory};
}

absl::StatusOr<CallResult> Instance::RunInit(absl::string_view name, absl::string_view payload,
                                             absl::Duration deadline) {
  TANDEM_RETURN_IF_ERROR(module_.CheckCallableExport(name));
  TANDEM_ASSIGN_OR_RETURN(JobOutput output,
                          Execute(absl::Now() + deadline,
                                  [name = std::string(name), input = EncodeInput(0, payload)](
                                      GuestRuntime& runtime) mutable -> absl::StatusOr<JobOutput> {
                                    HostCallState state;
                                    state.kind = CallKind::kInit;
                                    state.input = std::move(input);
                                    return runtime.Call(name, state);
                                  }));
  return CallResult{std::move(output.answer), output.memory};
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

}  // namespace tandem::engine
