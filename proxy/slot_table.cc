// The pair's slots under one lock: the active, the READY standbys, the instances kept for past
// heights, and the counters that name instances (generation) and their replay log (epoch).
// It keeps the slots' invariants; it never runs a guest call and never makes an instance.
#include "proxy/slot_table.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "util/failure_cause.h"

namespace tandem::proxy {
namespace {

PairEvent MakeEvent(PairEvent::Kind kind, uint64_t generation = 0) {
  PairEvent event;
  event.kind = kind;
  event.time = absl::Now();
  event.generation = generation;
  return event;
}

}  // namespace

SlotTable::SlotTable(const SwapRules& rules, SlotTableOptions options, std::optional<uint32_t> tip)
    : rules_(rules),
      options_(std::move(options)),
      kept_(options_.historical_instances),
      tip_(tip),
      jitter_(static_cast<std::minstd_rand::result_type>(options_.random_seed)) {}

void SlotTable::Stop() {
  util::MutexLock lock(&mu_);
  stopping_ = true;
}

void SlotTable::Clear() {
  util::MutexLock lock(&mu_);
  active_ = nullptr;
  ready_.clear();
  kept_.Clear();
}

double SlotTable::MemoryRatio(const ManagedInstance& instance) const {
  return static_cast<double>(instance.instance().memory().linear_memory_bytes) /
         static_cast<double>(options_.memory_limit_bytes);
}

// ---------------------------------------------------------------------------------------------
// Instances for calls

Lease SlotTable::ForHeight(uint32_t height, Events& events) {
  util::MutexLock lock(&mu_);
  ServeFromPoolLocked(events);
  if (active_ != nullptr && active_->bound_height == height) return active_;
  return kept_.Find(height);
}

absl::StatusOr<Lease> SlotTable::Active(absl::Time deadline, Events& events) {
  util::MutexLock lock(&mu_);
  const absl::Time start = absl::Now();
  ServeFromPoolLocked(events);
  if (active_ == nullptr) {
    // The empty slot itself asks the warmer for an instance (WantedLocked): waiting adds none.
    mu_.AwaitWithDeadline(
        [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return stopping_ || active_ != nullptr || !ready_.empty();
        },
        deadline);
    ServeFromPoolLocked(events);
  }
  if (active_ == nullptr) return NoInstanceLocked(absl::Now() - start);
  return active_;
}

absl::StatusOr<Lease> SlotTable::TakeStandby(Claim claim, absl::Time deadline, Events& events) {
  util::MutexLock lock(&mu_);
  const absl::Time start = absl::Now();
  if (claim == Claim::kView && waiting_views_ >= options_.max_waiting_views) {
    return absl::ResourceExhaustedError(
        absl::StrCat(waiting_views_,
                     " views at heights with no kept instance are waiting for a "
                     "fresh instance already; retry later"));
  }
  int& waiting = claim == Claim::kBlock ? waiting_blocks_ : waiting_others_;
  ++waiting;
  if (claim == Claim::kView) ++waiting_views_;
  auto mine = [this, claim]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return stopping_ || (!ready_.empty() && (claim == Claim::kBlock || waiting_blocks_ == 0));
  };
  mu_.AwaitWithDeadline(mine, deadline);
  --waiting;
  if (claim == Claim::kView) --waiting_views_;
  if (stopping_ || !mine()) return NoInstanceLocked(absl::Now() - start);
  Lease taken = PopReadyLocked();
  ServeFromPoolLocked(events);
  return taken;
}

// ---------------------------------------------------------------------------------------------
// What calls did

Published SlotTable::Publish(Lease next, SwapReason reason, absl::Time pause_start,
                             Events& events) {
  util::MutexLock lock(&mu_);
  return PublishLocked(std::move(next), reason, pause_start, events);
}

void SlotTable::KeepForHeight(uint32_t height, Lease lease) {
  util::MutexLock lock(&mu_);
  if (lease->epoch != epoch_ || !lease->instance().health().ok()) return;
  lease->bound_height = height;
  kept_.Keep(height, std::move(lease));
}

