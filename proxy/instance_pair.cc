// The instance pair: the façade over an active instance that serves and a pool of standbys warmed
// in the background, swapped atomically by policy. It owns every instance; the store only stores.
#include "proxy/instance_pair.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "store/state_root.h"
#include "util/failure_cause.h"
#include "util/status_macros.h"

namespace tandem::proxy {
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
  return util::WithCause(absl::Status(status.code(), absl::StrCat(prefix, status.message())),
                         util::CauseOf(status));
}

// A block that ran and did not commit: the store's failure (a host failure, never the block's).
absl::Status CommitFailure(uint32_t height, const absl::Status& status) {
  return util::WithCause(
      Annotate(status, absl::StrCat("block ", height, " ran but could not be committed: ")),
      util::FailureCause::kHostError);
}

SwapRulesOptions RulesOptions(const PairOptions& options) {
  SwapRulesOptions rules;
  rules.standby_pool = options.standby_pool;
  rules.warm_at = options.warm_at;
  rules.swap_at = options.swap_at;
  return rules;
}

SlotTableOptions TableOptions(const PairOptions& options, const engine::Module& module) {
  SlotTableOptions table;
  table.historical_instances = options.historical_instances;
  table.max_waiting_views = options.max_waiting_views;
  table.backoff = options.warm_backoff;
  table.random_seed = options.random_seed;
  table.memory_limit_bytes = module.memory_limit_bytes();
  return table;
}

std::optional<uint32_t> StoredTip(const store::BlockStore& store) {
  std::optional<store::BlockRecord> tip = store.GetTip();
  return tip.has_value() ? std::optional<uint32_t>(tip->height) : std::nullopt;
}

}  // namespace

bool FailedItsInstance(const absl::Status& status) {
  switch (util::CauseOf(status)) {
    case util::FailureCause::kGuestTrap:
    case util::FailureCause::kGuestAbort:
    case util::FailureCause::kGuestAbi:
    case util::FailureCause::kDeadline:
    case util::FailureCause::kStackOverflow:
    case util::FailureCause::kHostMemory:
    case util::FailureCause::kHostMemoryBudget:
    case util::FailureCause::kHeapLimit:
    case util::FailureCause::kHostError:
      return status.code() != absl::StatusCode::kNotFound &&
             status.code() != absl::StatusCode::kInvalidArgument;
    default:
      return false;
  }
}

InstancePair::InstancePair(const engine::Module& module, store::BlockStore& store,
                           PairOptions options, PairEventSink* events)
    : module_(module),
      store_(store),
      options_(std::move(options)),
      events_(events),
      reader_(store),
      rules_(MakeSwapRules(options_.policy, RulesOptions(options_))),
      factory_(module, store.replay_log(), options_.workers, options_.instance),
      slots_(*rules_, TableOptions(options_, module), StoredTip(store)),
      warmer_(std::make_unique<Warmer>(slots_, factory_, events, std::max(1, options_.warm_threads),
                                       options_.warm_deadline)),
      // Only blocks that run on instances of their own hold distinct ones: under `none` and
      // `threshold` the blocks in flight share the active, and giving it up frees nothing.
      unsettled_(rules_->BlocksRunOnFreshInstance()
                     ? static_cast<size_t>(std::max(1, options_.max_unsettled_instances))
                     : std::numeric_limits<size_t>::max()),
      pipeline_(std::make_unique<CommitPipeline>(
          store,
          [this](const InFlightBlock& block, const absl::StatusOr<store::BlockRecord>& durable) {
            return SettleBlock(block, durable);
          })) {}

InstancePair::~InstancePair() {
  pipeline_.reset();  // Settles the blocks in flight while the slots still take them.
  slots_.Stop();
  warmer_.reset();
  slots_.Clear();
}

void InstancePair::Emit(const Events& events) const {
  if (events_ == nullptr) return;
  for (const PairEvent& event : events) events_->OnPairEvent(event);
}

absl::Status InstancePair::WaitUntilReady(absl::Duration timeout) {
  Events events;
  absl::StatusOr<Lease> active = slots_.Active(absl::Now() + timeout, events);
  Emit(events);
  if (!active.ok()) {
    return absl::Status(active.status().code(), absl::StrCat("no instance became ready within ",
                                                             absl::FormatDuration(timeout), ": ",
                                                             active.status().message()));
  }
  return absl::OkStatus();
}

