// A long-lived thread that owns one V8 isolate and runs jobs on it, one at a time, with deadlines.
// It never decides what to run: instances queue their calls here, the pool decides its fate.
#include "engine/worker.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/guest_runtime.h"
#include "util/failure_cause.h"

namespace tandem::engine {

using util::CausedError;
using util::FailureCause;

// One queued job. `work` runs on the worker's thread; the rest is shared with the waiting caller
// and guarded by the owning Worker's mu_ (not expressible as an annotation across classes).
struct Worker::Job {
  enum class State { kQueued, kRunning, kDone };

  Job(absl::Time deadline_in, Work work_in) : deadline(deadline_in), work(std::move(work_in)) {}

  const absl::Time deadline;
  Work work;

  State state = State::kQueued;
  bool terminated_for_deadline = false;
  absl::StatusOr<JobOutput> output;
};

absl::StatusOr<std::unique_ptr<Worker>> Worker::Start(const WorkerOptions& options, uint64_t id,
                                                      absl::Time deadline) {
  std::unique_ptr<Worker> worker(new Worker(options, id));
  worker->thread_ = std::thread(&Worker::ThreadMain, worker.get());
  util::MutexLock lock(&worker->mu_);
  if (!worker->mu_.AwaitWithDeadline(
          [&worker]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return worker->ready_; }, deadline)) {
    return CausedError(
        absl::StatusCode::kDeadlineExceeded, FailureCause::kDeadline,
        absl::StrCat("worker ", id, " could not create its isolate before the deadline"));
  }
  return worker;
}

Worker::Worker(const WorkerOptions& options, uint64_t id) : options_(options), id_(id) {}

Worker::~Worker() {
  {
    util::MutexLock lock(&mu_);
    stopping_ = true;
    if (running_ != nullptr && isolate_ != nullptr) isolate_->TerminateExecution();
  }
  if (thread_.joinable()) thread_.join();
}

bool Worker::poisoned() const {
  util::MutexLock lock(&mu_);
  return poisoned_;
}

int Worker::QueuedJobsForTesting() const {
  util::MutexLock lock(&mu_);
  return static_cast<int>(queue_.size());
}

void Worker::Poison() { poisoned_ = true; }

JobResult Worker::Run(absl::Time deadline, Work work) {
  auto job = std::make_shared<Job>(deadline, std::move(work));
  util::MutexLock lock(&mu_);
  if (stopping_) {
    return {CausedError(absl::StatusCode::kUnavailable, FailureCause::kShutdown,
                        absl::StrCat("worker ", id_, " is shutting down")),
            false};
  }
  if (poisoned_) {
    return {CausedError(absl::StatusCode::kUnavailable, FailureCause::kInstanceLost,
                        absl::StrCat("worker ", id_, " is being disposed; the call did not run")),
            false};
  }
  queue_.push_back(job);

  auto done = [&job]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return job->state == Job::State::kDone; };
  mu_.AwaitWithDeadline(done, job->deadline);
  if (job->state == Job::State::kQueued) {
    std::erase(queue_, job);
    return {CausedError(absl::StatusCode::kDeadlineExceeded, FailureCause::kDeadline,
                        "the call waited past its deadline and never started"),
            false};
  }
  if (job->state == Job::State::kRunning) {
    // The watchdog's work: stop the guest where it is. The worker is never used again.
    job->terminated_for_deadline = true;
    Poison();
    if (isolate_ != nullptr) isolate_->TerminateExecution();
    mu_.AwaitWithTimeout(done, options_.termination_grace);
    if (job->state != Job::State::kDone) {
      return {CausedError(absl::StatusCode::kDeadlineExceeded, FailureCause::kDeadline,
                          "the call ran past its deadline; it was terminated and is still "
                          "unwinding"),
              true};
    }
  }
  return {std::move(job->output), true};
}

void Worker::Post(Work work) {
  util::MutexLock lock(&mu_);
  if (stopping_) return;
  queue_.push_back(std::make_shared<Job>(absl::InfiniteFuture(), std::move(work)));
}

void Worker::ThreadMain() {
  GuestRuntime runtime(options_.limits);
  {
    util::MutexLock lock(&mu_);
    isolate_ = runtime.isolate();
    ready_ = true;
  }
  while (true) {
    std::shared_ptr<Job> job;
    {
      util::MutexLock lock(&mu_);
      mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return stopping_ || !queue_.empty(); });
      // Jobs queued behind a poisoning or a shutdown never run: they are answered right away.
      while (!queue_.empty() && (stopping_ || poisoned_)) {
        std::shared_ptr<Job> dropped = std::move(queue_.front());
        queue_.pop_front();
        dropped->output =
            stopping_ ? CausedError(absl::StatusCode::kUnavailable, FailureCause::kShutdown,
                                    absl::StrCat("worker ", id_, " is shutting down"))
                      : CausedError(absl::StatusCode::kUnavailable, FailureCause::kInstanceLost,
                                    absl::StrCat("worker ", id_,
                                                 " is being disposed; the call did not run"));
        dropped->state = Job::State::kDone;
      }
      if (stopping_) break;
      if (queue_.empty()) continue;
      job = std::move(queue_.front());
      queue_.pop_front();
      job->state = Job::State::kRunning;
      running_ = job;
    }

    absl::StatusOr<JobOutput> output = job->work(runtime);
    if (output.ok()) runtime.PumpTasks();

    util::MutexLock lock(&mu_);
    if (!output.ok() && GuestRuntime::IsTerminatedMarker(output.status())) {
      output = job->terminated_for_deadline
                   ? CausedError(absl::StatusCode::kDeadlineExceeded, FailureCause::kDeadline,
                                 "the call ran past its deadline and was terminated; its "
                                 "instance is discarded")
                   : CausedError(absl::StatusCode::kUnavailable, FailureCause::kShutdown,
                                 "the call was terminated because its instance is shutting down");
      Poison();
    }
    if (!output.ok()) {
      const FailureCause cause = util::CauseOf(output.status());
      if (cause == FailureCause::kStackOverflow || cause == FailureCause::kHeapLimit) Poison();
    }
    if (runtime.heap_limit_reached()) Poison();
    job->output = std::move(output);
    job->state = Job::State::kDone;
    running_ = nullptr;
  }
  {
    util::MutexLock lock(&mu_);
    isolate_ = nullptr;
  }
}

}  // namespace tandem::engine
