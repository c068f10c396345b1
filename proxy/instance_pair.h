// The instance pair: an active instance that serves and a standby warmed in the background,
// swapped atomically by policy. It owns every instance; the store only stores.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "engine/call_types.h"
#include "engine/instance.h"
#include "engine/module.h"
#include "proxy/events.h"
#include "proxy/reaper.h"
#include "proxy/store_reader.h"
#include "store/block_store.h"
#include "util/mutex.h"

namespace tandem::proxy {

struct PairOptions {
  SwapPolicy policy = SwapPolicy::kBlock;
  // Fractions of the memory cap: `threshold` starts warming at warm_at and swaps at swap_at.
  double warm_at = 0.70;
  double swap_at = 0.90;
  absl::Duration block_deadline = absl::Seconds(60);
  absl::Duration view_deadline = absl::Seconds(5);
  absl::Duration init_deadline = absl::Seconds(60);
  absl::Duration warm_deadline = absl::Seconds(60);
  // How long a call waits for a READY instance when the policy needs one (a fresh instance for a
  // block under `block`, any instance after a failure) before it fails with UNAVAILABLE.
  absl::Duration standby_wait = absl::Seconds(10);
  // Failed warms are retried after base * 2^(failures-1), capped, with +-25% jitter.
  absl::Duration warm_retry_base = absl::Seconds(1);
  absl::Duration warm_retry_cap = absl::Seconds(30);
  // Instances kept for views at heights below the tip, each bound to one height.
  int historical_instances = 2;
  // Passed to every instance (log sink, block write limit, log limits).
  engine::InstanceOptions instance;
  // Seeds the retry jitter; tests fix it.
  uint64_t random_seed = 0;
};

// What a submitted block must carry.
struct BlockSubmission {
  uint32_t height = 0;
  std::string bytes;
  std::string hash;                      // 32 bytes, or empty: SHA-256 of the bytes.
  std::optional<std::string> prev_hash;  // 32 bytes when given: checked against height - 1.
};

struct BlockOutcome {
  store::BlockRecord record;
  // True when the height was already committed with the same hash and nothing ran.
  bool already_committed = false;
  uint64_t generation = 0;  // The instance that ran the block (0 when nothing ran).
  absl::Duration duration;
};

struct ViewOutcome {
  std::string answer;
  uint32_t height = 0;  // The height the view was answered at ("latest" resolved).
  uint64_t generation = 0;
};

struct InitOutcome {
  std::string answer;
  std::string digest;  // SHA-256 of the answer, as recorded in the replay log.
  uint64_t replay_log_calls = 0;
};

struct SwapOutcome {
  uint64_t previous_generation = 0;
  uint64_t generation = 0;
  absl::Duration waited;  // Waiting for a READY standby.
  absl::Duration pause;   // No call could start during this.
};

struct SlotStatus {
  bool present = false;
  uint64_t generation = 0;
  uint64_t memory_bytes = 0;
  double memory_ratio = 0;  // Of the cap.
  uint64_t calls_completed = 0;
  engine::MemoryReadout memory;
};

struct PairStatus {
  SwapPolicy policy;
  double warm_at = 0;
  double swap_at = 0;
  uint64_t memory_limit_bytes = 0;
  std::optional<uint32_t> tip;
  SlotStatus active;
  SlotStatus standby;
  StandbyState standby_state = StandbyState::kEmpty;
  std::string standby_failure;  // The cause of the last failed warm, when FAILED.
  int consecutive_warm_failures = 0;
  bool swap_due = false;  // A threshold swap is due and waits for a READY standby.
  uint64_t replay_log_calls = 0;
  uint64_t replay_log_bytes = 0;
  uint64_t historical_instances = 0;
};

class ManagedInstance;

// Two slots, active and standby, over one compiled module and one store.
//
// Threading: every public method is thread-safe. Blocks, rollbacks and init calls are serialized
// (ingest_mu_); views run concurrently with them and with each other. mu_ guards the slots and
// is held only for pointer swaps and bookkeeping, never across a guest call, so a swap's pause is
// the time to move a few pointers. A call holds a lease (shared ownership) on the instance it
// started on: a swap never interrupts it, and the last lease hands the instance to the reaper
// thread, which destroys it off the hot path. A warmer thread keeps the standby slot filled.
//
// Errors (absl codes, as the gRPC facade maps them):
//   INVALID_ARGUMENT     malformed input (hash length, ...).
//   FAILED_PRECONDITION  height is not tip+1, parent mismatch, committed with another hash.
//   NOT_FOUND            no such view export, no such height.
//   DEADLINE_EXCEEDED    a guest call ran past its deadline (host outcome: retry).
//   RESOURCE_EXHAUSTED   replay log full.
//   ABORTED              the guest trapped, aborted, or flushed badly (the block is bad).
//   UNAVAILABLE          no instance ready in time; a host failure (memory, store).
class InstancePair {
 public:
  // Starts the warmer and reaper threads; the first instance is warmed with the replay log.
  // REQUIRES: `module`, `store` and `events` (may be null) outlive the pair.
  InstancePair(const engine::Module& module, store::BlockStore& store, PairOptions options,
               PairEventSink* events);
  // REQUIRES: no call in flight. Stops the threads and destroys every instance.
  ~InstancePair();
  InstancePair(const InstancePair&) = delete;
  InstancePair& operator=(const InstancePair&) = delete;