template <typename Result>
absl::StatusOr<Result> InstancePair::RunOnHealthyInstance(
    CallKind kind, absl::FunctionRef<absl::StatusOr<Lease>(Events&)> acquire,
    absl::FunctionRef<absl::StatusOr<Result>(const Lease&)> run, Lease& ran_on) {
  // A call lost to other calls' failures looks for a healthy instance as long as a call may wait
  // for one; each lost attempt spent its time queued behind the call that failed the instance.
  const absl::Time give_up = absl::Now() + options_.standby_wait;
  int lost = 0;
  while (true) {
    Events events;
    absl::StatusOr<Lease> lease = acquire(events);
    Emit(events);
    if (!lease.ok()) return lease.status();
    ran_on = *lease;
    absl::StatusOr<Result> result = run(ran_on);
    if (result.ok()) return result;
    events.clear();
    if (util::CauseOf(result.status()) != util::FailureCause::kInstanceLost) {
      if (FailedItsInstance(result.status())) {
        slots_.RetireFailed(ran_on, result.status(), kind, events);
        Emit(events);
      }
      return result;
    }
    // Another call failed this instance while ours queued on it: ours never ran.
    slots_.Withdraw(ran_on, events);
    Emit(events);
    ++lost;
    if (absl::Now() >= give_up) {
      return util::WithCause(
          absl::UnavailableError(absl::StrCat("other calls failed ", lost,
                                              " instances in a row before this call could start on "
                                              "one, for ",
                                              absl::FormatDuration(options_.standby_wait),
                                              "; the last: ", result.status().message())),
          util::FailureCause::kInstanceLost);
    }
  }
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
  TANDEM_ASSIGN_OR_RETURN(const PendingBlock pending, BeginBlock(block));
  return FinishBlock(pending);
}

bool InstancePair::FollowsBlockInFlight(const BlockSubmission& block) const {
  // `sync` replaces the instance after every block before the next may run.
  if (rules_->AfterBlockCommitted() == AfterBlock::kReplaceNow) return false;
  const std::optional<CommitPipeline::Newest> newest = pipeline_->Last();
  if (!newest.has_value()) return false;
  // The store drops its queue when a write fails; its head then no longer is the newest block
  // the pair queued, and that failure must be settled (its instances retired) first.
  const std::optional<store::BlockStore::Head> head = store_.GetHead();
  return head.has_value() && head->height == newest->height && head->hash == newest->hash &&
         static_cast<uint64_t>(block.height) == uint64_t{head->height} + 1 &&
         (!block.prev_hash.has_value() || *block.prev_hash == head->hash);
}

absl::Status InstancePair::SettleBlocksInFlight() {
  return pipeline_->Drain(absl::Now() + options_.block_deadline);
}

absl::StatusOr<PendingBlock> InstancePair::BeginBlock(const BlockSubmission& block) {
  util::MutexLock ingest(&ingest_mu_);
  const absl::Time started = absl::Now();
  std::string hash;
  PendingBlock pending;
  pending.height_ = block.height;
  if (FollowsBlockInFlight(block)) {
    // The common case of a pipelined ingest: the checks against the head were just made, and
    // the store makes them again when it queues the block.
    if (!block.hash.empty() && block.hash.size() != 32) {
      return absl::InvalidArgumentError(
          absl::StrCat("block hash must be 32 bytes or empty, not ", block.hash.size()));
    }
    hash = block.hash.empty() ? store::Sha256(block.bytes) : block.hash;
  } else {
    // Anything else (a resubmission, a gap, a parent mismatch, a failed block in flight) is
    // judged against the durable tip, once every block in flight is settled.
    TANDEM_RETURN_IF_ERROR(SettleBlocksInFlight());
    TANDEM_ASSIGN_OR_RETURN(std::optional<BlockOutcome> settled, CheckSubmission(block, hash));
    if (settled.has_value()) {
      pending.known_ = *std::move(settled);
      return pending;
    }
  }

  auto fail = [&](const absl::Status& status, uint64_t generation) {
    PairEvent event = MakeEvent(PairEvent::Kind::kBlockFailed, generation);
    event.height = block.height;
    event.call = CallKind::kBlock;
    DescribeFailure(status, event);
    Emit({event});
    return status;
  };

  const bool fresh = rules_->BlocksRunOnFreshInstance();
  Lease lease;
  absl::StatusOr<engine::BlockResult> result = RunOnHealthyInstance<engine::BlockResult>(
      CallKind::kBlock,
      [&](Events& events) {
        const absl::Time wait_until = absl::Now() + options_.standby_wait;
        return fresh ? slots_.TakeStandby(Claim::kBlock, wait_until, events)
                     : slots_.Active(wait_until, events);
      },
      [&](const Lease& on) {
        return on->instance().RunBlock(block.height, block.bytes, reader_, options_.block_deadline);
      },
      lease);
  if (!result.ok()) return fail(result.status(), lease != nullptr ? lease->generation() : 0);

  store::BlockCommit commit;
  commit.height = block.height;
  commit.block_bytes = block.bytes;
  commit.hash = hash;
  commit.prev_hash = block.prev_hash;
  commit.writes = std::move(result->writes);  // one type on both sides: moved, never copied
  if (absl::Status queued = store_.QueueCommit(std::move(commit)); !queued.ok()) {
    // The instance has seen a block that is not committed (or ran on one that failed to
    // commit): it must not serve again.
    absl::Status status = CommitFailure(block.height, queued);
    Events events;
    slots_.RetireFailed(lease, status, CallKind::kBlock, events);
    Emit(events);
    return fail(status, lease->generation());
  }
  // Held before the pipeline may settle the block, which takes it back. A lease given up to make
  // room is dropped when BeginBlock returns, and its worker retires the instance.
  const Lease gave_up = unsettled_.Hold(block.height, lease);
  pending.ticket_ = pipeline_->Add(InFlightBlock{block.height, hash, lease->generation(), started});

  if (rules_->AfterBlockCommitted() == AfterBlock::kReplaceNow) {
    pending.known_ = FinishBlock(pending);
    if (pending.known_->ok()) {
      Events events;
      ReplaceActiveSynchronously(lease, events);
      Emit(events);
    }
  }
  return pending;
}

