// The blocks that ran and whose commits the store has queued, settled one at a time and in height
// order by a thread of its own once each is durable or has failed. It decides nothing about
// instances: the pair says what settling a block does.
#include "proxy/commit_pipeline.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "util/failure_cause.h"

namespace tandem::proxy {

CommitPipeline::CommitPipeline(store::BlockStore& store, Settle settle)
    : store_(store), settle_(std::move(settle)) {
  thread_ = std::thread([this] { SettleLoop(); });
}

CommitPipeline::~CommitPipeline() {
  {
    util::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

std::shared_ptr<CommitPipeline::Ticket> CommitPipeline::Add(InFlightBlock block) {
  auto ticket = std::make_shared<Ticket>(std::move(block));
  util::MutexLock lock(&mu_);
  in_flight_.push_back(ticket);
  return ticket;
}

absl::StatusOr<CommitPipeline::Settled> CommitPipeline::Await(const Ticket& ticket,
                                                              absl::Time deadline) {
  util::MutexLock lock(&mu_);
  const bool settled = mu_.AwaitWithDeadline(
      [&ticket]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return ticket.settled_.has_value(); }, deadline);
  if (settled) return *ticket.settled_;
  return util::CausedError(
      absl::StatusCode::kDeadlineExceeded, util::FailureCause::kHostError,
      absl::StrCat("block ", ticket.block().height,
                   " ran, but its commit was not durable by the deadline (the disk is slow or "
                   "stuck); whether it commits is not known yet: GetBlock tells, and resubmitting "
                   "it is safe"));
}

bool CommitPipeline::IsSettled(const Ticket& ticket) const {
  util::MutexLock lock(&mu_);
  return ticket.settled_.has_value();
}

absl::Status CommitPipeline::Drain(absl::Time deadline) {
  util::MutexLock lock(&mu_);
  const bool drained = mu_.AwaitWithDeadline(
      [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return in_flight_.empty(); }, deadline);
  if (drained) return absl::OkStatus();
  return util::CausedError(
      absl::StatusCode::kDeadlineExceeded, util::FailureCause::kHostError,
      absl::StrCat("block ", in_flight_.front()->block().height,
                   " is still being committed (the disk is slow or stuck); retry"));
}

std::optional<CommitPipeline::Newest> CommitPipeline::Last() const {
  util::MutexLock lock(&mu_);
  if (in_flight_.empty()) return std::nullopt;
  const InFlightBlock& newest = in_flight_.back()->block();
  return Newest{newest.height, newest.hash};
}

void CommitPipeline::SettleLoop() {
  for (;;) {
    std::shared_ptr<Ticket> next;
    {
      util::MutexLock lock(&mu_);
      mu_.Await([this]()
                    ABSL_NO_THREAD_SAFETY_ANALYSIS { return stopping_ || !in_flight_.empty(); });
      if (in_flight_.empty()) return;  // Stopping, with every block settled.
      next = in_flight_.front();
    }
    // The store's wait ends when its commit thread has written the block or dropped it; a write
    // takes what the disk takes, and callers bound their own waits in Await.
    const absl::StatusOr<store::BlockRecord> durable = store_.WaitDurable(next->block().height);
    const absl::Status outcome = settle_(next->block(), durable);
    util::MutexLock lock(&mu_);
    if (!outcome.ok()) {
      next->settled_ = outcome;
    } else if (!durable.ok()) {
      next->settled_ = durable.status();  // `settle` must not turn a failed write into success.
    } else {
      next->settled_ = Settled{*durable, absl::Now()};
    }
    in_flight_.pop_front();
  }
}

}  // namespace tandem::proxy
