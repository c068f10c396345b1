// The instance pair: an active instance that serves and a standby warmed in the background,
// swapped atomically by policy. It owns every instance; the store only stores.
#include "proxy/instance_pair.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "store/state_root.h"
#include "util/status_macros.h"

namespace tandem::proxy {

// An instance as the pair manages it: the engine instance, its generation, and the height whose
// state it has seen. Shared through leases (std::shared_ptr) because a call that started on it
// must be able to finish after a swap has unpublished it; the last lease hands it to the reaper.
class ManagedInstance {
 public:
  ManagedInstance(std::unique_ptr<engine::Instance> instance, uint64_t generation)
      : instance_(std::move(instance)), generation_(generation) {}

  engine::Instance& instance() const { return *instance_; }
  uint64_t generation() const { return generation_; }

  // The height whose state this instance has seen (ran its block, or was published at it).
  // Guarded by the owning pair's mu_ (not expressible across classes).
  std::optional<uint32_t> bound_height;

 private:
  const std::unique_ptr<engine::Instance> instance_;
  const uint64_t generation_;
};

namespace {

PairEvent MakeEvent(PairEvent::Kind kind, uint64_t generation = 0) {
  PairEvent event;
  event.kind = kind;
  event.time = absl::Now();
  event.generation = generation;
  return event;
}

std::string Hex(absl::string_view bytes) { return absl::BytesToHexString(bytes); }

absl::Status Annotate(const absl::Status& status, absl::string_view prefix) {
  return absl::Status(status.code(), absl::StrCat(prefix, status.message()));
}

}  // namespace

InstancePair::InstancePair(const engine::Module& module, store::BlockStore& store,
                           PairOptions options, PairEventSink* events)
    : module_(module),
      store_(store),
      options_(std::move(options)),
      events_(events),
      reader_(store),
      reaper_(std::make_unique<Reaper<ManagedInstance>>()),
      jitter_(static_cast<std::minstd_rand::result_type>(options_.random_seed)) {
  if (std::optional<store::BlockRecord> tip = store_.GetTip(); tip.has_value()) {
    util::MutexLock lock(&mu_);
    tip_ = tip->height;
  }
  warmer_ = std::thread(&InstancePair::WarmerMain, this);
}

InstancePair::~InstancePair() {
  {
    util::MutexLock lock(&mu_);
    stopping_ = true;
  }
  warmer_.join();
  std::vector<Lease> released;
  {
    util::MutexLock lock(&mu_);
    released.push_back(std::move(active_));
    released.push_back(std::move(standby_));
    for (auto& [height, lease] : historical_) released.push_back(std::move(lease));
    historical_.clear();
  }
  released.clear();
  reaper_->Drain();
}

// ---------------------------------------------------------------------------------------------
// Warming

absl::StatusOr<InstancePair::Lease> InstancePair::Warm(uint64_t generation,
                                                       absl::Duration deadline) {
  const absl::Time end = absl::Now() + deadline;
  engine::InstanceOptions instance_options = options_.instance;
  instance_options.label = absl::StrCat("generation ", generation);
  instance_options.create_deadline = deadline;
  absl::StatusOr<std::unique_ptr<engine::Instance>> instance =
      engine::Instance::Create(module_, std::move(instance_options));
  if (!instance.ok()) {
    return Annotate(instance.status(), absl::StrCat("warm-up of generation ", generation, ": "));
  }
  absl::StatusOr<std::vector<store::ReplayCall>> calls = store_.replay_log().List();
  if (!calls.ok()) return Annotate(calls.status(), "warm-up could not read the replay log: ");
  for (size_t i = 0; i < calls->size(); ++i) {
    const store::ReplayCall& call = (*calls)[i];
    absl::Duration remaining = end - absl::Now();
    if (remaining <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(
          absl::StrCat("warm-up of generation ", generation, " ran past its deadline of ",
                       absl::FormatDuration(deadline), " after replaying ", i, " of ",
                       calls->size(), " init calls"));
    }
    absl::StatusOr<engine::CallResult> result = (*instance)->RunInit(
        call.export_name, call.payload, std::min(remaining, options_.init_deadline));
    if (!result.ok()) {
      return Annotate(result.status(),
                      absl::StrCat("replaying init call ", i + 1, " of ", calls->size(), " (",
                                   call.export_name, ") failed: "));
    }
    std::string digest = store::Sha256(result->answer);
    if (digest != call.result_digest) {
      return absl::AbortedError(absl::StrCat("replay diverged at call ", i + 1, " (",
                                             call.export_name, "): result digest ", Hex(digest),
                                             " differs from the recorded ", Hex(call.result_digest),
                                             "; the guest's init calls are not deterministic"));
    }
  }
  Reaper<ManagedInstance>* reaper = reaper_.get();
  return Lease(new ManagedInstance(*std::move(instance), generation),
               [reaper](ManagedInstance* retired) {
                 reaper->Dispose(std::unique_ptr<ManagedInstance>(retired));
               });
}

bool InstancePair::StandbyWantedLocked() const {
  if (active_ == nullptr || swap_requests_ > 0) return true;
  switch (options_.policy) {
    case SwapPolicy::kBlock:
    case SwapPolicy::kNone:
      return true;  // Always keep one ready: for the next block, or for a failure.
    case SwapPolicy::kThreshold:
      return active_memory_ratio_ >= options_.warm_at;
    case SwapPolicy::kSync:
      return false;  // Instances are made on the critical path; that is the point of `sync`.
  }
  return true;
}

void InstancePair::WarmerMain() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  mu_.Lock();
  while (true) {
    auto should_warm = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return stopping_ || (standby_state_ != StandbyState::kReady && StandbyWantedLocked() &&
                           absl::Now() >= next_warm_attempt_);
    };
    while (!should_warm()) {
      // Wakes on every state change (conditions are re-evaluated when mu_ is released) and when
      // the retry backoff ends.
      absl::Time wake =
          next_warm_attempt_ > absl::Now() ? next_warm_attempt_ : absl::InfiniteFuture();
      mu_.AwaitWithDeadline(should_warm, wake);
    }
    if (stopping_) break;

