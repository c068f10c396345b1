// The blocks that ran and whose commits the store has queued, settled one at a time and in height
// order by a thread of its own once each is durable or has failed. It decides nothing about
// instances: the pair says what settling a block does.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "store/block_store.h"
#include "util/mutex.h"

namespace tandem::proxy {

// A block whose commit was queued (BlockStore::QueueCommit returned OK) and is not settled yet.
struct InFlightBlock {
  uint32_t height = 0;
  std::string hash;
  uint64_t generation = 0;  // The instance that ran it (the pair holds the instance itself).
  absl::Time started;
};

// Why a pipeline exists: a block's WAL write and fsync take about as long as running the next
// block, so the next block runs on the state the queued one leaves (the store's Get sees queued
// writes) while the store writes it. Nothing is acknowledged before it is durable: callers learn a
// block's outcome only from Await, after it is settled.
//
// Settling is done here, by one thread, rather than by the callers that wait: it must happen once
// per block and in height order (each settle moves the pair's tip), also for a block whose caller
// gave up waiting or went away.
//
// Threading: Add, Await, Drain and Last are thread-safe. `settle` runs on the pipeline's thread
// only, with no lock of the pipeline held.
class CommitPipeline {
 public:
  // Called once per block added, in the order they were added, with what
  // BlockStore::WaitDurable said about it. Returns what the block's caller gets: OK when it
  // committed, else the error to report (which may annotate the store's).
  using Settle = std::function<absl::Status(const InFlightBlock& block,
                                            const absl::StatusOr<store::BlockRecord>& durable)>;

  // A block's place in the pipeline, shared by the pipeline (until it is settled) and its caller.
  class Ticket;

  // A block that committed, as Await reports it.
  struct Settled {
    store::BlockRecord record;
    absl::Time at;  // When it was settled: durable, and the pair's state says so.
  };

  // Starts the settling thread. REQUIRES: `store` outlives the pipeline.
  CommitPipeline(store::BlockStore& store, Settle settle);
  // Settles every block added (the store writes every queued block before it closes), then joins
  // the thread. As long as the store's writes take: a write that never returns (a hung disk)
  // holds the store's own commit thread as well.
  ~CommitPipeline();
  CommitPipeline(const CommitPipeline&) = delete;
  CommitPipeline& operator=(const CommitPipeline&) = delete;

  // Adds a block whose commit the store has just queued.
  // REQUIRES: blocks are added in the order they were queued in the store.
  std::shared_ptr<Ticket> Add(InFlightBlock block) ABSL_LOCKS_EXCLUDED(mu_);

  // Waits until `ticket`'s block is settled, at most until `deadline`. Returns its durable record,
  // or the error `settle` returned for it. DEADLINE_EXCEEDED when it is not settled by then (it
  // still will be, and may commit: the caller cannot know).
  absl::StatusOr<Settled> Await(const Ticket& ticket, absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);

  // Whether `ticket`'s block is settled: Await would return at once.
  bool IsSettled(const Ticket& ticket) const ABSL_LOCKS_EXCLUDED(mu_);

  // Waits until every block added so far is settled, at most until `deadline`. OK, or
  // DEADLINE_EXCEEDED naming the oldest block still in flight.
  absl::Status Drain(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);

  // The newest block added and not settled yet: std::nullopt when every block is settled.
  struct Newest {
    uint32_t height = 0;
    std::string hash;
  };
  std::optional<Newest> Last() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void SettleLoop() ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after construction.
  store::BlockStore& store_;
  const Settle settle_;

  mutable util::Mutex mu_;
  // Blocks added and not settled, oldest first; the front is the one the thread waits for.
  std::deque<std::shared_ptr<Ticket>> in_flight_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  // Runs SettleLoop; started last in the constructor and joined in the destructor.
  std::thread thread_;
};

class CommitPipeline::Ticket {
 public:
  explicit Ticket(InFlightBlock block) : block_(std::move(block)) {}
  const InFlightBlock& block() const { return block_; }

 private:
  friend class CommitPipeline;
  const InFlightBlock block_;
  // Guarded by the owning pipeline's mu_ (not expressible across classes): set once, when the
  // block is settled.
  std::optional<absl::StatusOr<Settled>> settled_;
};

}  // namespace tandem::proxy
