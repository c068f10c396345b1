// The mutex every tandem layer uses: std::mutex underneath, abseil's thread-safety annotations
// and Await-style conditions on top. It must stay a thin wrapper with no policy of its own.
//
// Why not absl::Mutex: Debian's abseil is a prebuilt library that ThreadSanitizer cannot see
// into, so every absl::Mutex-guarded access looks like a race to TSan, and the sanitizer builds
// would be useless. std::mutex goes through pthread, which TSan intercepts.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/inlined_vector.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tandem::util {

// A mutex whose waiters wait for a condition over the state it guards, as with absl::Mutex: code
// that changes guarded state never has to remember to signal.
//
// As absl::Mutex does, the thread that releases the mutex evaluates the waiters' conditions (with
// the mutex still held) and wakes only those whose condition now holds. Waking every waiter on
// every release instead, to let each re-check its own condition, cost a context switch per waiter
// per release: with a warmer thread parked on the pair's mutex, a quarter of all context switches
// of an ingest were such wake-ups for nothing (perf, pair_bench BM_Ingest under `none`).
//
// A condition may therefore run on any thread that releases the mutex, always with the mutex
// held; it must only read state the mutex guards (or the waiter's own variables), and must not
// lock anything.
//
// Threading: Lock/Unlock from any thread; the usual rules of a non-recursive mutex.
class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    const WakeList ready = TakeReadyWaiters();
    mu_.unlock();
    Wake(ready);
  }

  // Releases the mutex until `condition()` holds, then returns with it held again. `condition`
  // is evaluated with the mutex held, by this thread or by one releasing the mutex.
  // REQUIRES: the mutex is held.
  template <typename Condition>
  void Await(Condition condition) ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    AwaitUntil(condition, /*deadline=*/nullptr);
  }

  // As Await, but gives up at `deadline`. Returns whether `condition()` holds.
  template <typename Condition>
  bool AwaitWithDeadline(Condition condition, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    if (deadline == absl::InfiniteFuture()) return AwaitUntil(condition, nullptr);
    const std::chrono::system_clock::time_point until = absl::ToChronoTime(deadline);
    return AwaitUntil(condition, &until);
  }

  template <typename Condition>
  bool AwaitWithTimeout(Condition condition, absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    return AwaitWithDeadline(condition, absl::Now() + timeout);
  }

 private:
  // One thread blocked in Await, on its own stack, linked into waiters_ while it sleeps.
  struct Waiter {
    Waiter(bool (*holds_fn)(void*), void* condition_arg)
        : holds(holds_fn), condition(condition_arg) {}
    bool (*const holds)(void* condition);
    void* const condition;
    // Set under mu_, and the waiter unlinked, by the releasing thread that found the condition
    // true.
    bool woken = false;
    // Releasing threads that chose this waiter and have not notified it yet. They notify after
    // releasing mu_ (a waiter notified with mu_ held would wake only to block on it), so the
    // waiter may not leave AwaitUntil, taking this struct with it, before the count is back to 0.
    std::atomic<int> notifications_pending{0};
    std::condition_variable wake;
    Waiter* prev = nullptr;
    Waiter* next = nullptr;
  };
  using WakeList = absl::InlinedVector<Waiter*, 4>;

  template <typename Condition>
  static bool Holds(void* condition) {
    return (*static_cast<Condition*>(condition))();
  }

  template <typename Condition>
  bool AwaitUntil(Condition& condition, const std::chrono::system_clock::time_point* deadline) {
    // Until this thread sleeps the mutex stays held, so no other waiter needs a look yet.
    if (condition()) return true;
    Waiter waiter(&Holds<Condition>, &condition);
    bool holds = false;
    while (true) {
      // Waiting releases the mutex just as Unlock does, and the caller may have changed guarded
      // state since it locked: the other waiters' conditions are checked first, and those that
      // hold are woken once the mutex is free.
      const WakeList ready = TakeReadyWaiters();
      Link(&waiter);
      if (!ready.empty()) {
        mu_.unlock();
        Wake(ready);
        mu_.lock();
      }
      std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
      bool woken;
      if (deadline == nullptr) {
        waiter.wake.wait(lock, [&waiter] { return waiter.woken; });
        woken = true;
      } else {
        woken = waiter.wake.wait_until(lock, *deadline, [&waiter] { return waiter.woken; });
      }
      lock.release();
      if (!woken) {
        Unlink(&waiter);
        holds = condition();
        break;
      }
      // Woken because the condition held when the mutex was released; another thread may have
      // taken the mutex and changed the state since.
      waiter.woken = false;
      if (condition()) {
        holds = true;
        break;
      }
    }
    while (waiter.notifications_pending.load(std::memory_order_acquire) != 0) {
      std::this_thread::yield();
    }
    return holds;
  }

  // Unlinks the waiters whose condition now holds and returns them, to be woken once mu_ is free.
  // REQUIRES: mu_ is held.
  WakeList TakeReadyWaiters() {
    WakeList ready;
    for (Waiter* waiter = waiters_; waiter != nullptr;) {
      Waiter* next = waiter->next;
      if (waiter->holds(waiter->condition)) {
        Unlink(waiter);
        waiter->woken = true;
        waiter->notifications_pending.fetch_add(1, std::memory_order_relaxed);
        ready.push_back(waiter);
      }
      waiter = next;
    }
    return ready;
  }

  // REQUIRES: mu_ is not held by this thread. After the last line, `ready`'s waiters may be gone.
  static void Wake(const WakeList& ready) {
    for (Waiter* waiter : ready) {
      waiter->wake.notify_one();
      waiter->notifications_pending.fetch_sub(1, std::memory_order_release);
    }
  }

  // REQUIRES: mu_ is held.
  void Link(Waiter* waiter) {
    waiter->prev = nullptr;
    waiter->next = waiters_;
    if (waiters_ != nullptr) waiters_->prev = waiter;
    waiters_ = waiter;
  }

  // REQUIRES: mu_ is held and `waiter` is linked.
  void Unlink(Waiter* waiter) {
    if (waiter->prev != nullptr) {
      waiter->prev->next = waiter->next;
    } else {
      waiters_ = waiter->next;
    }
    if (waiter->next != nullptr) waiter->next->prev = waiter->prev;
    waiter->prev = waiter->next = nullptr;
  }

  std::mutex mu_;
  // The threads sleeping in Await, newest first. Guarded by mu_ (a std::mutex, which abseil's
  // annotations cannot name).
  Waiter* waiters_ = nullptr;
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