void SlotTable::AfterCall(const Lease& lease, Events& events) {
  util::MutexLock lock(&mu_);
  if (lease != active_) return;
  active_memory_ratio_ = MemoryRatio(*lease);
  if (!rules_.SwapDue(active_memory_ratio_)) return;
  if (!ready_.empty()) {
    PublishLocked(PopReadyLocked(), SwapReason::kThreshold, absl::Now(), events);
    return;
  }
  if (!swap_due_) {
    swap_due_ = true;
    PairEvent event = MakeEvent(PairEvent::Kind::kSwapDelayed, lease->generation());
    event.cause =
        absl::StrCat("memory at ", static_cast<int>(active_memory_ratio_ * 100),
                     "% of the cap; the standby is ", StandbyStateName(StandbyStateLocked()));
    events.push_back(event);
  }
}

void SlotTable::RetireFailed(const Lease& lease, const absl::Status& cause, CallKind call,
                             Events& events) {
  util::MutexLock lock(&mu_);
  if (!lease->failure_reported) {
    lease->failure_reported = true;
    PairEvent event = MakeEvent(PairEvent::Kind::kInstanceFailed, lease->generation());
    event.call = call;
    DescribeFailure(cause, event);
    events.push_back(event);
  }
  kept_.Drop(lease);
  if (lease == active_) VacateActiveLocked(SwapReason::kFailure, events);
}

void SlotTable::Withdraw(const Lease& lease, Events& events) {
  util::MutexLock lock(&mu_);
  kept_.Drop(lease);
  if (lease == active_) VacateActiveLocked(SwapReason::kFailure, events);
}

// ---------------------------------------------------------------------------------------------
// Chain and replay log

void SlotTable::BlockCommitted(const Lease& ran_on, uint32_t height) {
  util::MutexLock lock(&mu_);
  tip_ = height;
  if (ran_on != nullptr) ran_on->bound_height = height;
}

void SlotTable::VacateActive(const Lease& expected, SwapReason reason, Events& events) {
  util::MutexLock lock(&mu_);
  if (active_ == expected) VacateActiveLocked(reason, events);
}

void SlotTable::RolledBack(std::optional<uint32_t> tip, Events& events) {
  util::MutexLock lock(&mu_);
  tip_ = tip;
  kept_.DropAbove(tip);
  if (active_ != nullptr && active_->bound_height.has_value() &&
      (!tip.has_value() || *active_->bound_height > *tip)) {
    VacateActiveLocked(SwapReason::kRollback, events);
  }
}

void SlotTable::ReplayLogChanged(absl::string_view cause, Events& events) {
  util::MutexLock lock(&mu_);
  ++epoch_;
  for (const Lease& stale : ready_) {
    PairEvent event = MakeEvent(PairEvent::Kind::kStandbyDiscarded, stale->generation());
    event.cause = std::string(cause);
    events.push_back(event);
  }
  ready_.clear();
  kept_.Clear();
  if (active_ != nullptr) active_->epoch = epoch_;  // It ran the init call itself.
}

void SlotTable::ReplayLogReset(absl::string_view cause, Events& events) {
  util::MutexLock lock(&mu_);
  ++epoch_;
  for (const Lease& stale : ready_) {
    PairEvent event = MakeEvent(PairEvent::Kind::kStandbyDiscarded, stale->generation());
    event.cause = std::string(cause);
    events.push_back(event);
  }
  ready_.clear();
  kept_.Clear();
  consecutive_warm_failures_ = 0;
  last_warm_failure_.clear();
  next_warm_attempt_ = absl::InfinitePast();
  if (active_ != nullptr) VacateActiveLocked(SwapReason::kReplayLogReset, events);
}