    const uint64_t generation = next_generation_++;
    const uint64_t epoch = epoch_;
    standby_state_ = StandbyState::kWarming;
    warming_generation_ = generation;
    Events events = {MakeEvent(PairEvent::Kind::kWarmStarted, generation)};
    mu_.Unlock();
    Emit(events);
    events.clear();

    const absl::Time started = absl::Now();
    absl::StatusOr<Lease> warmed = Warm(generation, options_.warm_deadline);
    const absl::Duration took = absl::Now() - started;
    std::vector<Lease> released;

    mu_.Lock();
    warming_generation_ = 0;
    if (warmed.ok() && (stopping_ || epoch != epoch_)) {
      // The replay log or the chain changed while it warmed: it is stale; warm again.
      released.push_back(*std::move(warmed));
      standby_state_ = StandbyState::kEmpty;
      PairEvent event = MakeEvent(PairEvent::Kind::kStandbyDiscarded, generation);
      event.cause = "the replay log changed while it warmed";
      events.push_back(event);
    } else if (warmed.ok()) {
      standby_ = *std::move(warmed);
      standby_state_ = StandbyState::kReady;
      standby_failure_.clear();
      consecutive_warm_failures_ = 0;
      PairEvent event = MakeEvent(PairEvent::Kind::kWarmReady, generation);
      event.duration = took;
      events.push_back(event);
    } else {
      if (warmed.status().code() == absl::StatusCode::kUnavailable) {
        // The host ran short (address space, memory): the instances kept for past heights are
        // only a cache, and their reservations may be what a new instance needs.
        for (auto& [height, kept] : historical_) released.push_back(std::move(kept));
        historical_.clear();
        historical_order_.clear();
      }
      standby_state_ = StandbyState::kFailed;
      standby_failure_ = warmed.status().ToString();
      ++consecutive_warm_failures_;
      double backoff_seconds = absl::ToDoubleSeconds(options_.warm_retry_base) *
                               std::pow(2.0, std::min(consecutive_warm_failures_ - 1, 20));
      backoff_seconds = std::min(backoff_seconds, absl::ToDoubleSeconds(options_.warm_retry_cap));
      std::uniform_real_distribution<double> jitter(0.75, 1.25);
      absl::Duration retry_in = absl::Seconds(backoff_seconds * jitter(jitter_));
      next_warm_attempt_ = absl::Now() + retry_in;
      PairEvent event = MakeEvent(PairEvent::Kind::kWarmFailed, generation);
      event.cause = standby_failure_;
      event.retry_in = retry_in;
      event.duration = took;
      events.push_back(event);
    }
    mu_.Unlock();
    Emit(events);
    released.clear();
    mu_.Lock();
  }
  mu_.Unlock();
}

