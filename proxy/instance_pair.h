// The instance pair: the façade over an active instance that serves and a pool of standbys warmed
// in the background, swapped atomically by policy. It owns every instance; the store only stores.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "engine/call_types.h"
#include "engine/guest_memory_ledger.h"
#include "engine/instance.h"
#include "engine/module.h"
#include "engine/worker_pool.h"
#include "proxy/commit_pipeline.h"
#include "proxy/events.h"
#include "proxy/instance_factory.h"
#include "proxy/managed_instance.h"
#include "proxy/slot_table.h"
#include "proxy/store_reader.h"
#include "proxy/swap_rules.h"
#include "proxy/unsettled_instances.h"
#include "proxy/warmer.h"
#include "store/block_store.h"
#include "util/mutex.h"

namespace tandem::proxy {

struct PairOptions {
  SwapPolicy policy = SwapPolicy::kBlock;
  // Fractions of the memory cap: `threshold` starts warming at warm_at and swaps at swap_at.
  double warm_at = 0.70;
  double swap_at = 0.90;
  // READY standbys kept under `block` and `none` (and `threshold` past warm_at).
  int standby_pool = 2;
  // Warm-ups that run at once (each on its own worker).
  int warm_threads = 2;
  // Under `block`, the instances that ran blocks not yet settled, kept to become the active when
  // their blocks settle (UnsettledInstances says what happens past this). Each holds a guest
  // memory and a worker.
  int max_unsettled_instances = 2;
  absl::Duration block_deadline = absl::Seconds(60);
  absl::Duration view_deadline = absl::Seconds(5);
  absl::Duration init_deadline = absl::Seconds(60);
  absl::Duration warm_deadline = absl::Seconds(60);
  // How long a call waits for a READY instance when the policy needs one (a fresh instance for a
  // block under `block`, any instance after a failure) before it fails with UNAVAILABLE.
  absl::Duration standby_wait = absl::Seconds(10);
  // Failed warms are retried after base * 2^(failures-1), capped, with +-25% jitter.
  WarmBackoff warm_backoff;
  // Instances kept for views at heights below the tip, each bound to one height.
  int historical_instances = 1;
  // Views at heights with no kept instance that may wait for a fresh one at once.
  int max_waiting_views = 16;
  // The workers that host instances (heap limit, termination grace, idle workers kept).
  engine::WorkerPoolOptions workers;
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

// A block that ran and whose commit is queued (InstancePair::BeginBlock), to be acknowledged by
// InstancePair::FinishBlock once it is durable. A cheap value; copies share the block.
class PendingBlock {
 public:
  uint32_t height() const { return height_; }

