// The guest linear memory that instances have committed, accounted against the host memory budget.
// Pure bookkeeping over address ranges: it never maps memory itself and knows nothing of V8.
#include "engine/guest_memory_ledger.h"

#include <algorithm>
#include <iterator>

namespace tandem::engine {

GuestMemoryLedger::GuestMemoryLedger(uint64_t budget_bytes, absl::Duration reclaim_wait)
    : reclaim_wait_(reclaim_wait) {
  usage_.budget_bytes = budget_bytes;
}

void GuestMemoryLedger::SetBudget(uint64_t budget_bytes) {
  util::MutexLock lock(&mu_);
  usage_.budget_bytes = budget_bytes;
}

void GuestMemoryLedger::SetReclaimer(GuestMemoryReclaimer* reclaimer) {
  util::MutexLock lock(&reclaim_mu_);
  reclaimer_ = reclaimer;
}

void GuestMemoryLedger::RemoveReclaimer(GuestMemoryReclaimer* reclaimer) {
  util::MutexLock lock(&reclaim_mu_);
  if (reclaimer_ == reclaimer) reclaimer_ = nullptr;
}

void GuestMemoryLedger::AddReservation(uintptr_t start, size_t length) {
  util::MutexLock lock(&mu_);
  Reservation& reservation = reservations_[start];
  reservation.end = start + length;
  reservation.committed.clear();
  usage_.reservations = reservations_.size();
}

void GuestMemoryLedger::FreeRange(uintptr_t start, size_t length) {
  util::MutexLock lock(&mu_);
  const uintptr_t end = start + length;
  // Every reservation that overlaps the range gives back what it committed there.
  auto it = reservations_.upper_bound(start);
  if (it != reservations_.begin()) --it;
  while (it != reservations_.end() && it->first < end) {
    Reservation& reservation = it->second;
    if (reservation.end > start) UnchargeLocked(Remove(reservation.committed, start, end));
    if (it->first >= start && reservation.end <= end) {
      it = reservations_.erase(it);
    } else {
      ++it;
    }
  }
  usage_.reservations = reservations_.size();
}

void GuestMemoryLedger::TrimReservation(uintptr_t start, size_t length, size_t new_length) {
  if (new_length >= length) return;
  util::MutexLock lock(&mu_);
  auto it = reservations_.find(start);
  if (it == reservations_.end()) return;
  UnchargeLocked(Remove(it->second.committed, start + new_length, start + length));
  it->second.end = std::min(it->second.end, start + new_length);
}

GuestMemoryLedger::Commit GuestMemoryLedger::TryCommit(
    uintptr_t start, size_t length, bool may_refuse,
    std::vector<std::pair<uintptr_t, uintptr_t>>* added_ranges) {
  const uintptr_t end = start + length;
  uint64_t wanted = 0;
  {
    util::MutexLock lock(&mu_);
    Reservation* reservation = FindLocked(start, length);
    if (reservation == nullptr) return Commit::kNotGuest;
    const uint64_t added = Uncovered(reservation->committed, start, end);
    if (!may_refuse || usage_.budget_bytes == kUnlimited ||
        usage_.committed_bytes + added <= usage_.budget_bytes) {
      Insert(reservation->committed, start, end, added_ranges);
      ChargeLocked(added);
      return Commit::kCharged;
    }
    wanted = usage_.committed_bytes + added - usage_.budget_bytes;
  }

  // Caches go first: ask for them to be dropped, then wait (bounded) for their workers to give
  // their memory back. The wait ends early when memory fits, or when nothing was dropped.
  uint64_t expected = 0;
  {
    util::MutexLock lock(&reclaim_mu_);
    if (reclaimer_ != nullptr) expected = reclaimer_->ReclaimGuestMemory(wanted);
  }
  util::MutexLock lock(&mu_);
  if (expected > 0) ++usage_.reclaims;
  Reservation* reservation = nullptr;
  uint64_t added = 0;
  auto fits = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    // Looked up again on every check: other reservations come and go while the lock is free.
    reservation = FindLocked(start, length);
    if (reservation == nullptr) return true;
    added = Uncovered(reservation->committed, start, end);
    return usage_.committed_bytes + added <= usage_.budget_bytes;
  };
  if (expected > 0) {
    mu_.AwaitWithTimeout(fits, reclaim_wait_);
  }
  if (!fits()) {
    ++usage_.refusals;
    return Commit::kRefused;
  }
  if (reservation == nullptr) return Commit::kNotGuest;
  Insert(reservation->committed, start, end, added_ranges);
  ChargeLocked(added);
  return Commit::kCharged;
}