// ---------------------------------------------------------------------------------------------
// Slots

absl::StatusOr<InstancePair::Lease> InstancePair::TakeStandbyLocked(absl::Duration wait) {
  if (standby_ == nullptr) {
    ++swap_requests_;  // Makes the warmer warm one even under policies that keep none.
    mu_.AwaitWithTimeout(
        [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return standby_ != nullptr || stopping_; }, wait);
    --swap_requests_;
  }
  if (standby_ == nullptr) {
    std::string state(StandbyStateName(standby_state_));
    if (standby_state_ == StandbyState::kFailed)
      absl::StrAppend(&state, " (", standby_failure_, ")");
    return absl::UnavailableError(absl::StrCat(
        "no ready instance within ", absl::FormatDuration(wait), "; the standby is ", state));
  }
  return TakeReadyStandbyLocked();
}

InstancePair::Lease InstancePair::TakeReadyStandbyLocked() {
  standby_state_ = StandbyState::kEmpty;
  return std::move(standby_);
}

void InstancePair::VacateActiveLocked(SwapReason reason, Events& events,
                                      std::vector<Lease>& released) {
  released.push_back(std::move(active_));
  active_ = nullptr;
  active_memory_ratio_ = 0;
  vacancy_reason_ = reason;
  if (standby_ != nullptr) {
    PublishActiveLocked(TakeReadyStandbyLocked(), reason, absl::Now(), events, released);
  }
}

absl::StatusOr<InstancePair::Lease> InstancePair::ActiveLocked(absl::Duration wait,
                                                               Events& events) {
  if (options_.policy == SwapPolicy::kThreshold && swap_due_ && standby_ != nullptr) {
    std::vector<Lease> released;  // Dropped at return, with the lock held: only a queue push.
    PublishActiveLocked(TakeReadyStandbyLocked(), SwapReason::kThreshold, absl::Now(), events,
                        released);
  }
  if (active_ != nullptr) return active_;
  TANDEM_ASSIGN_OR_RETURN(Lease next, TakeStandbyLocked(wait));
  std::vector<Lease> released;
  PublishActiveLocked(std::move(next), vacancy_reason_, absl::Now(), events, released);
  return active_;
}

void InstancePair::PublishActiveLocked(Lease next, SwapReason reason, absl::Time pause_start,
                                       Events& events, std::vector<Lease>& released) {
  Lease previous = std::move(active_);
  active_ = std::move(next);
  if (!active_->bound_height.has_value()) active_->bound_height = tip_;
  active_memory_ratio_ = MemoryRatio(*active_);
  swap_due_ = false;
  const absl::Duration pause = absl::Now() - pause_start;

  PairEvent event = MakeEvent(PairEvent::Kind::kSwap, active_->generation());
  event.previous_generation = previous != nullptr ? previous->generation() : 0;
  event.reason = reason;
  event.pause = pause;
  if (tip_.has_value()) event.height = *tip_;
  events.push_back(event);

  if (previous == nullptr) return;
  // Under `block`, the previous active has seen exactly one height below the new tip: keep it
  // for views there instead of warming another instance for them.
  if (reason == SwapReason::kBlock && previous->bound_height.has_value() &&
      previous->instance().health().ok()) {
    const uint32_t height = *previous->bound_height;  // Read before the lease moves.
    KeepForHeightLocked(height, std::move(previous), released);
  }
  if (previous != nullptr) released.push_back(std::move(previous));
}

void InstancePair::KeepForHeightLocked(uint32_t height, Lease lease, std::vector<Lease>& released) {
  if (options_.historical_instances <= 0 || historical_.contains(height)) {
    released.push_back(std::move(lease));
    return;
  }
  historical_.emplace(height, std::move(lease));
  historical_order_.push_back(height);
  while (static_cast<int>(historical_order_.size()) > options_.historical_instances) {
    auto oldest = historical_.find(historical_order_.front());
    released.push_back(std::move(oldest->second));
    historical_.erase(oldest);
    historical_order_.pop_front();
  }
}