 private:
  friend class InstancePair;
  uint32_t height_ = 0;
  // Known at once: a resubmission of a committed height, or a block whose commit BeginBlock
  // waited for (the `sync` baseline).
  std::optional<absl::StatusOr<BlockOutcome>> known_;
  std::shared_ptr<CommitPipeline::Ticket> ticket_;
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

struct ReplayLogResetOutcome {
  uint64_t dropped_calls = 0;
  uint64_t replay_log_calls = 0;  // Kept.
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
  SlotStatus standby;  // The oldest READY standby, when there is one.
  StandbyState standby_state = StandbyState::kEmpty;
  std::string standby_failure;  // The cause of the last failed warm, when FAILED.
  int consecutive_warm_failures = 0;
  bool swap_due = false;  // A threshold swap is due and waits for a READY standby.
  int standbys_ready = 0;
  int standbys_warming = 0;
  int standbys_wanted = 0;
  uint64_t replay_log_calls = 0;
  uint64_t replay_log_bytes = 0;
  uint64_t historical_instances = 0;          // Instances kept for past heights now.
  uint64_t historical_instances_limit = 0;    // At most this many (PairOptions).
  uint64_t unsettled_instances = 0;           // Held now by blocks in flight (UnsettledInstances).
  uint64_t unsettled_instances_given_up = 0;  // Since the pair started.
  engine::WorkerPoolStats workers;
};

// True when a call that failed with `status` ran and failed its instance (the cost a caller
// imposes: a replacement instance). False for calls that never ran or were refused up front.
bool FailedItsInstance(const absl::Status& status);

// Threading: every public method is thread-safe. Blocks, rollbacks and init calls are serialized
// (ingest_mu_); views run concurrently with them and with each other. A block holds ingest_mu_
// while it runs and its commit is queued, not while the commit is written and synced: the next
// block runs meanwhile, on the state the queued one leaves (see BeginBlock). The slot table's lock
// is held only for pointer moves and bookkeeping, never across a guest call, so a swap's pause is
// the time to move a few pointers. A call holds a lease (shared ownership) on the instance it
// started on: a swap never interrupts it. A call queued on an instance that another call failed
// never fails for it: it runs again on a healthy instance (it did not run, nothing was committed).
//
// Errors (absl codes, as the gRPC facade maps them), each with its util::FailureCause:
//   INVALID_ARGUMENT     malformed input (hash length, ...).
//   FAILED_PRECONDITION  height is not tip+1, parent mismatch, committed with another hash.
//   NOT_FOUND            no such view export, no such height.
//   DEADLINE_EXCEEDED    a guest call ran past its deadline (host outcome: retry).
//   RESOURCE_EXHAUSTED   replay log full; too many views waiting for fresh instances.
//   ABORTED              the guest trapped, aborted, or flushed badly (the block is bad).
//   UNAVAILABLE          no instance ready in time; a host failure (memory, store).
//
// As an engine::GuestMemoryReclaimer (registered by whoever wires the process), it drops its
// caches (kept instances, surplus standbys) when a guest commit would pass the host memory budget.
class InstancePair : public engine::GuestMemoryReclaimer {
 public:
  // Starts the warmers; the first instance is warmed with the replay log.
  // REQUIRES: `module`, `store` and `events` (may be null) outlive the pair.
  InstancePair(const engine::Module& module, store::BlockStore& store, PairOptions options,
               PairEventSink* events);
  // REQUIRES: no call in flight. Stops the warmers and destroys every instance and worker.
  ~InstancePair();
  InstancePair(const InstancePair&) = delete;
  InstancePair& operator=(const InstancePair&) = delete;

  // Waits until an instance is READY to serve (the first warm-up), at most `timeout`.
  // UNAVAILABLE with the last warm failure when none is.
  absl::Status WaitUntilReady(absl::Duration timeout);

  // Runs the block on an instance as the policy says and commits its writes atomically and
  // durably: FinishBlock(BeginBlock(block)).
  absl::StatusOr<BlockOutcome> SubmitBlock(const BlockSubmission& block)
      ABSL_LOCKS_EXCLUDED(ingest_mu_);

  // The first half of SubmitBlock: checks the block against the newest block queued (else the
  // tip), runs it on an instance as the policy says, and queues its commit in the store. Returns
  // once it is queued, so that the caller can begin the next block while this one is written and
  // synced; nothing about it may be reported before FinishBlock says it is durable.
  // Errors, with nothing queued: those of SubmitBlock's checks and of the guest; UNAVAILABLE
  // (kHostError) when the block before it, still in flight, failed to commit meanwhile (the
  // instance that ran this block on top of it is retired); DEADLINE_EXCEEDED when blocks in flight
  // had to be settled first (a resubmission, a height that does not follow the newest) and were
  // not within the block deadline.
  // Under `sync` it waits for the commit itself: that baseline replaces the active on the
  // critical path after every block, before the next may run.
  absl::StatusOr<PendingBlock> BeginBlock(const BlockSubmission& block)
      ABSL_LOCKS_EXCLUDED(ingest_mu_);

  // The second half: waits until `pending`'s commit is durable and the pair serves its height
  // (views at the tip see it), at most the block deadline. Returns what SubmitBlock returns.
  // Errors: the store's (UNAVAILABLE, RESOURCE_EXHAUSTED, DATA_LOSS; cause kHostError) when its
  // write, or that of a block queued before it, failed: nothing of it is committed, every block
  // queued after it fails the same way, and every instance that ran one of them is retired;
  // DEADLINE_EXCEEDED when the commit was not durable in time (it may still commit: GetBlock
  // tells).
  absl::StatusOr<BlockOutcome> FinishBlock(const PendingBlock& pending);
  // Whether FinishBlock(pending) would return without waiting: the block is settled.
  bool IsFinished(const PendingBlock& pending) const;

  // Calls the view export `name`; `height` std::nullopt means the tip, resolved when the view
  // starts. NOT_FOUND for a height that is not committed or an unknown export.
  absl::StatusOr<ViewOutcome> View(absl::string_view name, std::optional<uint32_t> height,
                                   absl::string_view request);

