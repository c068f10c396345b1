// Destroys objects on a thread of its own, so no caller waits for a slow teardown (a worker's
// thread and isolate). It only drops the last reference; it never decides what to destroy.
#pragma once

#include <deque>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "util/mutex.h"

namespace tandem::util {

// A queue of objects to destroy and the thread that destroys them, oldest first.
//
// Threading: Dispose may be called from any thread. The destructor drains the queue and joins.
template <typename T>
class Reaper {
 public:
  Reaper() : thread_([this] { Main(); }) {}
  ~Reaper() {
    {
      util::MutexLock lock(&mu_);
      stopping_ = true;
    }
    thread_.join();
  }
  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;

  void Dispose(std::unique_ptr<T> object) ABSL_LOCKS_EXCLUDED(mu_) {
    util::MutexLock lock(&mu_);
    queue_.push_back(std::move(object));
  }

  // Blocks until everything disposed so far is destroyed. For tests and orderly shutdown.
  void Drain() ABSL_LOCKS_EXCLUDED(mu_) {
    util::MutexLock lock(&mu_);
    mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return queue_.empty() && !busy_; });
  }

 private:
  void Main() ABSL_LOCKS_EXCLUDED(mu_) {
    util::MutexLock lock(&mu_);
    while (true) {
      mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // Stopping, and nothing left.
      std::unique_ptr<T> object = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
      mu_.Unlock();
      object.reset();
      mu_.Lock();
      busy_ = false;
    }
  }

  util::Mutex mu_;
  std::deque<std::unique_ptr<T>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace tandem::util
