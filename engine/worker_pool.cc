// The workers of a process: idle ones waiting for their next instance, new ones started on demand,
// poisoned ones disposed off the caller's path. It decides nothing about instances.
#include "engine/worker_pool.h"

#include <utility>

namespace tandem::engine {

WorkerPool::WorkerPool(WorkerPoolOptions options) : options_(std::move(options)) {}

WorkerPool::~WorkerPool() {
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

void WorkerPool::Return(std::unique_ptr<Worker> worker) {
  if (worker == nullptr) return;
  const bool poisoned = worker->poisoned();
  util::MutexLock lock(&mu_);
  --stats_.out;
  if (poisoned || stats_.idle >= options_.max_idle_workers) {
    ++(poisoned ? stats_.disposed_poisoned : stats_.disposed_surplus);
    disposer_.Dispose(std::move(worker));
    return;
  }
  idle_.push_back(std::move(worker));
  ++stats_.idle;
}

WorkerPoolStats WorkerPool::Stats() const {
  util::MutexLock lock(&mu_);
  return stats_;
}

void WorkerPool::DrainDisposalsForTesting() { disposer_.Drain(); }

}  // namespace tandem::engine