absl::StatusOr<BlockOutcome> InstancePair::FinishBlock(const PendingBlock& pending) {
  if (pending.known_.has_value()) return *pending.known_;
  TANDEM_ASSIGN_OR_RETURN(
      const CommitPipeline::Settled settled,
      pipeline_->Await(*pending.ticket_, absl::Now() + options_.block_deadline));
  const InFlightBlock& block = pending.ticket_->block();
  BlockOutcome outcome;
  outcome.record = settled.record;
  outcome.generation = block.generation;
  outcome.duration = settled.at - block.started;
  return outcome;
}

bool InstancePair::IsFinished(const PendingBlock& pending) const {
  return pending.known_.has_value() || pipeline_->IsSettled(*pending.ticket_);
}

absl::Status InstancePair::SettleBlock(const InFlightBlock& block,
                                       const absl::StatusOr<store::BlockRecord>& durable) {
  Events events;
  // Null when the instance was given up while the block was in flight (UnsettledInstances).
  const Lease ran_on = unsettled_.Take(block.height);
  if (!durable.ok()) {
    // The instance has seen a block that is not committed: it must not serve again.
    absl::Status status = CommitFailure(block.height, durable.status());
    if (ran_on != nullptr) slots_.RetireFailed(ran_on, status, CallKind::kBlock, events);
    PairEvent failed = MakeEvent(PairEvent::Kind::kBlockFailed, block.generation);
    failed.height = block.height;
    failed.call = CallKind::kBlock;
    DescribeFailure(status, failed);
    events.push_back(failed);
    Emit(events);
    return status;
  }
  slots_.BlockCommitted(ran_on, block.height);
  if (ran_on != nullptr) {
    switch (rules_->AfterBlockCommitted()) {
      case AfterBlock::kPublish:
        slots_.Publish(ran_on, SwapReason::kBlock, absl::Now(), events);
        break;
      case AfterBlock::kKeepActive:
        slots_.AfterCall(ran_on, events);
        break;
      case AfterBlock::kReplaceNow:
        break;  // BeginBlock replaces it, under the ingest lock, once this returns.
    }
  }
  PairEvent committed = MakeEvent(PairEvent::Kind::kBlockCommitted, block.generation);
  committed.height = block.height;
  committed.duration = absl::Now() - block.started;
  events.push_back(committed);
  Emit(events);
  return absl::OkStatus();
}