void InstancePair::AfterActiveCallLocked(const Lease& lease, Events& events,
                                         std::vector<Lease>& released) {
  if (lease != active_) return;
  active_memory_ratio_ = MemoryRatio(*lease);
  if (options_.policy != SwapPolicy::kThreshold || active_memory_ratio_ < options_.swap_at) return;
  if (standby_ != nullptr) {
    PublishActiveLocked(TakeReadyStandbyLocked(), SwapReason::kThreshold, absl::Now(), events,
                        released);
    return;
  }
  if (!swap_due_) {
    swap_due_ = true;
    PairEvent event = MakeEvent(PairEvent::Kind::kSwapDelayed, lease->generation());
    event.cause = absl::StrCat("memory at ", static_cast<int>(active_memory_ratio_ * 100),
                               "% of the cap; the standby is ", StandbyStateName(standby_state_));
    events.push_back(event);
  }
}

void InstancePair::RetireFailedLocked(const Lease& lease, const absl::Status& cause, Events& events,
                                      std::vector<Lease>& released) {
  PairEvent event = MakeEvent(PairEvent::Kind::kInstanceFailed, lease->generation());
  event.cause = cause.ToString();
  events.push_back(event);
  for (auto it = historical_.begin(); it != historical_.end();) {
    if (it->second == lease) {
      std::erase(historical_order_, it->first);
      released.push_back(std::move(it->second));
      it = historical_.erase(it);
    } else {
      ++it;
    }
  }
  if (lease == active_) VacateActiveLocked(SwapReason::kFailure, events, released);
}

void InstancePair::DiscardStandbyLocked(absl::string_view cause, Events& events,
                                        std::vector<Lease>& released) {
  ++epoch_;  // A warm in progress replays the old log: it is discarded when it finishes.
  if (standby_ == nullptr) return;
  PairEvent event = MakeEvent(PairEvent::Kind::kStandbyDiscarded, standby_->generation());
  event.cause = std::string(cause);
  events.push_back(event);
  released.push_back(TakeReadyStandbyLocked());
}

double InstancePair::MemoryRatio(const ManagedInstance& instance) const {
  return static_cast<double>(instance.instance().memory().linear_memory_bytes) /
         static_cast<double>(module_.memory_limit_bytes());
}

void InstancePair::Emit(const Events& events) const {
  if (events_ == nullptr) return;
  for (const PairEvent& event : events) events_->OnPairEvent(event);
}

absl::Status InstancePair::WaitUntilReady(absl::Duration timeout) {
  util::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return active_ != nullptr || standby_ != nullptr || stopping_;
  };
  if (mu_.AwaitWithTimeout(ready, timeout) && !stopping_) {
    return absl::OkStatus();
  }
  return absl::UnavailableError(
      absl::StrCat("no instance became ready within ", absl::FormatDuration(timeout),
                   "; the standby is ", StandbyStateName(standby_state_),
                   standby_failure_.empty() ? "" : absl::StrCat(" (", standby_failure_, ")")));
}

// ---------------------------------------------------------------------------------------------
// Blocks

absl::StatusOr<std::optional<BlockOutcome>> InstancePair::CheckSubmission(
    const BlockSubmission& block, std::string& hash) {
  if (!block.hash.empty() && block.hash.size() != 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("block hash must be 32 bytes or empty, not ", block.hash.size()));
  }
  if (block.prev_hash.has_value() && block.prev_hash->size() != 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("prev_hash must be 32 bytes, not ", block.prev_hash->size()));
  }
  hash = block.hash.empty() ? store::Sha256(block.bytes) : block.hash;
  // The store checks all of this again at commit; checking first keeps a doomed block from
  // running (and from costing a fresh instance).
  std::optional<store::BlockRecord> tip = store_.GetTip();
  if (!tip.has_value()) return std::nullopt;
  if (block.height <= tip->height) {
    absl::StatusOr<store::BlockRecord> stored = store_.GetBlock(block.height);
    if (!stored.ok()) {
      if (stored.status().code() == absl::StatusCode::kNotFound) {
        return absl::FailedPreconditionError(
            absl::StrCat("height ", block.height, " is below the first height this node indexes"));
      }
      return stored.status();
    }
    if (stored->hash == hash) {
      BlockOutcome outcome;
      outcome.record = *stored;
      outcome.already_committed = true;
      return outcome;
    }
    return absl::FailedPreconditionError(absl::StrCat("height ", block.height,
                                                      " already committed with hash ",
                                                      Hex(stored->hash), "; roll back first"));
  }
  if (block.height != tip->height + 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("height ", block.height, " is not tip+1 (tip is ", tip->height, ")"));
  }
  if (block.prev_hash.has_value() && *block.prev_hash != tip->hash) {
    return absl::FailedPreconditionError(absl::StrCat(
        "parent hash mismatch at height ", block.height, ": prev_hash ", Hex(*block.prev_hash),
        " but height ", tip->height, " has hash ", Hex(tip->hash)));
  }
  return std::nullopt;
}

