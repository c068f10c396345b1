// The workers of a process: idle ones waiting for their next instance, new ones started on demand,
// poisoned ones disposed off the caller's path. It decides nothing about instances.
#include "engine/worker_pool.h"

#include <utility>

#include "engine/guest_runtime.h"

namespace tandem::engine {

WorkerPool::WorkerPool(WorkerPoolOptions options) : options_(std::move(options)) {}

WorkerPool::~WorkerPool() {
  AwaitRetirementsForTesting();
  std::deque<std::unique_ptr<Worker>> idle;
  {
    util::MutexLock lock(&mu_);
    idle.swap(idle_);
  }
  idle.clear();  // Joins each worker's thread; they are idle, so this is quick.
}

absl::StatusOr<std::unique_ptr<Worker>> WorkerPool::Acquire(absl::Time deadline) {
  uint64_t id;
  {
    util::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      std::unique_ptr<Worker> worker = std::move(idle_.front());
      idle_.pop_front();
      ++stats_.reused;
      --stats_.idle;
      ++stats_.out;
      return worker;
    }
    id = next_id_++;
  }
  // A new isolate, outside the lock: other acquisitions and returns go on meanwhile.
  absl::StatusOr<std::unique_ptr<Worker>> worker = Worker::Start(options_.worker, id, deadline);
  util::MutexLock lock(&mu_);
  if (worker.ok()) {
    ++stats_.started;
    ++stats_.out;
  }
  return worker;
}

void WorkerPool::Return(std::unique_ptr<Worker> worker, Worker::Work retire) {
  if (worker == nullptr) return;
  Worker* const raw = worker.get();
  // No call runs on a worker whose instance is gone, so nothing can poison it after this check:
  // a call terminated at its deadline poisoned it before its caller let go of the instance.
  const bool poisoned = raw->poisoned();
  {
    util::MutexLock lock(&mu_);
    --stats_.out;
    if (poisoned) {
      IdleOrDisposeLocked(std::move(worker));
      return;
    }
    retiring_.emplace(raw, std::move(worker));
    ++stats_.retiring;
  }
  raw->Post([this, raw, retire = std::move(retire)](
                GuestRuntime& runtime) mutable -> absl::StatusOr<JobOutput> {
    absl::StatusOr<JobOutput> retired = retire(runtime);
    Retired(raw);
    return retired;
  });
}

void WorkerPool::Retired(Worker* worker) {
  util::MutexLock lock(&mu_);
  auto found = retiring_.find(worker);
  if (found == retiring_.end()) return;
  std::unique_ptr<Worker> owned = std::move(found->second);
  retiring_.erase(found);
  --stats_.retiring;
  // Disposal joins this very thread: it happens on the disposer, after this job returns.
  IdleOrDisposeLocked(std::move(owned));
}

void WorkerPool::IdleOrDisposeLocked(std::unique_ptr<Worker> worker) {
  const bool poisoned = worker->poisoned();
  if (poisoned || stats_.idle >= options_.max_idle_workers) {
    ++(poisoned ? stats_.disposed_poisoned : stats_.disposed_surplus);
    disposer_.Dispose(std::move(worker));
    return;
  }
  idle_.push_back(std::move(worker));
  ++stats_.idle;
}

void WorkerPool::AwaitRetirementsForTesting() {
  util::MutexLock lock(&mu_);
  mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return retiring_.empty(); });
}

WorkerPoolStats WorkerPool::Stats() const {
  util::MutexLock lock(&mu_);
  return stats_;
}

void WorkerPool::DrainDisposalsForTesting() { disposer_.Drain(); }

}  // namespace tandem::engine