void InstancePair::ReplaceActiveSynchronously(const Lease& ran_on, Events& events) {
  // The baseline: a new instance on the critical path, after every block.
  const uint64_t generation = slots_.NextGeneration();
  const absl::Time started = absl::Now();
  absl::StatusOr<Lease> fresh = factory_.Make(generation, options_.warm_deadline);
  if (fresh.ok()) {
    slots_.Publish(*std::move(fresh), SwapReason::kSync, absl::Now(), events);
    return;
  }
  slots_.VacateActive(ran_on, SwapReason::kFailure, events);
  PairEvent event = MakeEvent(PairEvent::Kind::kWarmFailed, generation);
  event.call = CallKind::kWarm;
  event.duration = absl::Now() - started;
  DescribeFailure(fresh.status(), event);
  events.push_back(event);
}

// ---------------------------------------------------------------------------------------------
// Views

absl::StatusOr<Lease> InstancePair::InstanceForView(uint32_t height, bool& fresh, Events& events) {
  fresh = false;
  if (Lease serving = slots_.ForHeight(height, events); serving != nullptr) return serving;
  // No instance has seen `height`: a fresh one from the pool answers there, and is kept for it.
  fresh = true;
  return slots_.TakeStandby(Claim::kView, absl::Now() + options_.standby_wait, events);
}

absl::StatusOr<ViewOutcome> InstancePair::View(absl::string_view name,
                                               std::optional<uint32_t> height,
                                               absl::string_view request) {
  TANDEM_RETURN_IF_ERROR(module_.CheckCallableExport(name));
  const std::optional<uint32_t> tip = slots_.tip();
  if (!tip.has_value()) return absl::NotFoundError("no block has been committed yet");
  const uint32_t resolved = height.value_or(*tip);
  if (resolved > *tip) {
    return absl::NotFoundError(absl::StrCat("height ", resolved, " is above the tip ", *tip));
  }
  if (resolved != *tip) {
    std::optional<uint32_t> start = store_.GetStartHeight();
    if (!start.has_value() || resolved < *start) {
      return absl::NotFoundError(
          absl::StrCat("height ", resolved, " is below the first height this node indexes"));
    }
  }

  bool fresh = false;
  Lease lease;
  absl::StatusOr<engine::CallResult> result = RunOnHealthyInstance<engine::CallResult>(
      CallKind::kView, [&](Events& events) { return InstanceForView(resolved, fresh, events); },
      [&](const Lease& on) {
        return on->instance().RunView(name, resolved, request, reader_, options_.view_deadline);
      },
      lease);
  if (!result.ok()) return result.status();
  Events events;
  if (fresh) {
    slots_.KeepForHeight(resolved, lease);
  } else {
    slots_.AfterCall(lease, events);
  }
  Emit(events);
  return ViewOutcome{std::move(result->answer), resolved, lease->generation()};
}

// ---------------------------------------------------------------------------------------------
// Rollback, init calls, manual swaps, status

absl::Status InstancePair::Rollback(std::optional<uint32_t> height) {
  util::MutexLock ingest(&ingest_mu_);
  // A block settled after the rollback would move the tip back up.
  TANDEM_RETURN_IF_ERROR(SettleBlocksInFlight());
  TANDEM_RETURN_IF_ERROR(store_.Rollback(height));
  Events events;
  PairEvent event = MakeEvent(PairEvent::Kind::kRolledBack);
  event.height = height.value_or(0);
  if (!height.has_value()) event.cause = "every block: the chain is empty";
  events.push_back(event);
  // No guest memory may remember an undone block.
  slots_.RolledBack(StoredTip(store_), events);
  Emit(events);
  return absl::OkStatus();
}

absl::StatusOr<InitOutcome> InstancePair::Initialize(absl::string_view name,
                                                     absl::string_view payload) {
  util::MutexLock ingest(&ingest_mu_);
  // The active must not be failed or replaced by a block in flight after it ran the call.
  TANDEM_RETURN_IF_ERROR(SettleBlocksInFlight());
  TANDEM_RETURN_IF_ERROR(module_.CheckCallableExport(name));
  const store::ReplayLogLimits& limits = store_.replay_log().limits();
  store::ReplayLogStats stats = store_.replay_log().Stats();
  if (stats.calls + 1 > limits.max_calls ||
      stats.bytes + name.size() + payload.size() + 32 > limits.max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "replay log full: ", stats.calls, " calls and ", stats.bytes, " bytes of at most ",
        limits.max_calls, " calls and ", limits.max_bytes, " bytes"));
  }
  Lease lease;
  absl::StatusOr<engine::CallResult> result = RunOnHealthyInstance<engine::CallResult>(
      CallKind::kInit,
      [&](Events& events) { return slots_.Active(absl::Now() + options_.standby_wait, events); },
      [&](const Lease& on) {
        return on->instance().RunInit(name, payload, options_.init_deadline);
      },
      lease);
  if (!result.ok()) return result.status();

  const std::string digest = store::Sha256(result->answer);
  Events events;
  absl::Status recorded = store_.replay_log().Append(
      store::ReplayCall{std::string(name), std::string(payload), digest});
  if (!recorded.ok()) {
    // The init call ran on the active but is not in the log: the active's memory no longer
    // matches what a replay reproduces, so it is replaced.
    slots_.RetireFailed(lease, recorded, CallKind::kInit, events);
    Emit(events);
    return recorded;
  }
  slots_.ReplayLogChanged("an init call made it stale", events);
  PairEvent event = MakeEvent(PairEvent::Kind::kInitCall, lease->generation());
  event.cause = std::string(name);
  events.push_back(event);
  Emit(events);
  return InitOutcome{std::move(result->answer), digest, store_.replay_log().Stats().calls};
}

