// The guest linear memory that instances have committed, accounted against the host memory budget.
// Pure bookkeeping over address ranges: it never maps memory itself and knows nothing of V8.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "util/mutex.h"

namespace tandem::engine {

// Frees guest memory that only serves as a cache (kept instances, surplus standbys) when a commit
// would pass the budget. Implemented above the engine (the instance pair).
//
// Threading: called on the thread whose commit does not fit, from inside V8 (a `memory.grow` or
// an instantiation), with no ledger lock held. It must not run guest code or wait for other
// instances' calls; it may drop instances, whose workers release their memory asynchronously.
class GuestMemoryReclaimer {
 public:
  virtual ~GuestMemoryReclaimer() = default;
  // Drops cached instances to free at least `wanted` bytes if it can. Returns the guest memory
  // the dropped instances held (released soon after, when their workers retire them); 0 when
  // nothing was dropped.
  virtual uint64_t ReclaimGuestMemory(uint64_t wanted) = 0;
};

// Counts, per guest reservation, exactly the ranges that are committed: a range committed twice is
// counted once (V8 re-commits the whole prefix of a memory on every grow), and an uncommit gives
// back exactly the committed part of its range.
//
// Threading: every method is thread-safe. mu_ guards the ranges and counters; the reclaimer is
// called with mu_ released, under reclaim_mu_ (so SetReclaimer(nullptr) returns only once no
// call into the old reclaimer is running).
class GuestMemoryLedger {
 public:
  static constexpr uint64_t kUnlimited = std::numeric_limits<uint64_t>::max();

  struct Usage {
    uint64_t budget_bytes = kUnlimited;
    uint64_t committed_bytes = 0;
    uint64_t peak_committed_bytes = 0;
    uint64_t reservations = 0;
    // Commits refused because they would have passed the budget.
    uint64_t refusals = 0;
    // Times the reclaimer was asked to free cached instances.
    uint64_t reclaims = 0;
  };

  enum class Commit {
    kNotGuest,  // The range is not inside a guest reservation: not accounted.
    kCharged,   // Accounted (and within the budget, or refusal was not allowed).
    kRefused,   // It would pass the budget even after reclaiming caches: nothing was charged.
  };

  // `reclaim_wait` bounds how long a commit that does not fit waits for the memory that the
  // reclaimer's dropped instances release.
  explicit GuestMemoryLedger(uint64_t budget_bytes = kUnlimited,
                             absl::Duration reclaim_wait = absl::Seconds(2));
  GuestMemoryLedger(const GuestMemoryLedger&) = delete;
  GuestMemoryLedger& operator=(const GuestMemoryLedger&) = delete;

  // The budget applies to commits from now on; what is committed stays.
  void SetBudget(uint64_t budget_bytes) ABSL_LOCKS_EXCLUDED(mu_);
  // `reclaimer` (may be null) is asked first when a commit does not fit. Not owned; it must stay
  // valid until replaced. Returns once no call into the previous reclaimer is running.
  void SetReclaimer(GuestMemoryReclaimer* reclaimer) ABSL_LOCKS_EXCLUDED(mu_, reclaim_mu_);
  // As SetReclaimer(nullptr), when `reclaimer` is the one set; otherwise nothing changes.
  void RemoveReclaimer(GuestMemoryReclaimer* reclaimer) ABSL_LOCKS_EXCLUDED(mu_, reclaim_mu_);

  // [start, start + length) is a guest memory reservation (nothing committed yet).
  void AddReservation(uintptr_t start, size_t length) ABSL_LOCKS_EXCLUDED(mu_);
  // The pages at [start, start + length) were freed: their committed parts are given back, and a
  // reservation that starts at `start` and lies within the range is forgotten.
  void FreeRange(uintptr_t start, size_t length) ABSL_LOCKS_EXCLUDED(mu_);
  // The reservation at `start` shrank from `length` to `new_length` bytes.
  void TrimReservation(uintptr_t start, size_t length, size_t new_length) ABSL_LOCKS_EXCLUDED(mu_);

  // Accounts a commit of [start, start + length). Parts already committed cost nothing. When the
  // new part would pass the budget and `may_refuse`, the reclaimer is asked to free caches and
  // the commit waits (at most reclaim_wait) for their memory; kRefused if it still does not fit.
  // Without `may_refuse` the commit is charged even past the budget. `added` (may be null)
  // receives the ranges newly charged, for Uncommit when the commit itself then fails.
  Commit TryCommit(uintptr_t start, size_t length, bool may_refuse,
                   std::vector<std::pair<uintptr_t, uintptr_t>>* added = nullptr)
      ABSL_LOCKS_EXCLUDED(mu_, reclaim_mu_);
  // The committed part of [start, start + length) went back to the system.
  void Uncommit(uintptr_t start, size_t length) ABSL_LOCKS_EXCLUDED(mu_);

  Usage usage() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Disjoint committed intervals, start -> end.
  using Intervals = std::map<uintptr_t, uintptr_t>;
  struct Reservation {
    uintptr_t end = 0;
    Intervals committed;
  };

  // The reservation that holds all of [start, start + length), or null.
  Reservation* FindLocked(uintptr_t start, size_t length) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Bytes of [start, end) not yet in `committed`.
  static uint64_t Uncovered(const Intervals& committed, uintptr_t start, uintptr_t end);
  // Adds [start, end) to `committed`; appends the parts that were not there to `added`.
  static void Insert(Intervals& committed, uintptr_t start, uintptr_t end,
                     std::vector<std::pair<uintptr_t, uintptr_t>>* added);
  // Removes [start, end) from `committed`; returns the bytes removed.
  static uint64_t Remove(Intervals& committed, uintptr_t start, uintptr_t end);
  void ChargeLocked(uint64_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UnchargeLocked(uint64_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const absl::Duration reclaim_wait_;

  // Serialises calls into the reclaimer and replacing it. Never held while waiting on mu_'s
  // conditions by another thread that holds mu_ (mu_ is only taken inside it).
  util::Mutex reclaim_mu_;
  GuestMemoryReclaimer* reclaimer_ ABSL_GUARDED_BY(reclaim_mu_) = nullptr;

  mutable util::Mutex mu_;
  std::map<uintptr_t, Reservation> reservations_ ABSL_GUARDED_BY(mu_);
  Usage usage_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem::engine
