// tandemd as an object: loads the module, opens the store, runs the instance pair and serves it
// over gRPC on the public and admin listeners. main() only parses flags and waits for a signal;
// tests run this in-process. It must never parse flags or install signal handlers itself.
#pragma once

#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/module.h"
#include "grpcpp/server.h"
#include "proxy/instance_pair.h"
#include "server/admin_service.h"
#include "server/call_tracker.h"
#include "server/config.h"
#include "server/event_hub.h"
#include "server/host_memory_budget.h"
#include "server/indexer_service.h"
#include "server/logger.h"
#include "server/metrics.h"
#include "server/peer_budget.h"
#include "server/port_file.h"
#include "server/snapshotter.h"
#include "store/block_store.h"
#include "util/mutex.h"

namespace tandem::server {

// Threading: Start and Shutdown are called from one thread (main, or a test); the accessors from
// any thread while the server runs. The services run on gRPC's threads.
class TandemServer {
 public:
  // Starts everything. Errors, each naming the file or address:
  //   NOT_FOUND / FAILED_PRECONDITION  the module or a TLS file cannot be read;
  //   INVALID_ARGUMENT                 the module is invalid (the engine's message, naming the
  //                                    offending import or export);
  //   FAILED_PRECONDITION              carrying util::FailureCause::kIdentityMismatch: the
  //                                    database's blocks were computed with another module or
  //                                    memory cap (the message names both; nothing was touched);
  //   DATA_LOSS (or UNAVAILABLE)       carrying util::FailureCause::kSnapshotInvalid: --db is a
  //                                    snapshot whose files or database differ from its
  //                                    manifest (the message names the first difference;
  //                                    nothing was touched);
  //   the store's Open errors          (locked by another process, not a tandem store, ...);
  //   UNAVAILABLE                      a listener cannot bind, V8 cannot start.
  // When the first warm-up fails the server still starts (its calls answer UNAVAILABLE until a
  // warm succeeds) and the failure is logged.
  // REQUIRES: ValidateConfig(config) is OK; `logger` outlives the server.
  static absl::StatusOr<std::unique_ptr<TandemServer>> Start(const ServerConfig& config,
                                                             Logger& logger);

  // Shuts down (with config.shutdown_grace) if Shutdown was not called.
  ~TandemServer();
  TandemServer(const TandemServer&) = delete;
  TandemServer& operator=(const TandemServer&) = delete;

  // Stops accepting calls, ends event streams and block streams that wait for their next block,
  // lets in-flight calls finish for at most `grace` and cancels the rest (a block that already
  // runs completes or fails whole: commits are atomic), closes idle connections as soon as no
  // call is in flight, then destroys the pair and closes the store. Idempotent.
  void Shutdown(absl::Duration grace);

  // The bound ports (useful with port 0); 0 when that listener is off.
  int public_port() const { return public_port_; }
  int admin_port() const { return admin_port_; }
  int metrics_port() const { return metrics_port_; }
  // The same as host:port addresses (what config.port_file holds).
  BoundAddresses bound_addresses() const;

  proxy::InstancePair& pair() { return *pair_; }
  store::BlockStore& store() { return *store_; }
  Snapshotter& snapshotter() { return *snapshotter_; }
  const ServerConfig& config() const { return config_; }
  // The module digest and memory cap the database is bound to (equal to this server's).
  const store::NodeIdentity& identity() const { return identity_; }
  const HostMemoryBudget& host_memory_budget() const { return host_memory_budget_; }

 private:
  TandemServer(const ServerConfig& config, Logger& logger) : config_(config), logger_(logger) {}

  absl::Status StartListeners();
  // Polls the store and the pair once a second and publishes grpc.health.v1's status.
  void HealthMain();
  void PublishHealth(bool serving);

  const ServerConfig config_;
  Logger& logger_;

  // Destroyed in reverse order: listeners, services, pair, hub, metrics (the hub counts dropped
  // events there), store, module.
  std::unique_ptr<engine::Module> module_;
  store::NodeIdentity identity_;  // Set in Start before the store opens; constant after.
  std::unique_ptr<store::BlockStore> store_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<EventHub> events_;
  std::unique_ptr<PairEventFanOut> pair_events_;  // events_ and metrics_.
  // Requested and periodic snapshots; publishes to pair_events_ and hears the pair's events.
  std::unique_ptr<Snapshotter> snapshotter_;
  std::unique_ptr<PairEventFanOut> pair_sink_;  // pair_events_ and snapshotter_: the pair's sink.
  std::unique_ptr<proxy::InstancePair> pair_;
  // What guest memory may commit in this process, and where that figure came from.
  HostMemoryBudget host_memory_budget_;
  // Scraped by metrics_exposer_; both go before the pair and the store they read.
  std::shared_ptr<MetricsCollectable> metrics_collectable_;
  std::unique_ptr<prometheus::Exposer> metrics_exposer_;
  std::unique_ptr<PeerBudget> view_budget_;  // Read by indexer_.
  // Counts the tandem calls in flight on both listeners; outlives them.
  CallTracker calls_;
  std::unique_ptr<IndexerService> indexer_;
  std::unique_ptr<AdminService> admin_;         // On the admin listener.
  std::unique_ptr<AdminService> public_admin_;  // On the public one (--admin_on_public).
  std::unique_ptr<grpc::Server> public_server_;
  std::unique_ptr<grpc::Server> admin_server_;
  int public_port_ = 0;
  int admin_port_ = 0;
  int metrics_port_ = 0;
  bool shut_down_ = false;

  util::Mutex health_mu_;
  bool health_stopping_ ABSL_GUARDED_BY(health_mu_) = false;
  std::thread health_thread_;  // Runs HealthMain while the listeners are up.
};

}  // namespace tandem::server
