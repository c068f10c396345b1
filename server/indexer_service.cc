#include "server/indexer_service.h"

#include <algorithm>
#include <deque>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "server/auth.h"
#include "server/convert.h"
#include "server/status_mapping.h"
#include "server/stream_window.h"
#include "util/mutex.h"

namespace tandem::server {

using tandem::v1::SubmitBlockRequest;
using tandem::v1::SubmitBlockResponse;

// One StreamBlocks call. gRPC's reactions (OnReadDone, OnWriteDone, OnCancel) only move messages
// and flags; a worker thread of the call's own runs the blocks, one at a time and in order, so a
// block that takes seconds never blocks gRPC's threads. Reads continue while a block runs
// (pipelining) until the queue holds max_queued_blocks or max_queued_bytes, and blocks run while
// the ones before them are written and synced (InstancePair::BeginBlock / FinishBlock), as many
// unanswered as the StreamWindow allows.
//
// Lifetime: deleted by whichever of the worker (after Finish) and OnDone comes last. While it
// has a worker it is registered in the service's streams_, so that shutdown can stop it.
class IndexerService::BlockStreamReactor final
    : public grpc::ServerBidiReactor<SubmitBlockRequest, SubmitBlockResponse> {
 public:
  BlockStreamReactor(IndexerService& service, grpc::CallbackServerContext* context)
      : service_(service) {
    grpc::Status auth = CheckWriter(*context, service_.access_);
    if (!auth.ok()) {
      refs_ = 1;  // No worker.
      Finish(auth);
      return;
    }
    {
      util::MutexLock streams(&service_.streams_mu_);
      if (service_.shutting_down_) {
        refs_ = 1;
        Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
        return;
      }
      service_.streams_.insert(this);
      registered_ = true;
    }
    {
      util::MutexLock lock(&mu_);
      read_pending_ = true;
    }
    StartRead(&request_);
    std::thread([this] { RunWorker(); }).detach();
  }

  ~BlockStreamReactor() override {
    if (!registered_) return;
    util::MutexLock streams(&service_.streams_mu_);
    service_.streams_.erase(this);
  }

  // Makes the worker end the stream with UNAVAILABLE at its next block boundary (at once when it
  // waits for a block). Called by BeginShutdown with the service's streams_mu_ held.
  void Stop() {
    util::MutexLock lock(&mu_);
    stopping_ = true;
  }

  void OnReadDone(bool ok) override {
    bool read_again = false;
    {
      util::MutexLock lock(&mu_);
      read_pending_ = false;
      if (!ok) {
        input_done_ = true;
        return;
      }
      absl::StatusOr<proxy::BlockSubmission> block = BlockSubmissionFromProto(request_);
      uint32_t height = request_.height();
      if (!block.ok()) {
        input_done_ = true;  // Nothing after a malformed block runs; stop reading.
      } else {
        queued_bytes_ += block->bytes.size();
      }
      queue_.push_back(Queued{height, std::move(block)});
      read_again = !input_done_ && MayReadLocked();
      read_pending_ = read_again;
    }
    if (read_again) StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    util::MutexLock lock(&mu_);
    write_pending_ = false;
    if (!ok) cancelled_ = true;  // The client is gone: no later write can succeed.
  }

  void OnCancel() override {
    util::MutexLock lock(&mu_);
    cancelled_ = true;
  }

  void OnDone() override { Unref(); }

 private:
  struct Queued {
    uint32_t height;
    absl::StatusOr<proxy::BlockSubmission> block;
  };

  bool MayReadLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return queue_.size() < service_.limits_.max_queued_blocks &&
           (queue_.empty() || queued_bytes_ < service_.limits_.max_queued_bytes);
  }

