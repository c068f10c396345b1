// The Admin gRPC service: the pair's status, manual swaps, init calls and the event stream.
// Served only where the operator says (server/tandem_server.h); it decides nothing itself.
#pragma once

#include <string>

#include "proxy/instance_pair.h"
#include "server/event_hub.h"
#include "server/host_memory_budget.h"
#include "server/snapshotter.h"
#include "store/node_identity.h"
#include "tandem/v1/tandem.grpc.pb.h"

namespace tandem::server {

// Threading: thread-safe; gRPC calls it from its sync thread pool.
class AdminService final : public tandem::v1::Admin::Service {
 public:
  // Swap waits this long for a READY standby when the request gives no wait.
  static constexpr absl::Duration kDefaultSwapWait = absl::Seconds(10);
  // And never longer than this.
  static constexpr absl::Duration kMaxSwapWait = absl::Minutes(5);

  // REQUIRES: `pair` and `events` outlive the service and every call it runs. `token` empty: no
  // token required. `module_path`, `identity` (the module digest and cap the database is bound
  // to) and `budget` (with what guest memory commits against it) are reported by Status.
  // `snapshotter` (Snapshot's) must outlive the service too.
  AdminService(proxy::InstancePair& pair, Snapshotter& snapshotter, EventHub& events,
               std::string token, std::string module_path, store::NodeIdentity identity,
               HostMemoryBudget budget);

  grpc::Status Status(grpc::ServerContext* context, const tandem::v1::StatusRequest* request,
                      tandem::v1::StatusResponse* response) override;
  grpc::Status Swap(grpc::ServerContext* context, const tandem::v1::SwapRequest* request,
                    tandem::v1::SwapResponse* response) override;
  grpc::Status Initialize(grpc::ServerContext* context,
                          const tandem::v1::InitializeRequest* request,
                          tandem::v1::InitializeResponse* response) override;
  grpc::Status Snapshot(grpc::ServerContext* context, const tandem::v1::SnapshotRequest* request,
                        tandem::v1::SnapshotResponse* response) override;
  grpc::Status ResetReplayLog(grpc::ServerContext* context,
                              const tandem::v1::ResetReplayLogRequest* request,
                              tandem::v1::ResetReplayLogResponse* response) override;
  // Ends with UNAVAILABLE when the server shuts down (EventHub::Close), OK when the client
  // cancels.
  grpc::Status WatchEvents(grpc::ServerContext* context,
                           const tandem::v1::WatchEventsRequest* request,
                           grpc::ServerWriter<tandem::v1::PairEvent>* writer) override;

 private:
  // Constant after construction.
  proxy::InstancePair& pair_;
  Snapshotter& snapshotter_;
  EventHub& events_;
  const std::string token_;
  const std::string module_path_;
  const store::NodeIdentity identity_;
  const HostMemoryBudget budget_;
};

}  // namespace tandem::server
