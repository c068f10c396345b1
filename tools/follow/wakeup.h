// What interrupts tandem-follow's waits: a new block announced by the node (ZMQ), or a request to
// stop (SIGINT / SIGTERM). Header-only; no I/O.
#pragma once

#include <cstdint>

#include "absl/time/time.h"
#include "util/mutex.h"

namespace tandem::follow {

// Threading: thread-safe; any thread may notify or stop, the follower's threads wait.
class Wakeup {
 public:
  // A new block may be on the node: a waiting WaitForBlock returns.
  void Notify() ABSL_LOCKS_EXCLUDED(mu_) {
    util::MutexLock lock(&mu_);
    ++notifications_;
  }

  // Every wait returns now and later ones at once. Irreversible.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_) {
    util::MutexLock lock(&mu_);
    stopped_ = true;
  }

  bool stopped() const ABSL_LOCKS_EXCLUDED(mu_) {
    util::MutexLock lock(&mu_);
    return stopped_;
  }

  // Waits for `timeout`, a notification not seen by an earlier WaitForBlock, or Stop. Returns
  // false when stopped.
  bool WaitForBlock(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_) {
    util::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout([&] { return stopped_ || notifications_ != seen_; }, timeout);
    seen_ = notifications_;
    return !stopped_;
  }

  // Sleeps for `duration` unless stopped first. Returns false when stopped.
  bool Sleep(absl::Duration duration) ABSL_LOCKS_EXCLUDED(mu_) {
    util::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout([&] { return stopped_; }, duration);
    return !stopped_;
  }

 private:
  mutable util::Mutex mu_;
  uint64_t notifications_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t seen_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tandem::follow
