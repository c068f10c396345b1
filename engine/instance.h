// One instantiated guest in its own isolate, driven by its own thread, with deadlines enforced.
// It never touches storage: reads go through a StateReader, a block's writes come back as a value.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "engine/call_types.h"
#include "engine/module.h"
#include "engine/state_reader.h"
#include "util/mutex.h"

namespace v8 {
class Isolate;
}  // namespace v8

namespace tandem::engine {

struct InstanceOptions {
  // Names the instance in logs and errors ("generation 7").
  std::string label = "instance";
  // Deadline for creating the isolate, instantiating and running `_initialize`.
  absl::Duration create_deadline = absl::Seconds(60);
  // Receives the guest's `__log` lines; may be null (lines are dropped). Not owned; must outlive
  // the instance.
  GuestLogSink* log_sink = nullptr;
  // A block whose writes (keys plus values) exceed this fails with ABORTED: it depends on the
  // block alone, so every node fails it alike.
  uint64_t max_block_write_bytes = 1ull << 30;
  // `__log` limits per call: lines past the count are dropped, each line is cut at the size.
  int max_log_lines_per_call = 100;
  size_t max_log_line_bytes = 4096;
  // The isolate's JavaScript heap limit (guests live in linear memory, not on this heap).
  size_t heap_limit_bytes = 256ull << 20;
  // How long a terminated call may take to unwind before the caller stops waiting for it.
  absl::Duration termination_grace = absl::Seconds(5);
};

struct Job;
class Runtime;

// An instance of a Module: one isolate, one context, one WebAssembly instance, one thread.
//
// Threading: every public method is thread-safe. Calls are queued and run one at a time, in
// order, on the instance's own thread, the only thread that ever enters its isolate (the caller
// only ever calls TerminateExecution on it, which V8 allows from any thread).
//
// Deadlines: a call waits at most until its deadline, queueing included. A call that has not
// started by then is dropped and returns DEADLINE_EXCEEDED with the instance unharmed; a call that
// is running is terminated, and the instance fails.
//
// Failure is sticky: after a guest failure (trap, abort, malformed or missing flush, deadline,
// host memory failure, heap limit, stack overflow), every later call returns FAILED_PRECONDITION
// with the original cause, and health() returns it. A failed instance must be replaced.
//
// Error codes of the Run* methods, as the design's failure classes:
//   ABORTED            deterministic guest failure: every node fails this call the same way.
//   DEADLINE_EXCEEDED  the deadline passed (a host outcome: retry elsewhere).
//   UNAVAILABLE        the host failed (memory below the cap, heap limit, native stack, store).
//   NOT_FOUND / INVALID_ARGUMENT  no such export / wrong signature (checked before running;
//                      the instance stays healthy).
//   FAILED_PRECONDITION the instance failed earlier.
class Instance {
 public:
  // Starts the thread, creates the isolate, instantiates `module` from its compiled code, and
  // calls `_initialize` when the module exports it, all within options.create_deadline.
  // Returns UNAVAILABLE / DEADLINE_EXCEEDED / ABORTED (a trap in `_initialize`) on failure.
  // REQUIRES: `module` outlives the instance.
  static absl::StatusOr<std::unique_ptr<Instance>> Create(const Module& module,
                                                          InstanceOptions options);

  // Terminates a running call, drops queued ones (they return UNAVAILABLE), joins the thread and
  // frees the isolate. May block for as long as a terminated call takes to unwind.
  ~Instance();
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  // Runs `_start` with input `height ‖ block`. Reads see `reader` at height - 1 (nothing at
  // height 0) plus this block's own earlier flushes. Returns the final writes on success; ABORTED
  // when the block calls no __flush.
  // REQUIRES: `reader` outlives the instance.
  absl::StatusOr<BlockResult> RunBlock(uint32_t height, absl::string_view block,
                                       const StateReader& reader, absl::Duration deadline);

  // Calls the `() -> i32` export `name` with input `height ‖ request`; reads see `reader` at
  // `height`; __flush is ignored. Returns the bytes the returned pointer designates.
  // REQUIRES: `reader` outlives the instance.
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
  const std::string& label() const { return options_.label; }
  const Module& module() const { return module_; }

 private:
  Instance(const Module& module, InstanceOptions options);

  // Queues `job` and waits for it until its deadline, terminating it if it is running then.
  absl::Status Execute(const std::shared_ptr<Job>& job) ABSL_LOCKS_EXCLUDED(mu_);
  void ThreadMain() ABSL_LOCKS_EXCLUDED(mu_);
  void Fail(absl::Status cause) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const Module& module_;
  const InstanceOptions options_;

  mutable util::Mutex mu_;
  // The queue of calls not started yet, oldest first.
  std::deque<std::shared_ptr<Job>> queue_ ABSL_GUARDED_BY(mu_);
  // The call running on the thread, or null.
  std::shared_ptr<Job> running_ ABSL_GUARDED_BY(mu_);
  // Set by the thread once the isolate exists, cleared before it is disposed. Read by callers
  // only to call TerminateExecution.
  v8::Isolate* isolate_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  MemoryReadout memory_ ABSL_GUARDED_BY(mu_);
  uint64_t calls_completed_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  // Owned by the thread: created, used and destroyed there only.
  std::unique_ptr<Runtime> runtime_;
  std::thread thread_;
};

}  // namespace tandem::engine