  // Waits until an instance is READY to serve (the first warm-up), at most `timeout`.
  // UNAVAILABLE with the last warm failure when none is.
  absl::Status WaitUntilReady(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);

  // Runs the block on an instance as the policy says and commits its writes atomically.
  absl::StatusOr<BlockOutcome> SubmitBlock(const BlockSubmission& block)
      ABSL_LOCKS_EXCLUDED(mu_, ingest_mu_);

  // Calls the view export `name`; `height` std::nullopt means the tip, resolved when the view
  // starts. NOT_FOUND for a height that is not committed or an unknown export.
  absl::StatusOr<ViewOutcome> View(absl::string_view name, std::optional<uint32_t> height,
                                   absl::string_view request) ABSL_LOCKS_EXCLUDED(mu_);

  // Rolls the store back to `height` and replaces every instance that has seen a height above it.
  absl::Status Rollback(uint32_t height) ABSL_LOCKS_EXCLUDED(mu_, ingest_mu_);

  // Runs an init call on the active, appends it with its result digest to the replay log, and
  // makes the standby stale (it is warmed again with the longer log).
  absl::StatusOr<InitOutcome> Initialize(absl::string_view name, absl::string_view payload)
      ABSL_LOCKS_EXCLUDED(mu_, ingest_mu_);

  // Publishes the standby as the active, waiting at most `wait` for it to be READY.
  absl::StatusOr<SwapOutcome> Swap(absl::Duration wait) ABSL_LOCKS_EXCLUDED(mu_);

  PairStatus Status() const ABSL_LOCKS_EXCLUDED(mu_);
  const PairOptions& options() const { return options_; }

 private:
  using Lease = std::shared_ptr<ManagedInstance>;
  using Events = std::vector<PairEvent>;