  // Rolls the store back to `height` and replaces every instance that has seen a height above it.
  // std::nullopt rolls every block back (the chain becomes empty, whatever its start height).
  absl::Status Rollback(std::optional<uint32_t> height) ABSL_LOCKS_EXCLUDED(ingest_mu_);

  // Runs an init call on the active, appends it with its result digest to the replay log, and
  // makes the standbys stale (they are warmed again with the longer log).
  absl::StatusOr<InitOutcome> Initialize(absl::string_view name, absl::string_view payload)
      ABSL_LOCKS_EXCLUDED(ingest_mu_);

  // Drops the replay log's calls after the first `keep_calls` (all of them when std::nullopt), the
  // operator's way out of a log that no longer replays (a non-deterministic init call fails every
  // warm-up with kReplayDiverged). When calls were dropped, every instance that has them leaves
  // its slot (the active too) and warming starts again at once; calls wait for the new instances
  // as after a failure. Emits kReplayLogReset (also when nothing was dropped).
  // INVALID_ARGUMENT when the log holds fewer than `keep_calls` calls; the store's errors.
  absl::StatusOr<ReplayLogResetOutcome> ResetReplayLog(std::optional<uint64_t> keep_calls)
      ABSL_LOCKS_EXCLUDED(ingest_mu_);

  // Publishes a READY standby as the active, waiting at most `wait` for one.
  absl::StatusOr<SwapOutcome> Swap(absl::Duration wait);

  PairStatus Status() const;
  const PairOptions& options() const { return options_; }

  // Drops the caches (SlotTable::ShrinkCaches); returns the linear memory they held. Called from
  // inside a guest commit on any instance's thread; never waits for a call.
  uint64_t ReclaimGuestMemory(uint64_t wanted) override;

 private:
  // Gets an instance from `acquire` and runs `run` on it; when the call never started because
  // its instance failed first (kInstanceLost), runs it again on the next healthy instance. A call
  // that ran and failed retires its instance. `ran_on` receives the instance of the last attempt.
  template <typename Result>
  absl::StatusOr<Result> RunOnHealthyInstance(
      CallKind kind, absl::FunctionRef<absl::StatusOr<Lease>(Events&)> acquire,
      absl::FunctionRef<absl::StatusOr<Result>(const Lease&)> run, Lease& ran_on);

  absl::StatusOr<std::optional<BlockOutcome>> CheckSubmission(const BlockSubmission& block,
                                                              std::string& hash)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ingest_mu_);
  absl::StatusOr<Lease> InstanceForView(uint32_t height, bool& fresh, Events& events);
  void ReplaceActiveSynchronously(const Lease& ran_on, Events& events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ingest_mu_);
  // True when `block` follows the newest block in flight (the store's head): it may run on the
  // state that block leaves, before that block is durable.
  bool FollowsBlockInFlight(const BlockSubmission& block) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ingest_mu_);
  // Waits until no block is in flight (bounded by the block deadline), so that the chain's tip is
  // what a rollback, an init call or a check against the durable tip sees.
  absl::Status SettleBlocksInFlight() ABSL_EXCLUSIVE_LOCKS_REQUIRED(ingest_mu_);
  // The pipeline's settle step: on the pipeline's thread, in height order.
  absl::Status SettleBlock(const InFlightBlock& block,
                           const absl::StatusOr<store::BlockRecord>& durable);
  void Emit(const Events& events) const;

  // Constant after construction. Declared in dependency order: the slots hold instances from the
  // factory's workers, and the warmer uses both, so it goes first on destruction.
  const engine::Module& module_;
  store::BlockStore& store_;
  const PairOptions options_;
  PairEventSink* const events_;
  const StoreReader reader_;
  const std::unique_ptr<SwapRules> rules_;
  InstanceFactory factory_;
  SlotTable slots_;
  std::unique_ptr<Warmer> warmer_;

  // Serializes blocks, rollbacks and init calls: each changes what instances have seen.
  util::Mutex ingest_mu_;

  // The instances that ran the blocks in flight, each published when its block settles.
  UnsettledInstances unsettled_;

  // Blocks whose commits are queued and not yet settled. Destroyed first (in ~InstancePair):
  // settling uses the slots and the event sink.
  std::unique_ptr<CommitPipeline> pipeline_;
};

}  // namespace tandem::proxy
