// The pair's slots under one lock: the active, the READY standbys, the instances kept for past
// heights, and the counters that name instances (generation) and their replay log (epoch).
// It keeps the slots' invariants; it never runs a guest call and never makes an instance.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proxy/events.h"
#include "proxy/height_cache.h"
#include "proxy/managed_instance.h"
#include "proxy/swap_rules.h"
#include "proxy/warm_backoff.h"
#include "util/mutex.h"

namespace tandem::proxy {

using Events = std::vector<PairEvent>;

struct SlotTableOptions {
  // Instances kept for views at heights below the tip, one height each.
  int historical_instances = 1;
  // Views at uncached heights that may wait for a fresh standby at once; more are refused.
  int max_waiting_views = 16;
  WarmBackoff backoff;
  // Seeds the retry jitter; tests fix it.
  uint64_t random_seed = 0;
  // The guest memory cap, for memory ratios.
  uint64_t memory_limit_bytes = 1;
};

// What a publication did.
struct Published {
  uint64_t previous_generation = 0;  // 0 when the active slot was empty.
  absl::Duration pause;              // No call could start during this.
};

// Who takes a standby. Blocks go first: a view never takes the standby a waiting block needs.
enum class Claim { kBlock, kView, kManualSwap };

// A warm-up the warmer was asked to make.
struct WarmTicket {
  uint64_t generation = 0;
  uint64_t epoch = 0;
};

// The slots as they are at one moment, for status and metrics.
struct SlotsSnapshot {
  Lease active;
  Lease first_ready;
  int ready = 0;
  int warming = 0;
  int wanted = 0;
  StandbyState standby_state = StandbyState::kEmpty;
  std::string last_warm_failure;
  int consecutive_warm_failures = 0;
  bool swap_due = false;
  std::optional<uint32_t> tip;
  int historical_instances = 0;
};

// Invariants, kept by every method:
//   - the active slot is never empty while a READY standby exists (a vacancy is filled at once);
//   - READY standbys have replayed the current replay log (an init call discards older ones);
//   - an instance serves views only at the height it is bound to (the active at its bound height,
//     kept instances at theirs);
//   - an instance's failure is reported once.
//
// Threading: every method is thread-safe. mu_ is held only for pointer moves and bookkeeping;
// waits release it. Methods that change slots append the events to emit to `events`, which the
// caller emits after the call, with no lock held.
class SlotTable {
 public:
  // REQUIRES: `rules` outlives the table.
  SlotTable(const SwapRules& rules, SlotTableOptions options, std::optional<uint32_t> tip);
  SlotTable(const SlotTable&) = delete;
  SlotTable& operator=(const SlotTable&) = delete;

  // Ends every wait: waiting callers get UNAVAILABLE (kShutdown), warmers stop.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);
  // Drops every instance the table holds.
  void Clear() ABSL_LOCKS_EXCLUDED(mu_);

  // ---- Instances for calls

  // The instance that answers at `height`: the active when it is bound there (after a due
  // threshold swap), else the one kept for `height`; null when there is neither.
  Lease ForHeight(uint32_t height, Events& events) ABSL_LOCKS_EXCLUDED(mu_);
  // The active; an empty slot is filled by the next READY standby, waited for until `deadline`.
  // UNAVAILABLE (kNoReadyInstance, or kShutdown) when none comes.
  absl::StatusOr<Lease> Active(absl::Time deadline, Events& events) ABSL_LOCKS_EXCLUDED(mu_);
  // Takes a READY standby out of the pool, waiting until `deadline` (blocks before views and
  // swaps). UNAVAILABLE (kNoReadyInstance, or kShutdown) when none comes; RESOURCE_EXHAUSTED
  // when a view would make more than max_waiting_views views wait.
  absl::StatusOr<Lease> TakeStandby(Claim claim, absl::Time deadline, Events& events)
      ABSL_LOCKS_EXCLUDED(mu_);

  // ---- What calls did

  // Publishes `next` as the active for `reason`. The previous active is kept for views at its
  // height after a block swap; otherwise dropped (calls in flight finish on it). `next` is bound
  // to the tip when it has seen no height yet.
  Published Publish(Lease next, SwapReason reason, absl::Time pause_start, Events& events)
      ABSL_LOCKS_EXCLUDED(mu_);
  // `lease` served a view at `height` after being taken fresh: keep it for that height, unless an
  // init call made it stale meanwhile.
  void KeepForHeight(uint32_t height, Lease lease) ABSL_LOCKS_EXCLUDED(mu_);
  // After a successful call on `lease`: records the active's memory and applies a due swap.
  void AfterCall(const Lease& lease, Events& events) ABSL_LOCKS_EXCLUDED(mu_);
  // A `call` failed `lease` with `cause`: it leaves every slot (an active is replaced at once when
  // a standby is READY). Reported once per instance.
  void RetireFailed(const Lease& lease, const absl::Status& cause, CallKind call, Events& events)
      ABSL_LOCKS_EXCLUDED(mu_);
  // A call found `lease` failed by another call before it could start: it leaves every slot, as
  // in RetireFailed, and the call that failed it reports the failure.
  void Withdraw(const Lease& lease, Events& events) ABSL_LOCKS_EXCLUDED(mu_);

