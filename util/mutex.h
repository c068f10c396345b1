// The mutex every tandem layer uses: std::mutex underneath, abseil's thread-safety annotations
// and Await-style conditions on top. It must stay a thin wrapper with no policy of its own.
//
// Why not absl::Mutex: Debian's abseil is a prebuilt library that ThreadSanitizer cannot see
// into, so every absl::Mutex-guarded access looks like a race to TSan, and the sanitizer builds
// would be useless. std::mutex goes through pthread, which TSan intercepts.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tandem::util {

// A mutex whose waiters wait for a condition over the state it guards, as with absl::Mutex: every
// Unlock wakes the waiters, which re-check their conditions, so code that changes guarded state
// never has to remember to signal.
//
// Threading: Lock/Unlock from any thread; the usual rules of a non-recursive mutex.
class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    mu_.unlock();
    changed_.notify_all();
  }

  // Releases the mutex until `condition()` holds, then returns with it held again. `condition`
  // is evaluated with the mutex held.
  // REQUIRES: the mutex is held.
  template <typename Condition>
  void Await(Condition condition) ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    // Waiting releases the mutex just as Unlock does, and the caller may have changed guarded
    // state since it locked: the other waiters must re-check too.
    changed_.notify_all();
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    changed_.wait(lock, condition);
    lock.release();
  }

  // As Await, but gives up at `deadline`. Returns whether `condition()` holds.
  template <typename Condition>
  bool AwaitWithDeadline(Condition condition, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    if (deadline == absl::InfiniteFuture()) {
      Await(condition);
      return true;
    }
    changed_.notify_all();  // As in Await.
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    bool held = changed_.wait_until(lock, absl::ToChronoTime(deadline), condition);
    lock.release();
    return held;
  }

  template <typename Condition>
  bool AwaitWithTimeout(Condition condition, absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    return AwaitWithDeadline(condition, absl::Now() + timeout);
  }

 private:
  std::mutex mu_;
  // Notified on every Unlock. condition_variable_any is not needed: waits adopt mu_ itself.
  std::condition_variable changed_;
};

// Holds a Mutex for its scope.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

}  // namespace tandem::util