  void RunWorker() {
    grpc::Status final_status = RunBlocks();
    {
      // Every response must be out before the status.
      util::MutexLock lock(&mu_);
      auto drained = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !write_pending_ || cancelled_;
      };
      mu_.Await(drained);
    }
    Finish(final_status);
    Unref();
  }

  // Runs the blocks in order. Blocks may have run, their commits queued, before the oldest is
  // answered, as far as the window lets them (StreamLimits): the next blocks run while the
  // earlier ones are written and synced, and a slow hand-off to the settling thread delays only
  // an answer, not the next block. Each block is answered once durable: as soon as the runner
  // finds it so between two blocks, at the latest when the window is full. With nothing queued
  // behind them, the blocks in flight are answered at once (the client may be waiting for those
  // answers before it sends more). The first block that fails ends the stream with its status:
  // every block before it was answered, none after it ran to commit.
  grpc::Status RunBlocks() {
    StreamWindow<proxy::PendingBlock> in_flight(service_.limits_);
    auto answer_oldest = [&]() {
      grpc::Status answered = Answer(in_flight.oldest());
      in_flight.PopOldest();
      return answered;
    };
    for (;;) {
      std::optional<Queued> next;
      bool read_again = false;
      {
        util::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return !queue_.empty() || input_done_ || cancelled_ || stopping_;
        };
        if (in_flight.empty()) mu_.Await(ready);
        // Blocks in flight still commit; nobody is left to tell.
        if (cancelled_) return grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled");
        if (in_flight.empty()) {
          if (queue_.empty() && input_done_) return grpc::Status::OK;  // The client closed.
          if (stopping_) {
            return grpc::Status(
                grpc::StatusCode::UNAVAILABLE,
                queue_.empty() ? "server shutting down; no block was running"
                               : absl::StrCat("block at height ", queue_.front().height,
                                              ": server shutting down; resubmit from this height"));
          }
        }
        if (!stopping_ && !queue_.empty()) {
          next = std::move(queue_.front());
          queue_.pop_front();
          if (next->block.ok()) queued_bytes_ -= next->block->bytes.size();
          read_again = !read_pending_ && !input_done_ && MayReadLocked();
          read_pending_ = read_pending_ || read_again;
        }
      }
      if (read_again) StartRead(&request_);

      if (!next.has_value()) {
        // Nothing to run: answer the oldest block in flight (the loop comes back for the rest,
        // or for a block that arrived meanwhile).
        if (grpc::Status answered = answer_oldest(); !answered.ok()) return answered;
        continue;
      }
      absl::StatusOr<proxy::PendingBlock> begun =
          next->block.ok() ? service_.pair_.BeginBlock(*next->block)
                           : absl::StatusOr<proxy::PendingBlock>(next->block.status());
      if (!begun.ok()) {
        // The blocks before it are answered first: when one of them failed, so did everything
        // after it, and its failure is the one to report.
        while (!in_flight.empty()) {
          if (grpc::Status answered = answer_oldest(); !answered.ok()) return answered;
        }
        return BlockFailure(next->height, begun.status());
      }
      in_flight.Add(*std::move(begun));
      // What is durable already is answered without waiting (unless gRPC is still sending the
      // previous answer); what is not is answered once the window is full. Either way after the
      // next block began: its commit overlapped that block's run.
      while (!in_flight.empty() && service_.pair_.IsFinished(in_flight.oldest()) &&
             !WritePending()) {
        if (grpc::Status answered = answer_oldest(); !answered.ok()) return answered;
      }
      while (in_flight.Overfull()) {
        if (grpc::Status answered = answer_oldest(); !answered.ok()) return answered;
      }
    }
  }

  bool WritePending() {
    util::MutexLock lock(&mu_);
    return write_pending_;
  }

  static grpc::Status BlockFailure(uint32_t height, const absl::Status& status) {
    return ToGrpcStatus(absl::Status(
        status.code(), absl::StrCat("block at height ", height, ": ", status.message())));
  }

  // Waits until `pending` is durable and writes its response; the stream's final status when it
  // failed or the client went away.
  grpc::Status Answer(const proxy::PendingBlock& pending) {
    absl::StatusOr<proxy::BlockOutcome> outcome = service_.pair_.FinishBlock(pending);
    if (!outcome.ok()) return BlockFailure(pending.height(), outcome.status());
    {
      util::MutexLock lock(&mu_);
      auto writable = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !write_pending_ || cancelled_;
      };
      mu_.Await(writable);
      if (cancelled_) return grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled");
      response_.Clear();
      ToProto(*outcome, &response_);
      write_pending_ = true;
    }
    StartWrite(&response_);
    return grpc::Status::OK;
  }

  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

  IndexerService& service_;
  // The worker and OnDone each hold one reference.
  std::atomic<int> refs_{2};
  // Whether the constructor registered the stream in service_.streams_; constant after it.
  bool registered_ = false;

  util::Mutex mu_;
  // Written by gRPC when a read completes; read_pending_ says a read is outstanding, and while it
  // is nobody else touches request_.
  SubmitBlockRequest request_;
  bool read_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool input_done_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<Queued> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Filled by the worker while no write is pending; read by gRPC during the write.
  SubmitBlockResponse response_;
  bool write_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;  // Set by Stop().
};

namespace {

// Holds a refused call's answer until the caller may try again (at most a second, and never past
// its deadline or its cancellation), so a client that retries at once cannot spin the node's CPU
// on refusals.
void HoldRefusal(const grpc::ServerContext& context, absl::Duration retry_in) {
  constexpr absl::Duration kMaxHold = absl::Seconds(1);
  constexpr absl::Duration kStep = absl::Milliseconds(20);
  const absl::Time caller_deadline = absl::FromChrono(context.deadline()) - absl::Milliseconds(50);
  const absl::Time until = std::min(absl::Now() + std::min(retry_in, kMaxHold), caller_deadline);
  while (absl::Now() < until && !context.IsCancelled()) {
    absl::SleepFor(std::min(kStep, until - absl::Now()));
  }
}

}  // namespace

IndexerService::IndexerService(proxy::InstancePair& pair, const store::BlockStore& store,
                               store::NodeIdentity identity, IndexerAccess access,
                               PeerBudget* view_budget, StreamLimits limits)
    : pair_(pair),
      store_(store),
      identity_(std::move(identity)),
      access_(std::move(access)),
      view_budget_(view_budget),
      limits_(limits) {}