  // ---- Chain and replay log

  // A block committed at `height` after running on `ran_on`: the tip is `height`, and `ran_on`
  // has seen it. `ran_on` is null when the pair gave the instance up while the block was in
  // flight (UnsettledInstances): then only the tip moves.
  void BlockCommitted(const Lease& ran_on, uint32_t height) ABSL_LOCKS_EXCLUDED(mu_);
  // Empties the active slot if `expected` still fills it (the `sync` baseline could not replace
  // it); the next READY standby fills it.
  void VacateActive(const Lease& expected, SwapReason reason, Events& events)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The chain was rolled back to `tip`: no instance that has seen a height above it serves again.
  void RolledBack(std::optional<uint32_t> tip, Events& events) ABSL_LOCKS_EXCLUDED(mu_);
  // An init call was recorded: READY standbys and kept instances lack it and are dropped; a
  // warm-up in progress is discarded when it ends.
  void ReplayLogChanged(absl::string_view cause, Events& events) ABSL_LOCKS_EXCLUDED(mu_);
  // The replay log lost its last calls (an operator's reset): every instance that replayed or
  // ran them leaves its slot (the active too: its memory holds what a replay no longer makes),
  // a warm-up in progress is discarded when it ends, and warming starts again at once (the
  // failures that the dropped calls caused say nothing about the next attempt).
  void ReplayLogReset(absl::string_view cause, Events& events) ABSL_LOCKS_EXCLUDED(mu_);
  // The host ran short of memory: drops the caches, i.e. the instances kept for past heights and
  // every READY standby but the oldest (the next block's fresh instance). Returns the linear
  // memory the dropped instances held (their workers release it soon after); appends a
  // kStandbyDiscarded event per dropped standby.
  uint64_t ShrinkCaches(Events& events) ABSL_LOCKS_EXCLUDED(mu_);

  // ---- The warmer's side

  // Waits until a standby is wanted and any retry backoff has passed, then reserves a warm-up.
  // std::nullopt once stopped.
  std::optional<WarmTicket> AwaitWarmNeeded(Events& events) ABSL_LOCKS_EXCLUDED(mu_);
  // Hands in what the warm-up of `ticket` made (or why it failed), after `took`.
  void DeliverWarmed(const WarmTicket& ticket, absl::StatusOr<Lease> warmed, absl::Duration took,
                     Events& events) ABSL_LOCKS_EXCLUDED(mu_);
  // A generation number for an instance made outside the warmer (the `sync` baseline).
  uint64_t NextGeneration() ABSL_LOCKS_EXCLUDED(mu_);

  SlotsSnapshot Snapshot() const ABSL_LOCKS_EXCLUDED(mu_);
  std::optional<uint32_t> tip() const ABSL_LOCKS_EXCLUDED(mu_);
  double MemoryRatio(const ManagedInstance& instance) const;

 private:
  int WantedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Fills an empty active slot, and applies a due threshold swap, from the READY standbys.
  void ServeFromPoolLocked(Events& events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Published PublishLocked(Lease next, SwapReason reason, absl::Time pause_start, Events& events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void VacateActiveLocked(SwapReason reason, Events& events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Lease PopReadyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status NoInstanceLocked(absl::Duration waited) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  StandbyState StandbyStateLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const SwapRules& rules_;
  const SlotTableOptions options_;

  mutable util::Mutex mu_;
  Lease active_ ABSL_GUARDED_BY(mu_);
  double active_memory_ratio_ ABSL_GUARDED_BY(mu_) = 0;
  // Why the active slot is empty: the reason of the swap that fills it.
  SwapReason vacancy_reason_ ABSL_GUARDED_BY(mu_) = SwapReason::kStartup;
  // READY standbys, oldest first.
  std::deque<Lease> ready_ ABSL_GUARDED_BY(mu_);
  int warming_ ABSL_GUARDED_BY(mu_) = 0;
  // Callers waiting in TakeStandby, by claim: each asks the warmer for one more.
  int waiting_blocks_ ABSL_GUARDED_BY(mu_) = 0;
  int waiting_others_ ABSL_GUARDED_BY(mu_) = 0;
  int waiting_views_ ABSL_GUARDED_BY(mu_) = 0;
  HeightCache kept_ ABSL_GUARDED_BY(mu_);
  bool swap_due_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<uint32_t> tip_ ABSL_GUARDED_BY(mu_);
  // Bumped whenever what a new instance must replay changes; READY standbys are always current.
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_generation_ ABSL_GUARDED_BY(mu_) = 1;
  std::string last_warm_failure_ ABSL_GUARDED_BY(mu_);
  int consecutive_warm_failures_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time next_warm_attempt_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::minstd_rand jitter_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tandem::proxy
