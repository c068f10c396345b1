// The workers of a process: idle ones waiting for their next instance, new ones started on demand,
// poisoned ones disposed off the caller's path. It decides nothing about instances.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/worker.h"
#include "util/mutex.h"
#include "util/reaper.h"

namespace tandem::engine {

struct WorkerPoolOptions {
  WorkerOptions worker;
  // Idle workers kept for the next instances; one returned past this is disposed. Each holds a
  // thread and an isolate (a few MiB).
  int max_idle_workers = 8;
};

struct WorkerPoolStats {
  uint64_t started = 0;            // Workers created (each an Isolate::New).
  uint64_t reused = 0;             // Acquisitions served by an idle worker.
  uint64_t disposed_poisoned = 0;  // Disposed because a job was terminated, or heap/stack limits.
  uint64_t disposed_surplus = 0;   // Disposed because max_idle_workers were idle already.
  int idle = 0;
  int retiring = 0;  // Returned, retirement still running.
  int out = 0;       // Acquired and not returned yet.
};

// Hands out workers, and takes them back when their instance is gone.
//
// Threading: every method is thread-safe. Disposal (joining a thread, disposing an isolate) runs
// on the pool's own reaper thread, so Return never blocks on it.
class WorkerPool {
 public:
  explicit WorkerPool(WorkerPoolOptions options);
  // Disposes the idle workers. REQUIRES: every acquired worker has been returned.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // An idle worker (the longest idle, whose retire work is most likely done), or a new one.
  // DEADLINE_EXCEEDED when a new worker's isolate is not ready by `deadline`.
  absl::StatusOr<std::unique_ptr<Worker>> Acquire(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);

  // Takes `worker` back once its instance is gone. `retire` runs on it first, off the caller's
  // thread, and only then is the worker idle for the next Acquire: a new instance never waits
  // behind an old one's retirement. A poisoned worker, or one past max_idle_workers, is disposed.
  void Return(std::unique_ptr<Worker> worker, Worker::Work retire) ABSL_LOCKS_EXCLUDED(mu_);

  WorkerPoolStats Stats() const ABSL_LOCKS_EXCLUDED(mu_);

  // Blocks until every returned worker has finished its retirement. For tests and benchmarks.
  void AwaitRetirementsForTesting() ABSL_LOCKS_EXCLUDED(mu_);

  // Blocks until every worker handed to disposal so far is gone. For tests.
  void DrainDisposalsForTesting();

 private:
  // Called on `worker`'s own thread when its retirement is done.
  void Retired(Worker* worker) ABSL_LOCKS_EXCLUDED(mu_);
  void IdleOrDisposeLocked(std::unique_ptr<Worker> worker) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const WorkerPoolOptions options_;

  mutable util::Mutex mu_;
  std::deque<std::unique_ptr<Worker>> idle_ ABSL_GUARDED_BY(mu_);
  // Returned workers whose retirement has not finished yet.
  std::map<Worker*, std::unique_ptr<Worker>> retiring_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  WorkerPoolStats stats_ ABSL_GUARDED_BY(mu_);

  // Declared last: destroyed first, so disposals finish before the idle workers go.
  util::Reaper<Worker> disposer_;
};

}  // namespace tandem::engine