  // Creates an instance and replays the init log into it, within warm_deadline (or `deadline`).
  absl::StatusOr<Lease> Warm(uint64_t generation, absl::Duration deadline) ABSL_LOCKS_EXCLUDED(mu_);
  void WarmerMain() ABSL_LOCKS_EXCLUDED(mu_);
  // True while the warmer should fill the standby slot.
  bool StandbyWantedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Waits at most `wait` for a READY standby and takes it out of its slot (the warmer then warms
  // the next one). UNAVAILABLE naming the standby's state when none becomes READY.
  absl::StatusOr<Lease> TakeStandbyLocked(absl::Duration wait) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The active, promoting the standby (waiting at most `wait`) when there is none.
  absl::StatusOr<Lease> ActiveLocked(absl::Duration wait, Events& events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Publishes `next` as the active; the old one goes to `released` (dropped outside the lock).
  void PublishActiveLocked(Lease next, SwapReason reason, absl::Time pause_start, Events& events,
                           std::vector<Lease>& released) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After a call on the active: records its memory and applies the threshold policy.
  void AfterActiveCallLocked(const Lease& lease, Events& events, std::vector<Lease>& released)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A call failed `lease`'s instance: remove it from wherever it is published.
  void RetireFailedLocked(const Lease& lease, const absl::Status& cause, Events& events,
                          std::vector<Lease>& released) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes the READY standby out of its slot (the warmer then warms the next one).
  // REQUIRES: standby_ is not null.
  Lease TakeReadyStandbyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Retires the active (to `released`) for `reason`, promoting a READY standby at once.
  void VacateActiveLocked(SwapReason reason, Events& events, std::vector<Lease>& released)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Keeps `lease` for views at `height` (LRU of historical_instances); what does not fit, or a
  // height already served, goes to `released`.
  void KeepForHeightLocked(uint32_t height, Lease lease, std::vector<Lease>& released)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the standby and any warm in progress (its log or heights are stale).
  void DiscardStandbyLocked(absl::string_view cause, Events& events, std::vector<Lease>& released)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Lease> HistoricalInstance(uint32_t height) ABSL_LOCKS_EXCLUDED(mu_);

  absl::StatusOr<BlockOutcome> RunAndCommit(const BlockSubmission& block, const std::string& hash,
                                            const Lease& lease, absl::Time started)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ingest_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::optional<BlockOutcome>> CheckSubmission(const BlockSubmission& block,
                                                              std::string& hash)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ingest_mu_);
  void Emit(const Events& events) const ABSL_LOCKS_EXCLUDED(mu_);
  double MemoryRatio(const ManagedInstance& instance) const;

  // Constant after construction.
  const engine::Module& module_;
  store::BlockStore& store_;
  const PairOptions options_;
  PairEventSink* const events_;
  const StoreReader reader_;
  // Destroys released instances off the hot path. Declared first among the owners so that it
  // outlives every lease the pair holds.
  std::unique_ptr<Reaper<ManagedInstance>> reaper_;

  // Serializes blocks, rollbacks and init calls: each changes what instances have seen.
  util::Mutex ingest_mu_ ABSL_ACQUIRED_BEFORE(mu_);

  mutable util::Mutex mu_;
  Lease active_ ABSL_GUARDED_BY(mu_);
  double active_memory_ratio_ ABSL_GUARDED_BY(mu_) = 0;
  Lease standby_ ABSL_GUARDED_BY(mu_);  // Non-null exactly when standby_state_ is kReady.
  StandbyState standby_state_ ABSL_GUARDED_BY(mu_) = StandbyState::kEmpty;
  uint64_t warming_generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::string standby_failure_ ABSL_GUARDED_BY(mu_);
  int consecutive_warm_failures_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time next_warm_attempt_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // Bumped whenever what a new instance must replay changes (init call, rollback): a warm that
  // started under an older epoch is discarded.
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_generation_ ABSL_GUARDED_BY(mu_) = 1;
  std::optional<uint32_t> tip_ ABSL_GUARDED_BY(mu_);
  bool swap_due_ ABSL_GUARDED_BY(mu_) = false;
  // Why the active slot is empty: reported as the reason of the swap that fills it.
  SwapReason vacancy_reason_ ABSL_GUARDED_BY(mu_) = SwapReason::kStartup;
  // Set by Swap() under policies that do not keep a standby warm, so the warmer makes one.
  int swap_requests_ ABSL_GUARDED_BY(mu_) = 0;
  // Instances bound to heights below the tip, for views there; LRU order in historical_order_.
  std::map<uint32_t, Lease> historical_ ABSL_GUARDED_BY(mu_);
  std::deque<uint32_t> historical_order_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::minstd_rand jitter_ ABSL_GUARDED_BY(mu_);

  std::thread warmer_;
};

}  // namespace tandem::proxy
