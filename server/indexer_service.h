// The Indexer gRPC service: blocks in (unary and pipelined stream), views, tip, records, rollback.
// It checks requests and maps statuses; every decision about instances is the pair's.
#pragma once

#include <atomic>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "proxy/instance_pair.h"
#include "server/auth.h"
#include "server/peer_budget.h"
#include "server/stream_window.h"
#include "store/block_store.h"
#include "tandem/v1/tandem.grpc.pb.h"
#include "util/mutex.h"

namespace tandem::server {

// Threading: thread-safe; gRPC calls the unary methods from its sync thread pool and drives each
// StreamBlocks call through a reactor with one worker thread of its own.
class IndexerService final
    : public tandem::v1::Indexer::WithCallbackMethod_StreamBlocks<tandem::v1::Indexer::Service> {
 public:
  // REQUIRES: `pair` and `store` outlive the service and every call it runs (the server is shut
  // down before them). `identity` (what the database is bound to) is reported by GetTip.
  // `access` says who may read and who may write (server/auth.h).
  // `view_budget` (may be null: no limit) bounds how many instances one connection's views may
  // fail; it must outlive the service too.
  IndexerService(proxy::InstancePair& pair, const store::BlockStore& store,
                 store::NodeIdentity identity, IndexerAccess access,
                 PeerBudget* view_budget = nullptr, StreamLimits limits = {});

  // After this, StreamBlocks calls end with UNAVAILABLE at their next block boundary: a stream
  // waiting for its next block ends at once, one running a block ends when the block is done (it
  // commits whole or not at all). New streams end with UNAVAILABLE as they start.
  void BeginShutdown() ABSL_LOCKS_EXCLUDED(streams_mu_);

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
  const store::NodeIdentity identity_;
  const IndexerAccess access_;
  PeerBudget* const view_budget_;
  const StreamLimits limits_;

  // The StreamBlocks calls alive, so that BeginShutdown can wake the ones waiting for a block.
  // A stream registers when it starts and deregisters before it is deleted. Lock order:
  // streams_mu_, then a stream's own mutex.
  util::Mutex streams_mu_;
  absl::flat_hash_set<BlockStreamReactor*> streams_ ABSL_GUARDED_BY(streams_mu_);
  bool shutting_down_ ABSL_GUARDED_BY(streams_mu_) = false;
};

}  // namespace tandem::server