absl::StatusOr<ReplayLogResetOutcome> InstancePair::ResetReplayLog(
    std::optional<uint64_t> keep_calls) {
  util::MutexLock ingest(&ingest_mu_);
  TANDEM_RETURN_IF_ERROR(SettleBlocksInFlight());
  ReplayLogResetOutcome outcome;
  TANDEM_ASSIGN_OR_RETURN(outcome.dropped_calls,
                          store_.replay_log().Truncate(keep_calls.value_or(0)));
  outcome.replay_log_calls = store_.replay_log().Stats().calls;
  const std::string cause = absl::StrCat("replay log reset: dropped ", outcome.dropped_calls,
                                         " init calls, kept ", outcome.replay_log_calls);
  Events events;
  if (outcome.dropped_calls > 0) slots_.ReplayLogReset(cause, events);
  PairEvent event = MakeEvent(PairEvent::Kind::kReplayLogReset);
  event.cause = cause;
  event.replay_log_calls_dropped = outcome.dropped_calls;
  event.replay_log_calls = outcome.replay_log_calls;
  events.insert(events.begin(), event);
  Emit(events);
  return outcome;
}

absl::StatusOr<SwapOutcome> InstancePair::Swap(absl::Duration wait) {
  Events events;
  const absl::Time wait_start = absl::Now();
  absl::StatusOr<Lease> next = slots_.TakeStandby(Claim::kManualSwap, wait_start + wait, events);
  if (!next.ok()) {
    Emit(events);
    return next.status();
  }
  SwapOutcome outcome;
  const absl::Time pause_start = absl::Now();
  outcome.waited = pause_start - wait_start;
  outcome.generation = (*next)->generation();
  const Published published = slots_.Publish(*next, SwapReason::kManual, pause_start, events);
  outcome.previous_generation = published.previous_generation;
  outcome.pause = published.pause;
  Emit(events);
  return outcome;
}

uint64_t InstancePair::ReclaimGuestMemory(uint64_t /*wanted*/) {
  // Every cache goes at once: what one cached instance holds is only known from its last call.
  Events events;
  const uint64_t bytes = slots_.ShrinkCaches(events);
  Emit(events);
  return bytes;
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
    slot.memory_ratio = slots_.MemoryRatio(*lease);
    slot.calls_completed = lease->instance().calls_completed();
    return slot;
  };
  const SlotsSnapshot snapshot = slots_.Snapshot();
  status.tip = snapshot.tip;
  status.active = describe(snapshot.active);
  status.standby = describe(snapshot.first_ready);
  status.standby_state = snapshot.standby_state;
  status.standby_failure = snapshot.last_warm_failure;
  status.consecutive_warm_failures = snapshot.consecutive_warm_failures;
  status.swap_due = snapshot.swap_due;
  status.standbys_ready = snapshot.ready;
  status.standbys_warming = snapshot.warming;
  status.standbys_wanted = snapshot.wanted;
  status.historical_instances = snapshot.historical_instances;
  status.historical_instances_limit = static_cast<uint64_t>(options_.historical_instances);
  status.unsettled_instances = unsettled_.held();
  status.unsettled_instances_given_up = unsettled_.given_up();
  status.workers = factory_.WorkerStats();
  store::ReplayLogStats log = store_.replay_log().Stats();
  status.replay_log_calls = log.calls;
  status.replay_log_bytes = log.bytes;
  return status;
}

}  // namespace tandem::proxy