uint64_t SlotTable::ShrinkCaches(Events& events) {
  // Destroyed after mu_ is released: each hands its worker back to the pool.
  std::vector<Lease> dropped;
  {
    util::MutexLock lock(&mu_);
    dropped = kept_.TakeAll();
    while (ready_.size() > 1) {
      PairEvent event = MakeEvent(PairEvent::Kind::kStandbyDiscarded, ready_.back()->generation());
      event.cause = "the host memory budget ran short: surplus standbys are a cache";
      events.push_back(event);
      dropped.push_back(std::move(ready_.back()));
      ready_.pop_back();
    }
  }
  uint64_t bytes = 0;
  for (const Lease& lease : dropped) bytes += lease->instance().memory().linear_memory_bytes;
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// The warmer's side

std::optional<WarmTicket> SlotTable::AwaitWarmNeeded(Events& events) {
  util::MutexLock lock(&mu_);
  auto needed = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return stopping_ || (static_cast<int>(ready_.size()) + warming_ < WantedLocked() &&
                         absl::Now() >= next_warm_attempt_);
  };
  while (!needed()) {
    // Conditions are re-evaluated whenever mu_ is released; the backoff's end is a wake-up too.
    const absl::Time wake =
        next_warm_attempt_ > absl::Now() ? next_warm_attempt_ : absl::InfiniteFuture();
    mu_.AwaitWithDeadline(needed, wake);
  }
  if (stopping_) return std::nullopt;
  ++warming_;
  WarmTicket ticket{next_generation_++, epoch_};
  events.push_back(MakeEvent(PairEvent::Kind::kWarmStarted, ticket.generation));
  return ticket;
}

void SlotTable::DeliverWarmed(const WarmTicket& ticket, absl::StatusOr<Lease> warmed,
                              absl::Duration took, Events& events) {
  util::MutexLock lock(&mu_);
  --warming_;
  if (!warmed.ok()) {
    if (const util::FailureCause cause = util::CauseOf(warmed.status());
        cause == util::FailureCause::kHostMemory ||
        cause == util::FailureCause::kHostMemoryBudget) {
      // The host ran short: instances kept for past heights are only a cache, and their memory
      // may be what a new instance needs.
      kept_.Clear();
    }
    last_warm_failure_ = warmed.status().ToString(absl::StatusToStringMode::kWithNoExtraData);
    ++consecutive_warm_failures_;
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    const absl::Duration retry_in =
        WarmRetryDelay(options_.backoff, consecutive_warm_failures_, unit(jitter_));
    next_warm_attempt_ = absl::Now() + retry_in;
    PairEvent event = MakeEvent(PairEvent::Kind::kWarmFailed, ticket.generation);
    event.call = CallKind::kWarm;
    DescribeFailure(warmed.status(), event);
    event.retry_in = retry_in;
    event.duration = took;
    events.push_back(event);
    return;
  }
  if (stopping_ || ticket.epoch != epoch_) {
    // It replayed an older log: its success says nothing about the current one, so a failure
    // recorded since (a warm-up that did replay the current log) stands.
    PairEvent event = MakeEvent(PairEvent::Kind::kStandbyDiscarded, ticket.generation);
    event.cause = "the replay log changed while it warmed";
    events.push_back(event);
    return;
  }
  consecutive_warm_failures_ = 0;
  last_warm_failure_.clear();
  (*warmed)->epoch = ticket.epoch;
  // Warm-ups run in parallel and may finish out of order: the pool serves the oldest generation
  // first. (A younger one that finished while the active slot was empty has been served already;
  // generations name instances in the order they were made, not the order they serve.)
  const uint64_t generation = (*warmed)->generation();
  ready_.insert(std::upper_bound(
                    ready_.begin(), ready_.end(), generation,
                    [](uint64_t made, const Lease& ready) { return made < ready->generation(); }),
                *std::move(warmed));
  PairEvent event = MakeEvent(PairEvent::Kind::kWarmReady, ticket.generation);
  event.duration = took;
  events.push_back(event);
  ServeFromPoolLocked(events);
}

std::optional<uint32_t> SlotTable::tip() const {
  util::MutexLock lock(&mu_);
  return tip_;
}

uint64_t SlotTable::NextGeneration() {
  util::MutexLock lock(&mu_);
  return next_generation_++;
}