void IndexerService::BeginShutdown() {
  util::MutexLock streams(&streams_mu_);
  shutting_down_ = true;
  for (BlockStreamReactor* stream : streams_) stream->Stop();
}

grpc::Status IndexerService::SubmitBlock(grpc::ServerContext* context,
                                         const SubmitBlockRequest* request,
                                         SubmitBlockResponse* response) {
  if (grpc::Status auth = CheckWriter(*context, access_); !auth.ok()) return auth;
  absl::StatusOr<proxy::BlockSubmission> block = BlockSubmissionFromProto(*request);
  if (!block.ok()) return ToGrpcStatus(block.status());
  absl::StatusOr<proxy::BlockOutcome> outcome = pair_.SubmitBlock(*block);
  if (!outcome.ok()) return ToGrpcStatus(outcome.status());
  ToProto(*outcome, response);
  return grpc::Status::OK;
}

grpc::ServerBidiReactor<SubmitBlockRequest, SubmitBlockResponse>* IndexerService::StreamBlocks(
    grpc::CallbackServerContext* context) {
  return new BlockStreamReactor(*this, context);
}

grpc::Status IndexerService::View(grpc::ServerContext* context,
                                  const tandem::v1::ViewRequest* request,
                                  tandem::v1::ViewResponse* response) {
  if (grpc::Status auth = CheckReader(*context, access_); !auth.ok()) return auth;
  if (absl::Status name = CheckExportName("view name", request->name()); !name.ok()) {
    return ToGrpcStatus(name);
  }
  std::optional<uint32_t> height;
  if (request->has_height()) height = request->height();
  // The budget is kept per connection (gRPC's peer address): an honest client never spends from
  // it, and one that dodges it by reconnecting pays a handshake per `view_failure_budget`
  // failures, which costs the node about as much as the warm-ups it would otherwise cause.
  const std::string peer = context->peer();
  if (view_budget_ != nullptr) {
    absl::Duration retry_in;
    if (absl::Status admitted = view_budget_->Admit(peer, absl::Now(), &retry_in); !admitted.ok()) {
      HoldRefusal(*context, retry_in);
      return ToGrpcStatus(admitted);
    }
  }
  absl::StatusOr<proxy::ViewOutcome> outcome =
      pair_.View(request->name(), height, request->request());
  if (!outcome.ok()) {
    if (view_budget_ != nullptr && proxy::FailedItsInstance(outcome.status())) {
      view_budget_->Charge(peer, absl::Now());
    }
    return ToGrpcStatus(outcome.status());
  }
  response->set_answer(std::move(outcome->answer));
  response->set_height(outcome->height);
  response->set_generation(outcome->generation);
  return grpc::Status::OK;
}

grpc::Status IndexerService::GetTip(grpc::ServerContext* context,
                                    const tandem::v1::GetTipRequest* /*request*/,
                                    tandem::v1::GetTipResponse* response) {
  if (grpc::Status auth = CheckReader(*context, access_); !auth.ok()) return auth;
  std::optional<uint32_t> start = store_.GetStartHeight();
  std::optional<store::BlockRecord> tip = store_.GetTip();
  if (tip.has_value()) ToProto(*tip, response->mutable_tip());
  if (start.has_value() && tip.has_value()) response->set_start_height(*start);
  response->set_module_sha256(identity_.module_sha256);
  response->set_memory_limit_bytes(identity_.memory_limit_bytes);
  return grpc::Status::OK;
}

grpc::Status IndexerService::GetBlock(grpc::ServerContext* context,
                                      const tandem::v1::GetBlockRequest* request,
                                      tandem::v1::GetBlockResponse* response) {
  if (grpc::Status auth = CheckReader(*context, access_); !auth.ok()) return auth;
  absl::StatusOr<store::BlockRecord> record = store_.GetBlock(request->height());
  if (!record.ok()) return ToGrpcStatus(record.status());
  ToProto(*record, response->mutable_block());
  return grpc::Status::OK;
}

grpc::Status IndexerService::Rollback(grpc::ServerContext* context,
                                      const tandem::v1::RollbackRequest* request,
                                      tandem::v1::RollbackResponse* response) {
  if (grpc::Status auth = CheckWriter(*context, access_); !auth.ok()) return auth;
  if (request->empty() && request->height() != 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "give a height or `empty`, not both: `empty` undoes every block");
  }
  const std::optional<uint32_t> new_tip =
      request->empty() ? std::nullopt : std::optional<uint32_t>(request->height());
  if (absl::Status status = pair_.Rollback(new_tip); !status.ok()) {
    return ToGrpcStatus(status);
  }
  std::optional<store::BlockRecord> tip = store_.GetTip();
  if (tip.has_value()) ToProto(*tip, response->mutable_tip());
  return grpc::Status::OK;
}

}  // namespace tandem::server
