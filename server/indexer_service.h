// The Indexer gRPC service: blocks in (unary and pipelined stream), views, tip, records, rollback.
// It checks requests and maps statuses; every decision about instances is the pair's.
#pragma once

#include <atomic>
#include <string>

#include "proxy/instance_pair.h"
#include "server/peer_budget.h"
#include "store/block_store.h"
#include "tandem/v1/tandem.grpc.pb.h"

namespace tandem::server {

// How far StreamBlocks reads ahead of the block that runs.
struct StreamLimits {
  size_t max_queued_blocks = 16;
  uint64_t max_queued_bytes = 128ull << 20;  // At least one block is always queued.
};

// Threading: thread-safe; gRPC calls the unary methods from its sync thread pool and drives each
// StreamBlocks call through a reactor with one worker thread of its own.
class IndexerService final
    : public tandem::v1::Indexer::WithCallbackMethod_StreamBlocks<tandem::v1::Indexer::Service> {
 public:
  // REQUIRES: `pair` and `store` outlive the service and every call it runs (the server is shut
  // down before them). `token` empty: no token required.
  // `view_budget` (may be null: no limit) bounds how many instances one connection's views may
  // fail; it must outlive the service too.
  IndexerService(proxy::InstancePair& pair, const store::BlockStore& store, std::string token,
                 PeerBudget* view_budget = nullptr, StreamLimits limits = {});

  // After this, StreamBlocks calls end with UNAVAILABLE at their next block boundary.
  void BeginShutdown() { shutting_down_.store(true); }

  grpc::Status SubmitBlock(grpc::ServerContext* context,
                           const tandem::v1::SubmitBlockRequest* request,
                           tandem::v1::SubmitBlockResponse* response) override;
  grpc::ServerBidiReactor<tandem::v1::SubmitBlockRequest, tandem::v1::SubmitBlockResponse>*
  StreamBlocks(grpc::CallbackServerContext* context) override;
  grpc::Status View(grpc::ServerContext* context, const tandem::v1::ViewRequest* request,
                    tandem::v1::ViewResponse* response) override;
  grpc::Status GetTip(grpc::ServerContext* context, const tandem::v1::GetTipRequest* request,
                      tandem::v1::GetTipResponse* response) override;
  grpc::Status GetBlock(grpc::ServerContext* context, const tandem::v1::GetBlockRequest* request,
                        tandem::v1::GetBlockResponse* response) override;
  grpc::Status Rollback(grpc::ServerContext* context, const tandem::v1::RollbackRequest* request,
                        tandem::v1::RollbackResponse* response) override;

 private:
  class BlockStreamReactor;

  // Constant after construction.
  proxy::InstancePair& pair_;
  const store::BlockStore& store_;
  const std::string token_;
  PeerBudget* const view_budget_;
  const StreamLimits limits_;

  // Set once at shutdown; read by stream workers between blocks. An atomic flag: a stream that
  // misses the change finishes one more block, which is harmless.
  std::atomic<bool> shutting_down_{false};
};

}  // namespace tandem::server