absl::StatusOr<BlockOutcome> InstancePair::SubmitBlock(const BlockSubmission& block) {
  util::MutexLock ingest(&ingest_mu_);
  const absl::Time started = absl::Now();
  std::string hash;
  TANDEM_ASSIGN_OR_RETURN(std::optional<BlockOutcome> settled, CheckSubmission(block, hash));
  if (settled.has_value()) return *settled;

  Events events;
  absl::StatusOr<Lease> lease;
  {
    util::MutexLock lock(&mu_);
    lease = options_.policy == SwapPolicy::kBlock ? TakeStandbyLocked(options_.standby_wait)
                                                  : ActiveLocked(options_.standby_wait, events);
    if (!lease.ok()) {
      PairEvent event = MakeEvent(PairEvent::Kind::kBlockFailed);
      event.height = block.height;
      event.cause = lease.status().ToString();
      events.push_back(event);
    }
  }
  Emit(events);
  if (!lease.ok()) return lease.status();
  return RunAndCommit(block, hash, *lease, started);
}

absl::StatusOr<BlockOutcome> InstancePair::RunAndCommit(const BlockSubmission& block,
                                                        const std::string& hash, const Lease& lease,
                                                        absl::Time started) {
  Events events;
  std::vector<Lease> released;
  auto fail = [&](const absl::Status& status) {
    {
      util::MutexLock lock(&mu_);
      RetireFailedLocked(lease, status, events, released);
      PairEvent event = MakeEvent(PairEvent::Kind::kBlockFailed, lease->generation());
      event.height = block.height;
      event.cause = status.ToString();
      events.push_back(event);
    }
    Emit(events);
    return status;
  };

  absl::StatusOr<engine::BlockResult> result =
      lease->instance().RunBlock(block.height, block.bytes, reader_, options_.block_deadline);
  if (!result.ok()) return fail(result.status());

  store::BlockCommit commit;
  commit.height = block.height;
  commit.block_bytes = block.bytes;
  commit.hash = hash;
  commit.prev_hash = block.prev_hash;
  for (auto& [key, value] : result->writes) commit.writes.emplace(key, std::move(value));
  absl::StatusOr<store::BlockRecord> record = store_.CommitBlock(commit);
  if (!record.ok()) {
    // The instance has seen a block that is not committed: it must not serve again.
    return fail(Annotate(record.status(), absl::StrCat("block ", block.height,
                                                       " ran but could not be committed: ")));
  }

  BlockOutcome outcome;
  outcome.record = *record;
  outcome.generation = lease->generation();
  bool replace_synchronously = false;
  {
    util::MutexLock lock(&mu_);
    tip_ = block.height;
    lease->bound_height = block.height;
    switch (options_.policy) {
      case SwapPolicy::kBlock:
        PublishActiveLocked(lease, SwapReason::kBlock, absl::Now(), events, released);
        break;
      case SwapPolicy::kThreshold:
      case SwapPolicy::kNone:
        AfterActiveCallLocked(lease, events, released);
        break;
      case SwapPolicy::kSync:
        replace_synchronously = true;
        break;
    }
  }
  if (replace_synchronously) {
    // The baseline: a new instance on the critical path, after every block.
    uint64_t generation;
    {
      util::MutexLock lock(&mu_);
      generation = next_generation_++;
    }
    absl::StatusOr<Lease> fresh = Warm(generation, options_.warm_deadline);
    util::MutexLock lock(&mu_);
    if (fresh.ok()) {
      PublishActiveLocked(*std::move(fresh), SwapReason::kSync, absl::Now(), events, released);
    } else if (lease == active_) {
      VacateActiveLocked(SwapReason::kFailure, events, released);
      PairEvent event = MakeEvent(PairEvent::Kind::kWarmFailed, generation);
      event.cause = fresh.status().ToString();
      events.push_back(event);
    }
  }
  outcome.duration = absl::Now() - started;
  PairEvent committed = MakeEvent(PairEvent::Kind::kBlockCommitted, lease->generation());
  committed.height = block.height;
  committed.duration = outcome.duration;
  events.push_back(committed);
  Emit(events);
  return outcome;
}

