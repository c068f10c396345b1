// One instantiated guest (a generation), hosted by a worker from the pool, with deadlines enforced.
// It never touches storage: reads go through a StateReader, a block's writes come back as a value.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "engine/call_types.h"
#include "engine/module.h"
#include "engine/state_reader.h"
#include "engine/worker_pool.h"
#include "util/mutex.h"

namespace tandem::engine {

struct InstanceOptions {
  // Names the instance in logs and errors ("generation 7").
  std::string label = "instance";
  // Deadline for getting a worker (an Isolate::New when none is idle), instantiating and running
  // `_initialize`.
  absl::Duration create_deadline = absl::Seconds(60);
  // Receives the guest's `__log` lines; may be null (lines are dropped). Not owned; must outlive
  // the instance's worker pool.
  GuestLogSink* log_sink = nullptr;
  // A block whose writes (keys plus values) exceed this fails with ABORTED: it depends on the
  // block alone, so every node fails it alike.
  uint64_t max_block_write_bytes = 1ull << 30;
  // `__log` limits per call: lines past the count are dropped, each line is cut at the size.
  int max_log_lines_per_call = 100;
  size_t max_log_line_bytes = 4096;
};

// An init call to replay: the export and its payload.
struct InitCall {
  std::string export_name;
  std::string payload;
};

// An instance of a Module, hosted by one worker (thread and isolate) for its whole life.
//
// Threading: every public method is thread-safe. Calls queue on the worker and run one at a time,
// in order, on its thread. Destroying the instance never blocks: the worker retires it (its
// linear memory goes back to the operating system at once) and returns to the pool.
//
// Failure is sticky: after any failed call that ran (trap, abort, bad flush, deadline, host
// memory, heap limit, stack overflow), health() returns its cause and every later or queued call
// returns UNAVAILABLE with cause kInstanceLost without running: it may run on another instance.
// Causes (util::FailureCause) travel with every error status.
//
// Error codes of the Run* methods, by the failure kinds of docs/design.md:
//   ABORTED            deterministic guest failure: every node fails this call the same way.
//   DEADLINE_EXCEEDED  the deadline passed (a host outcome: retry elsewhere).
//   UNAVAILABLE        the host failed (memory below the cap, heap limit, native stack, store), or
//                      kInstanceLost: the instance failed before this call started.
//   NOT_FOUND / INVALID_ARGUMENT  no such export / wrong signature (checked before running;
//                      the instance stays healthy).
class Instance {
 public:
  // Takes a worker from `workers`, instantiates `module` there from its compiled code, and calls
  // `_initialize` when the module exports it, all within options.create_deadline.
  // Returns UNAVAILABLE / DEADLINE_EXCEEDED / ABORTED (a trap in `_initialize` or the start
  // function) on failure. REQUIRES: `workers` and `module` outlive the instance.
  static absl::StatusOr<std::unique_ptr<Instance>> Create(WorkerPool& workers, const Module& module,
                                                          InstanceOptions options);

  // Create in two steps, for a caller that hands the instance on before it is ready:
  //   - Acquire takes a worker from `workers` (an Isolate::New when none is idle, within
  //     options.create_deadline); nothing runs, and no call may be made but Instantiate;
  //   - Instantiate instantiates on that worker, calls `_initialize`, runs `replay` as init calls,
  //     and then `ready(answers)`, all in one job, within the create deadline counted from
  //     Acquire. `ready` runs on the worker's thread before the caller is woken: what it hands the
  //     instance to may use it at once (a call queued meanwhile runs next on the same worker,
  //     with no wait for the caller; memory() already holds the instantiation's readout).
  //     An error `ready` returns fails the instance like a failed call. `ready` must not own the
  //     instance (it may be destroyed on the worker's thread, where the instance's last
  //     reference must not go). Returns the replayed answers, or the first failure: a failed
  //     replayed call stops the replay and is named with its index; INVALID_ARGUMENT / NOT_FOUND
  //     when an export is not callable (nothing runs).
  // REQUIRES: Instantiate is called once, before any other call.
  static absl::StatusOr<std::unique_ptr<Instance>> Acquire(WorkerPool& workers,
                                                           const Module& module,
                                                           InstanceOptions options);
  using ReadyCallback = absl::AnyInvocable<absl::Status(const std::vector<std::string>& answers)>;
  absl::StatusOr<std::vector<std::string>> Instantiate(absl::Span<const InitCall> replay,
                                                       ReadyCallback ready);

  ~Instance();
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  // Runs `_start` with input `height ‖ block`. Reads see `reader` at height - 1 (nothing at
  // height 0) plus this block's own earlier flushes. Returns the final writes on success; ABORTED
  // when the block calls no __flush.
  // REQUIRES: `reader` outlives the instance's worker pool.
  absl::StatusOr<BlockResult> RunBlock(uint32_t height, absl::string_view block,
                                       const StateReader& reader, absl::Duration deadline);

  // Calls the `() -> i32` export `name` with input `height ‖ request`; reads see `reader` at
  // `height`; __flush is ignored. Returns the bytes the returned pointer designates.
  // REQUIRES: `reader` outlives the instance's worker pool.
  absl::StatusOr<CallResult> RunView(absl::string_view name, uint32_t height,
                                     absl::string_view request, const StateReader& reader,
                                     absl::Duration deadline);

  // Calls the `() -> i32` export `name` as an init call: input `0 ‖ payload`, an empty store,
  // and __flush refused (ABORTED). Returns the answer, whose digest the replay log records.
  absl::StatusOr<CallResult> RunInit(absl::string_view name, absl::string_view payload,
                                     absl::Duration deadline);

  // OK while the instance can serve; otherwise the cause of its failure.
  absl::Status health() const ABSL_LOCKS_EXCLUDED(mu_);
  // The readout taken after the latest call (or after instantiation).
  MemoryReadout memory() const ABSL_LOCKS_EXCLUDED(mu_);
  // Calls that ran to completion, successful or not.
  uint64_t calls_completed() const ABSL_LOCKS_EXCLUDED(mu_);
  const std::string& label() const { return options_->label; }
  const Module& module() const { return module_; }
  // The worker hosting this instance (stable for the instance's life).
  uint64_t worker_id() const { return worker_id_; }
  // Calls queued on the instance's worker and not started yet.
  int QueuedCallsForTesting() const { return worker_->QueuedJobsForTesting(); }

 private:
  Instance(WorkerPool& workers, std::unique_ptr<Worker> worker, const Module& module,
           std::shared_ptr<const InstanceOptions> options);

  // Runs `work` on the worker unless the instance has failed; records the outcome.
  absl::StatusOr<JobOutput> Execute(absl::Time deadline, Worker::Work work)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status LostError() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Records the outcome of a job on the worker: a call that ran counts, its readout becomes the
  // instance's, its failure the instance's failure. `instantiation`: the job of Instantiate.
  absl::StatusOr<JobOutput> Settle(JobResult result, bool instantiation) ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after construction. The options are shared with the worker's thread, which may still
  // be unwinding a terminated call after the instance is gone.
  WorkerPool& workers_;
  const Module& module_;
  const std::shared_ptr<const InstanceOptions> options_;
  const uint64_t worker_id_;
  // When Acquire was called plus the create deadline: Instantiate's deadline.
  absl::Time create_deadline_ = absl::InfiniteFuture();
  // Set at construction; only the destructor hands it back to the pool.
  std::unique_ptr<Worker> worker_;

  mutable util::Mutex mu_;
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  MemoryReadout memory_ ABSL_GUARDED_BY(mu_);
  uint64_t calls_completed_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tandem::engine
