// A long-lived thread that owns one V8 isolate and runs jobs on it, one at a time, with deadlines.
// It never decides what to run: instances queue their calls here, the pool decides its fate.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/call_types.h"
#include "util/mutex.h"

namespace v8 {
class Isolate;
}  // namespace v8

namespace tandem::engine {

class GuestRuntime;

struct WorkerOptions {
  RuntimeLimits limits;
  // How long a terminated job may take to unwind before its caller stops waiting for it.
  absl::Duration termination_grace = absl::Seconds(5);
};

// How a job ended, as its caller sees it.
struct JobResult {
  absl::StatusOr<JobOutput> output;
  // False when the job never ran (the deadline passed while it queued, or the worker was stopping
  // or already poisoned): nothing of it happened.
  bool started = false;
};

// A thread that owns one isolate (a GuestRuntime) for as long as it stays healthy, and runs the
// jobs queued to it in order. A worker hosts one guest instance at a time; the pool hands it from
// one instance to the next, so a fresh instance never pays for a thread or an isolate.
//
// A worker is poisoned, and must be disposed rather than reused, when a job was terminated (its
// deadline, or shutdown), the isolate reached its heap limit, or a guest overflowed the native
// stack: V8 unwound those calls from an arbitrary point.
//
// Threading: every public method is thread-safe. Only the worker's thread enters the isolate;
// other threads only ever call TerminateExecution on it.
class Worker {
 public:
  using Work = absl::AnyInvocable<absl::StatusOr<JobOutput>(GuestRuntime&)>;

  // Starts the thread and creates the isolate on it, waiting at most until `deadline`.
  // DEADLINE_EXCEEDED when the isolate is not ready by then.
  static absl::StatusOr<std::unique_ptr<Worker>> Start(const WorkerOptions& options, uint64_t id,
                                                       absl::Time deadline);

  // Terminates a running job, answers queued ones (UNAVAILABLE, kShutdown), joins the thread and
  // disposes the isolate. May block for as long as a terminated job takes to unwind.
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Queues `work` and waits for it, at most until `deadline` (queueing included):
  //   - not started by then: DEADLINE_EXCEEDED (kDeadline), started = false, worker unharmed;
  //   - running then: terminated, the worker is poisoned, DEADLINE_EXCEEDED (kDeadline);
  //   - the worker is poisoned or stopping: UNAVAILABLE (kInstanceLost / kShutdown), not started.
  // Otherwise `work`'s own result.
  JobResult Run(absl::Time deadline, Work work) ABSL_LOCKS_EXCLUDED(mu_);

  // Queues `work` to run after everything queued so far, without waiting for it; dropped when the
  // worker stops first.
  void Post(Work work) ABSL_LOCKS_EXCLUDED(mu_);

  // True once the worker must not host another instance.
  bool poisoned() const ABSL_LOCKS_EXCLUDED(mu_);
  // Jobs queued and not started yet.
  int QueuedJobsForTesting() const ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t id() const { return id_; }

 private:
  struct Job;

  Worker(const WorkerOptions& options, uint64_t id);
  void ThreadMain() ABSL_LOCKS_EXCLUDED(mu_);
  void Poison() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const WorkerOptions options_;
  const uint64_t id_;

  mutable util::Mutex mu_;
  std::deque<std::shared_ptr<Job>> queue_ ABSL_GUARDED_BY(mu_);
  // The job running on the thread, or null.
  std::shared_ptr<Job> running_ ABSL_GUARDED_BY(mu_);
  // Set by the thread once the isolate exists, cleared before it is disposed. Other threads use it
  // only to call TerminateExecution.
  v8::Isolate* isolate_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  bool poisoned_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::thread thread_;
};

}  // namespace tandem::engine