// ---------------------------------------------------------------------------------------------
// Views

absl::StatusOr<InstancePair::Lease> InstancePair::HistoricalInstance(uint32_t height) {
  uint64_t generation;
  uint64_t epoch;
  {
    util::MutexLock lock(&mu_);
    if (auto kept = historical_.find(height); kept != historical_.end()) {
      std::erase(historical_order_, height);
      historical_order_.push_back(height);
      return kept->second;
    }
    generation = next_generation_++;
    epoch = epoch_;
  }
  TANDEM_ASSIGN_OR_RETURN(Lease lease, Warm(generation, options_.view_deadline));
  std::vector<Lease> released;
  util::MutexLock lock(&mu_);
  lease->bound_height = height;
  // Kept only if no init call or rollback changed what it should have replayed meanwhile.
  if (epoch == epoch_) KeepForHeightLocked(height, lease, released);
  return lease;
}

absl::StatusOr<ViewOutcome> InstancePair::View(absl::string_view name,
                                               std::optional<uint32_t> height,
                                               absl::string_view request) {
  TANDEM_RETURN_IF_ERROR(module_.CheckCallableExport(name));
  Events events;
  Lease lease;
  uint32_t resolved;
  {
    util::MutexLock lock(&mu_);
    if (!tip_.has_value()) return absl::NotFoundError("no block has been committed yet");
    resolved = height.value_or(*tip_);
    if (resolved > *tip_) {
      return absl::NotFoundError(absl::StrCat("height ", resolved, " is above the tip ", *tip_));
    }
    if (resolved == *tip_) {
      absl::StatusOr<Lease> active = ActiveLocked(options_.standby_wait, events);
      if (!active.ok()) return active.status();
      lease = *std::move(active);
    }
  }
  Emit(events);
  events.clear();
  if (lease == nullptr) {
    std::optional<uint32_t> start = store_.GetStartHeight();
    if (!start.has_value() || resolved < *start) {
      return absl::NotFoundError(
          absl::StrCat("height ", resolved, " is below the first height this node indexes"));
    }
    TANDEM_ASSIGN_OR_RETURN(lease, HistoricalInstance(resolved));
  }

  absl::StatusOr<engine::CallResult> result =
      lease->instance().RunView(name, resolved, request, reader_, options_.view_deadline);
  std::vector<Lease> released;
  {
    util::MutexLock lock(&mu_);
    if (absl::Status health = lease->instance().health(); !health.ok()) {
      RetireFailedLocked(lease, health, events, released);
    } else {
      AfterActiveCallLocked(lease, events, released);
    }
  }
  Emit(events);
  if (!result.ok()) return result.status();
  return ViewOutcome{std::move(result->answer), resolved, lease->generation()};
}

// ---------------------------------------------------------------------------------------------
// Rollback, init calls, manual swaps, status

absl::Status InstancePair::Rollback(uint32_t height) {
  util::MutexLock ingest(&ingest_mu_);
  TANDEM_RETURN_IF_ERROR(store_.Rollback(height));
  Events events;
  std::vector<Lease> released;
  {
    util::MutexLock lock(&mu_);
    std::optional<store::BlockRecord> tip = store_.GetTip();
    tip_ = tip.has_value() ? std::optional<uint32_t>(tip->height) : std::nullopt;
    // No guest memory may remember an undone block.
    auto has_seen_undone = [&](const Lease& lease) {
      return lease->bound_height.has_value() && (!tip_.has_value() || *lease->bound_height > *tip_);
    };
    for (auto it = historical_.begin(); it != historical_.end();) {
      if (has_seen_undone(it->second)) {
        std::erase(historical_order_, it->first);
        released.push_back(std::move(it->second));
        it = historical_.erase(it);
      } else {
        ++it;
      }
    }
    PairEvent event = MakeEvent(PairEvent::Kind::kRolledBack);
    event.height = height;
    events.push_back(event);
    if (active_ != nullptr && has_seen_undone(active_)) {
      VacateActiveLocked(SwapReason::kRollback, events, released);
    }
  }
  Emit(events);
  return absl::OkStatus();
}