SlotsSnapshot SlotTable::Snapshot() const {
  util::MutexLock lock(&mu_);
  SlotsSnapshot snapshot;
  snapshot.active = active_;
  snapshot.first_ready = ready_.empty() ? nullptr : ready_.front();
  snapshot.ready = static_cast<int>(ready_.size());
  snapshot.warming = warming_;
  snapshot.wanted = WantedLocked();
  snapshot.standby_state = StandbyStateLocked();
  snapshot.last_warm_failure = last_warm_failure_;
  snapshot.consecutive_warm_failures = consecutive_warm_failures_;
  snapshot.swap_due = swap_due_;
  snapshot.tip = tip_;
  snapshot.historical_instances = kept_.size();
  return snapshot;
}

// ---------------------------------------------------------------------------------------------
// Helpers

int SlotTable::WantedLocked() const {
  return rules_.StandbysWanted(active_memory_ratio_) + (active_ == nullptr ? 1 : 0) +
         waiting_blocks_ + waiting_others_;
}

void SlotTable::ServeFromPoolLocked(Events& events) {
  if (ready_.empty()) return;
  if (active_ == nullptr) {
    PublishLocked(PopReadyLocked(), vacancy_reason_, absl::Now(), events);
  } else if (swap_due_) {
    PublishLocked(PopReadyLocked(), SwapReason::kThreshold, absl::Now(), events);
  }
}

Published SlotTable::PublishLocked(Lease next, SwapReason reason, absl::Time pause_start,
                                   Events& events) {
  Lease previous = std::move(active_);
  active_ = std::move(next);
  if (!active_->bound_height.has_value()) active_->bound_height = tip_;
  // Every way in is current: standbys are dropped when the log changes, and the `sync` baseline
  // makes its instance under the same ingest lock that init calls take.
  active_->epoch = epoch_;
  active_memory_ratio_ = MemoryRatio(*active_);
  swap_due_ = false;
  const Published published{previous != nullptr ? previous->generation() : 0,
                            absl::Now() - pause_start};

  PairEvent event = MakeEvent(PairEvent::Kind::kSwap, active_->generation());
  event.previous_generation = published.previous_generation;
  event.reason = reason;
  event.pause = published.pause;
  if (tip_.has_value()) event.height = *tip_;
  events.push_back(event);

  // Under `block`, the previous active has seen exactly one height below the new tip: keep it
  // for views there instead of warming another instance for them.
  if (previous != nullptr && reason == SwapReason::kBlock && previous->bound_height.has_value() &&
      previous->epoch == epoch_ && previous->instance().health().ok()) {
    const uint32_t height = *previous->bound_height;
    kept_.Keep(height, std::move(previous));
  }
  return published;
}

void SlotTable::VacateActiveLocked(SwapReason reason, Events& events) {
  active_ = nullptr;
  active_memory_ratio_ = 0;
  vacancy_reason_ = reason;
  ServeFromPoolLocked(events);
}

Lease SlotTable::PopReadyLocked() {
  Lease taken = std::move(ready_.front());
  ready_.pop_front();
  return taken;
}

absl::Status SlotTable::NoInstanceLocked(absl::Duration waited) const {
  if (stopping_) {
    return util::CausedError(absl::StatusCode::kUnavailable, util::FailureCause::kShutdown,
                             "the instance pair is shutting down");
  }
  std::string state(StandbyStateName(StandbyStateLocked()));
  if (!last_warm_failure_.empty()) absl::StrAppend(&state, " (", last_warm_failure_, ")");
  return util::CausedError(absl::StatusCode::kUnavailable, util::FailureCause::kNoReadyInstance,
                           absl::StrCat("no ready instance within ", absl::FormatDuration(waited),
                                        "; the standby is ", state));
}

StandbyState SlotTable::StandbyStateLocked() const {
  if (!ready_.empty()) return StandbyState::kReady;
  if (consecutive_warm_failures_ > 0) return StandbyState::kFailed;
  if (warming_ > 0) return StandbyState::kWarming;
  return StandbyState::kEmpty;
}

}  // namespace tandem::proxy