void GuestMemoryLedger::Uncommit(uintptr_t start, size_t length) {
  util::MutexLock lock(&mu_);
  Reservation* reservation = FindLocked(start, length);
  if (reservation == nullptr) return;
  UnchargeLocked(Remove(reservation->committed, start, start + length));
}

GuestMemoryLedger::Usage GuestMemoryLedger::usage() const {
  util::MutexLock lock(&mu_);
  return usage_;
}

GuestMemoryLedger::Reservation* GuestMemoryLedger::FindLocked(uintptr_t start, size_t length) {
  auto it = reservations_.upper_bound(start);
  if (it == reservations_.begin()) return nullptr;
  --it;
  if (start + length > it->second.end) return nullptr;
  return &it->second;
}

uint64_t GuestMemoryLedger::Uncovered(const Intervals& committed, uintptr_t start, uintptr_t end) {
  uint64_t covered = 0;
  auto it = committed.upper_bound(start);
  if (it != committed.begin()) --it;
  for (; it != committed.end() && it->first < end; ++it) {
    const uintptr_t from = std::max(it->first, start);
    const uintptr_t to = std::min(it->second, end);
    if (to > from) covered += to - from;
  }
  return (end - start) - covered;
}

void GuestMemoryLedger::Insert(Intervals& committed, uintptr_t start, uintptr_t end,
                               std::vector<std::pair<uintptr_t, uintptr_t>>* added) {
  if (end <= start) return;
  // Merge with every interval that overlaps or touches [start, end); the gaps between them are
  // what this commit adds.
  auto it = committed.upper_bound(start);
  if (it != committed.begin() && std::prev(it)->second >= start) --it;
  uintptr_t merged_start = start;
  uintptr_t merged_end = end;
  uintptr_t gap_from = start;
  while (it != committed.end() && it->first <= end) {
    if (added != nullptr && it->first > gap_from) added->emplace_back(gap_from, it->first);
    gap_from = std::max(gap_from, it->second);
    merged_start = std::min(merged_start, it->first);
    merged_end = std::max(merged_end, it->second);
    it = committed.erase(it);
  }
  if (added != nullptr && end > gap_from) added->emplace_back(gap_from, end);
  committed.emplace(merged_start, merged_end);
}

uint64_t GuestMemoryLedger::Remove(Intervals& committed, uintptr_t start, uintptr_t end) {
  if (end <= start) return 0;
  uint64_t removed = 0;
  auto it = committed.upper_bound(start);
  if (it != committed.begin()) --it;
  while (it != committed.end() && it->first < end) {
    const uintptr_t from = it->first;
    const uintptr_t to = it->second;
    if (to <= start) {
      ++it;
      continue;
    }
    it = committed.erase(it);
    removed += std::min(to, end) - std::max(from, start);
    if (from < start) committed.emplace(from, start);
    if (to > end) it = committed.emplace(end, to).first;
  }
  return removed;
}

void GuestMemoryLedger::ChargeLocked(uint64_t bytes) {
  usage_.committed_bytes += bytes;
  usage_.peak_committed_bytes = std::max(usage_.peak_committed_bytes, usage_.committed_bytes);
}

void GuestMemoryLedger::UnchargeLocked(uint64_t bytes) { usage_.committed_bytes -= bytes; }

}  // namespace tandem::engine