absl::StatusOr<InitOutcome> InstancePair::Initialize(absl::string_view name,
                                                     absl::string_view payload) {
  util::MutexLock ingest(&ingest_mu_);
  TANDEM_RETURN_IF_ERROR(module_.CheckCallableExport(name));
  const store::ReplayLogLimits& limits = store_.replay_log().limits();
  store::ReplayLogStats stats = store_.replay_log().Stats();
  if (stats.calls + 1 > limits.max_calls ||
      stats.bytes + name.size() + payload.size() + 32 > limits.max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "replay log full: ", stats.calls, " calls and ", stats.bytes, " bytes of at most ",
        limits.max_calls, " calls and ", limits.max_bytes, " bytes"));
  }
  Events events;
  absl::StatusOr<Lease> lease;
  {
    util::MutexLock lock(&mu_);
    lease = ActiveLocked(options_.standby_wait, events);
  }
  Emit(events);
  events.clear();
  if (!lease.ok()) return lease.status();

  std::vector<Lease> released;
  absl::StatusOr<engine::CallResult> result =
      (*lease)->instance().RunInit(name, payload, options_.init_deadline);
  absl::Status recorded = result.status();
  std::string digest;
  if (result.ok()) {
    digest = store::Sha256(result->answer);
    recorded = store_.replay_log().Append(
        store::ReplayCall{std::string(name), std::string(payload), digest});
  }
  {
    util::MutexLock lock(&mu_);
    if (!recorded.ok()) {
      // The init call ran (or half-ran) on the active but is not in the log: the active's memory
      // no longer matches what a replay reproduces, so it is replaced.
      RetireFailedLocked(*lease, recorded, events, released);
    } else {
      DiscardStandbyLocked("an init call made it stale", events, released);
      for (auto& [height, kept] : historical_) released.push_back(std::move(kept));
      historical_.clear();
      historical_order_.clear();
      PairEvent event = MakeEvent(PairEvent::Kind::kInitCall, (*lease)->generation());
      event.cause = std::string(name);
      events.push_back(event);
    }
  }
  Emit(events);
  if (!recorded.ok()) return recorded;
  return InitOutcome{std::move(result->answer), std::move(digest),
                     store_.replay_log().Stats().calls};
}

absl::StatusOr<SwapOutcome> InstancePair::Swap(absl::Duration wait) {
  Events events;
  std::vector<Lease> released;
  SwapOutcome outcome;
  {
    util::MutexLock lock(&mu_);
    const absl::Time wait_start = absl::Now();
    TANDEM_ASSIGN_OR_RETURN(Lease next, TakeStandbyLocked(wait));
    const absl::Time pause_start = absl::Now();
    outcome.waited = pause_start - wait_start;
    outcome.previous_generation = active_ != nullptr ? active_->generation() : 0;
    outcome.generation = next->generation();
    PublishActiveLocked(std::move(next), SwapReason::kManual, pause_start, events, released);
    outcome.pause = events.back().pause;
  }
  Emit(events);
  return outcome;
}

PairStatus InstancePair::Status() const {
  PairStatus status;
  status.policy = options_.policy;
  status.warm_at = options_.warm_at;
  status.swap_at = options_.swap_at;
  status.memory_limit_bytes = module_.memory_limit_bytes();
  auto describe = [this](const Lease& lease) {
    SlotStatus slot;
    if (lease == nullptr) return slot;
    slot.present = true;
    slot.generation = lease->generation();
    slot.memory = lease->instance().memory();
    slot.memory_bytes = slot.memory.linear_memory_bytes;
    slot.memory_ratio = MemoryRatio(*lease);
    slot.calls_completed = lease->instance().calls_completed();
    return slot;
  };
  {
    util::MutexLock lock(&mu_);
    status.tip = tip_;
    status.active = describe(active_);
    status.standby = describe(standby_);
    if (!status.standby.present && warming_generation_ != 0) {
      status.standby.generation = warming_generation_;
    }
    status.standby_state = standby_state_;
    status.standby_failure = standby_failure_;
    status.consecutive_warm_failures = consecutive_warm_failures_;
    status.swap_due = swap_due_;
    status.historical_instances = historical_.size();
  }
  store::ReplayLogStats log = store_.replay_log().Stats();
  status.replay_log_calls = log.calls;
  status.replay_log_bytes = log.bytes;
  return status;
}

}  // namespace tandem::proxy
