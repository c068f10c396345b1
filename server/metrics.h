// tandem's Prometheus metrics (docs/design.md, "Metrics"), fed by the instance pair's events,
// the gRPC layer and a refresh at each scrape. It must never decide anything or call into a guest.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "engine/guest_memory_ledger.h"
#include "grpcpp/support/server_interceptor.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "proxy/events.h"
#include "proxy/instance_pair.h"
#include "store/block_store.h"
#include "util/failure_cause.h"
#include "util/mutex.h"

namespace tandem::server {

// Label values of tandem_blocks_total{outcome} and tandem_views_total{outcome}: "ok", or the
// lower-case code of the failure ("aborted": the guest refused the block or view, every node
// alike; "deadline_exceeded" / "unavailable" / "resource_exhausted": a host outcome, retry;
// "not_found", "invalid_argument", "failed_precondition"), and "error" for any other code.
absl::string_view OutcomeLabel(absl::StatusCode code);

// Label value of tandem_warm_failures_total{cause}, from a failed warm's typed failure
// (PairEvent::failure and ::code, never its message): "replay_diverged" (a replayed init call
// answered another digest), "deadline" (the warm or a replayed call ran past its deadline),
// "guest" (the guest trapped, aborted or broke the ABI during _initialize or a replayed call),
// "host" (memory, heap, native stack, the store, V8 refusing: the host's doing), "other" for a
// failure of no known cause whose code says nothing more.
absl::string_view WarmFailureCause(util::FailureCause failure, absl::StatusCode code);

// The grpc_code label for a gRPC status code (the numbering of grpc::StatusCode, which equals
// absl::StatusCode's), spelled as go-grpc-prometheus does: "OK", "InvalidArgument",
// "DeadlineExceeded", ... "Unknown" for a number outside 0..16.
absl::string_view GrpcCodeLabel(int code);

// What tandem_build_info labels: the build and the guest module a tandemd runs.
struct BuildInfo {
  std::string version;        // tandem's version (the CMake project's).
  std::string git_commit;     // The commit built, as seen at configure time; "unknown" outside git.
  std::string v8_version;     // The V8 the process runs (engine::V8Version).
  std::string module_sha256;  // Lower-case hex SHA-256 of the guest module's bytes.
};

// Every tandem_* and grpc_server_* metric family of docs/design.md, registered in one registry.
//
//   From the pair's events (OnPairEvent):
//     tandem_swaps_total{reason}            one per swap; reason = proxy::SwapReasonName.
//     tandem_swap_pause_seconds             each swap's pause (no call could start).
//     tandem_warm_seconds                   each successful warm-up's duration.
//     tandem_warm_failures_total{cause}     failed warm-ups, cause = WarmFailureCause.
//     tandem_blocks_total{outcome}          blocks that ran (or found no instance), by outcome;
//                                           blocks refused before running (wrong height, parent
//                                           mismatch) are counted only by the gRPC metrics.
//     tandem_block_seconds                  committed blocks, run + commit.
//     tandem_last_commit_timestamp_seconds  Unix time of the latest commit (no series until this
//                                           process commits a block).
//     tandem_instance_failures_total{call}  instances a failed call retired, by the kind of call
//                                           (proxy::CallKindName: block, view, init).
//     tandem_swaps_delayed_total            swaps that were due with no READY standby.
//     tandem_host_memory_refusals_total{call,cause}
//                                           calls the host could not give memory below the cap,
//                                           from the events' typed failure: cause "budget"
//                                           (util::FailureCause::kHostMemoryBudget: the host
//                                           memory budget) or "host" (kHostMemory: the system
//                                           refused, e.g. an rlimit); call = block, view, init,
//                                           warm.
//     tandem_rollbacks_total                rollbacks.
//     tandem_replay_log_resets_total        operator resets of the replay log.
//     tandem_replay_log_calls_dropped_total init calls those resets dropped.
//     tandem_snapshots_total{outcome}       snapshots (server/snapshotter.h): ok or failed.
//     tandem_snapshot_seconds               each snapshot's duration, taken or failed.
//     tandem_last_snapshot_timestamp_seconds, tandem_last_snapshot_height  the latest snapshot
//                                           taken (no series until this process takes one).
//     tandem_last_snapshot_failure_timestamp_seconds  the latest that failed (likewise).
//   From RecordView / RecordGrpcStarted / RecordGrpc:
//     tandem_views_total{outcome}, tandem_view_seconds,
//     grpc_server_started_total{grpc_service,grpc_method} (calls in flight = started - handled),
//     grpc_server_handled_total{grpc_service,grpc_method,grpc_code},
//     grpc_server_handling_seconds{grpc_service,grpc_method}.
//   From RecordDroppedWatchEvents: tandem_watch_events_dropped_total (events an Admin.WatchEvents
//     subscriber lost because it read too slowly).
//   From SetBuildInfo: tandem_build_info{version,git_commit,v8_version,module_sha256} 1.
//   From UpdateFromStatus (at each scrape):
//     tandem_instance_memory_bytes{slot}, tandem_instance_generation{slot} (slot = "active" or
//     "standby"; a slot holding no instance has no series), tandem_instance_memory_limit_bytes,
//     tandem_warm_at_ratio{policy}, tandem_swap_at_ratio{policy} (the configuration, so the
//     dashboard draws its lines from the flags in force; policy = proxy::SwapPolicyName),
//     tandem_instance_v8_heap_used_bytes{slot}, tandem_instance_v8_heap_total_bytes{slot},
//     tandem_instance_v8_heap_limit_bytes{slot} (the V8 heap of the isolate hosting the slot's
//     instance, read on its worker's thread after its latest call),
//     tandem_standby_state{state} (state = proxy::StandbyStateName, the API's names: EMPTY,
//     WARMING, READY, FAILED; 1 for the state in force, 0 for the others), tandem_swap_due (0/1),
//     tandem_consecutive_warm_failures, tandem_tip_height (-1 while no block is committed),
//     tandem_replay_log_calls, tandem_replay_log_bytes, tandem_historical_instances (kept now),
//     tandem_historical_instances_limit (--historical_instances), tandem_unsettled_instances
//     (instances that ran blocks not yet durable, held to serve their heights),
//     tandem_unsettled_instances_given_up_total (of those, given up past --unsettled_instances:
//     their blocks settled unpublished; advanced by what the status counted since the last scrape).
//   From UpdateHostMemory (at each scrape):
//     tandem_host_memory_budget_bytes (what guest memory may commit),
//     tandem_guest_memory_committed_bytes (what all instances commit now).
//   From UpdateStore (at each scrape):
//     tandem_db_live_data_bytes (RocksDB's estimate; absent when RocksDB has none),
//     tandem_db_disk_bytes (the database folder's files).
//   MetricsCollectable adds at each scrape the process_* families (process_metrics.h) and the
//   database's write path (write_path_metrics.h: stalls, WAL syncs).
//
// Threading: every method is thread-safe. OnPairEvent and RecordView touch only prometheus-cpp
// counters and histograms (internally synchronized) found through maps that are constant after
// construction, or, once per block, the last-commit gauge under commit_mu_; RecordGrpcStarted and
// RecordGrpc find their series under grpc_mu_ (held for a hash lookup). All are cheap enough for
// the hot path. UpdateFromStatus, UpdateStore and SetBuildInfo are serialized by update_mu_.
class Metrics final : public proxy::PairEventSink {
 public:
  // Registers the families in `registry` (InsertBehavior::Merge returns existing families).
  // REQUIRES: `registry` is non-null and holds no family of these names with another type
  // (prometheus-cpp would throw).
  explicit Metrics(std::shared_ptr<prometheus::Registry> registry);
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // proxy::PairEventSink.
  void OnPairEvent(const proxy::PairEvent& event) override;

  // One view call that ended with `status` after `duration` (outcome label: OutcomeLabel). In
  // tandemd the interceptor of NewGrpcMetricsInterceptorFactory calls it for Indexer.View.
  void RecordView(const absl::Status& status, absl::Duration duration);

  // One gRPC call that started: `service` is the full service name ("tandem.v1.Indexer"),
  // `method` the method's name ("SubmitBlock").
  void RecordGrpcStarted(absl::string_view service, absl::string_view method)
      ABSL_LOCKS_EXCLUDED(grpc_mu_);

  // One finished gRPC call, named as for RecordGrpcStarted; `code` a grpc::StatusCode value.
  void RecordGrpc(absl::string_view service, absl::string_view method, int code,
                  absl::Duration duration) ABSL_LOCKS_EXCLUDED(grpc_mu_);

  // `count` events that an Admin.WatchEvents subscriber lost because it fell behind.
  void RecordDroppedWatchEvents(uint64_t count);

  // Publishes tandem_build_info with `info`'s labels (replacing an earlier series).
  void SetBuildInfo(const BuildInfo& info) ABSL_LOCKS_EXCLUDED(update_mu_);

  // Sets the pair's gauges from a status snapshot. Removes the series of a slot that is empty.
  void UpdateFromStatus(const proxy::PairStatus& status) ABSL_LOCKS_EXCLUDED(update_mu_);

  // Sets the host memory budget gauges from the engine's ledger.
  void UpdateHostMemory(const engine::GuestMemoryLedger::Usage& usage)
      ABSL_LOCKS_EXCLUDED(update_mu_);
  // Sets the database gauges from `store` (a RocksDB property read and a listing of its folder).
  void UpdateStore(const store::BlockStore& store) ABSL_LOCKS_EXCLUDED(update_mu_);

  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

 private:
  // Constant after construction (the families and the pre-labelled series they own live as
  // long as the registry, which this object keeps alive).
  const std::shared_ptr<prometheus::Registry> registry_;

  prometheus::Family<prometheus::Gauge>& memory_bytes_;
  prometheus::Family<prometheus::Gauge>& generation_;
  prometheus::Gauge& memory_limit_bytes_;
  prometheus::Family<prometheus::Gauge>& warm_at_ratio_;
  prometheus::Family<prometheus::Gauge>& swap_at_ratio_;
  prometheus::Family<prometheus::Gauge>& heap_used_bytes_;
  prometheus::Family<prometheus::Gauge>& heap_total_bytes_;
  prometheus::Family<prometheus::Gauge>& heap_limit_bytes_;
  prometheus::Family<prometheus::Gauge>& standby_state_;
  prometheus::Gauge& swap_due_;
  prometheus::Gauge& consecutive_warm_failures_;
  prometheus::Gauge& tip_height_;
  prometheus::Gauge& replay_log_calls_;
  prometheus::Gauge& replay_log_bytes_;
  prometheus::Gauge& historical_instances_;
  prometheus::Gauge& historical_instances_limit_;
  prometheus::Gauge& unsettled_instances_;
  prometheus::Counter& unsettled_instances_given_up_;
  prometheus::Gauge& host_memory_budget_bytes_;
  prometheus::Gauge& guest_memory_committed_bytes_;

  prometheus::Family<prometheus::Counter>& swaps_;
  prometheus::Histogram& swap_pause_seconds_;
  prometheus::Histogram& warm_seconds_;
  prometheus::Family<prometheus::Counter>& warm_failures_;
  prometheus::Family<prometheus::Counter>& blocks_;
  prometheus::Histogram& block_seconds_;
  prometheus::Family<prometheus::Gauge>& last_commit_time_;
  prometheus::Family<prometheus::Counter>& instance_failures_;
  prometheus::Counter& swaps_delayed_;
  prometheus::Counter& rollbacks_;
  prometheus::Counter& replay_log_resets_;
  prometheus::Counter& replay_log_calls_dropped_;
  prometheus::Family<prometheus::Counter>& snapshots_;
  prometheus::Counter& snapshots_taken_;   // outcome="ok"
  prometheus::Counter& snapshots_failed_;  // outcome="failed"
  prometheus::Histogram& snapshot_seconds_;
  prometheus::Family<prometheus::Gauge>& last_snapshot_time_;
  prometheus::Family<prometheus::Gauge>& last_snapshot_height_;
  prometheus::Family<prometheus::Gauge>& last_snapshot_failure_time_;
  prometheus::Family<prometheus::Counter>& host_memory_refusals_;

  prometheus::Family<prometheus::Counter>& views_;
  prometheus::Histogram& view_seconds_;

  prometheus::Family<prometheus::Counter>& grpc_started_;
  prometheus::Family<prometheus::Counter>& grpc_handled_;
  prometheus::Family<prometheus::Histogram>& grpc_handling_seconds_;

  prometheus::Family<prometheus::Gauge>& db_live_data_bytes_;
  prometheus::Gauge& db_disk_bytes_;
  prometheus::Counter& watch_events_dropped_;
  prometheus::Family<prometheus::Gauge>& build_info_;

  // The pre-labelled series, by label value (the values of kSwapReasons, OutcomeLabel and
  // WarmFailureCause). Constant after construction; the series belong to the families above.
  absl::flat_hash_map<std::string, prometheus::Counter*> swaps_by_reason_;
  absl::flat_hash_map<std::string, prometheus::Counter*> blocks_by_outcome_;
  absl::flat_hash_map<std::string, prometheus::Counter*> views_by_outcome_;
  absl::flat_hash_map<std::string, prometheus::Counter*> warm_failures_by_cause_;
  // By "call/cause" (HostMemoryRefusalKey).
  absl::flat_hash_map<std::string, prometheus::Counter*> host_memory_refusals_by_key_;
  // By proxy::StandbyStateName of every state.
  absl::flat_hash_map<std::string, prometheus::Gauge*> standby_state_by_name_;

  // The gRPC series created so far, keyed "service/method/code" and "service/method". The
  // series belong to grpc_started_, grpc_handled_ and grpc_handling_seconds_ and are never
  // removed.
  util::Mutex grpc_mu_;
  absl::flat_hash_map<std::string, prometheus::Counter*> grpc_started_series_
      ABSL_GUARDED_BY(grpc_mu_);
  absl::flat_hash_map<std::string, prometheus::Counter*> grpc_handled_series_
      ABSL_GUARDED_BY(grpc_mu_);
  absl::flat_hash_map<std::string, prometheus::Histogram*> grpc_seconds_series_
      ABSL_GUARDED_BY(grpc_mu_);

  // Serializes the scrape-time updates, which add and remove series (the slot gauges, the
  // configuration gauges, the live-data estimate, the build identity) and must not interleave.
  util::Mutex update_mu_;
  // The policy label of the configuration gauges' series; empty before the first update.
  std::string policy_label_ ABSL_GUARDED_BY(update_mu_);
  // The status's count of instances given up at the last scrape: the counter advances by the
  // difference.
  uint64_t unsettled_given_up_seen_ ABSL_GUARDED_BY(update_mu_) = 0;
  // The series of build_info_ in force, or null before SetBuildInfo.
  prometheus::Gauge* build_info_series_ ABSL_GUARDED_BY(update_mu_) = nullptr;

  // Keeps the last-commit gauge at the latest commit's time when two commits' events race.
  util::Mutex commit_mu_;
  prometheus::Gauge* last_commit_series_ ABSL_GUARDED_BY(commit_mu_) = nullptr;
  absl::Time last_commit_ ABSL_GUARDED_BY(commit_mu_) = absl::InfinitePast();

  // Keeps the last-snapshot gauges at the latest snapshot when two snapshots' events race.
  util::Mutex snapshot_mu_;
  prometheus::Gauge* last_snapshot_time_series_ ABSL_GUARDED_BY(snapshot_mu_) = nullptr;
  prometheus::Gauge* last_snapshot_height_series_ ABSL_GUARDED_BY(snapshot_mu_) = nullptr;
  absl::Time last_snapshot_ ABSL_GUARDED_BY(snapshot_mu_) = absl::InfinitePast();
  prometheus::Gauge* last_snapshot_failure_series_ ABSL_GUARDED_BY(snapshot_mu_) = nullptr;
  absl::Time last_snapshot_failure_ ABSL_GUARDED_BY(snapshot_mu_) = absl::InfinitePast();
};

// Passes each of the pair's events to several sinks in order (the pair takes one sink; tandemd
// gives it the EventHub and the Metrics through this).
//
// Threading: as thread-safe as the sinks it calls (PairEventSink requires them to be).
class PairEventFanOut final : public proxy::PairEventSink {
 public:
  // REQUIRES: every sink is non-null and outlives this object.
  explicit PairEventFanOut(std::vector<proxy::PairEventSink*> sinks) : sinks_(std::move(sinks)) {}
  void OnPairEvent(const proxy::PairEvent& event) override {
    for (proxy::PairEventSink* sink : sinks_) sink->OnPairEvent(event);
  }

 private:
  const std::vector<proxy::PairEventSink*> sinks_;  // Constant after construction.
};

// A gRPC server interceptor factory that records every finished call of the server it is added
// to in `metrics` (RecordGrpc: grpc_server_handled_total and grpc_server_handling_seconds, from
// the call's creation to its status being sent), and each call of tandem.v1.Indexer/View also as
// a view (RecordView, outcome from its status code). Add it to every ServerBuilder:
//   std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
//   creators.push_back(NewGrpcMetricsInterceptorFactory(metrics));
//   builder.experimental().SetInterceptorCreators(std::move(creators));
// REQUIRES: `metrics` outlives every server built with the factory.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
NewGrpcMetricsInterceptorFactory(Metrics& metrics);

// Splits a gRPC method path "/tandem.v1.Indexer/View" into service "tandem.v1.Indexer" and method
// "View". A path without that shape gives service "unknown" and the whole path as the method.
void SplitGrpcMethod(absl::string_view path, std::string* service, std::string* method);

// What Prometheus scrapes: refreshes `metrics`' gauges from the pair's status and the store, then
// returns the registry's families plus the process_* families (process_metrics.h) and, with a
// store, its write path's (write_path_metrics.h).
//
// Threading: Collect is thread-safe (the exposer may scrape from several threads); concurrent
// scrapes are serialized so each sees one consistent refresh.
class MetricsCollectable final : public prometheus::Collectable {
 public:
  // `pair` and `store` may be null (their gauges are then not refreshed).
  // REQUIRES: `metrics`, `pair` and `store` outlive this object, and every exposer that scrapes
  // it is destroyed (or has removed it) before they are.
  MetricsCollectable(Metrics& metrics, const proxy::InstancePair* pair,
                     const store::BlockStore* store);

  std::vector<prometheus::MetricFamily> Collect() const override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Constant after construction.
  Metrics& metrics_;
  const proxy::InstancePair* const pair_;
  const store::BlockStore* const store_;

  // Serializes scrapes (it guards no data: the refresh itself is what must not interleave).
  mutable util::Mutex mu_;
};

// The /metrics server's worker threads, and how long a connection may stay without a complete
// request before it is dropped: idle connections cannot keep Prometheus out for long.
inline constexpr int kExposerThreads = 8;
inline constexpr absl::Duration kExposerRequestTimeout = absl::Seconds(3);

// Serves `collectable` as Prometheus text on http://<address>/metrics (civetweb, kExposerThreads
// workers, kExposerRequestTimeout per request).
// `address` is host:port (IPv4 or a bracketed IPv6 host); port 0 picks a free port, which
// exposer->GetListeningPorts() reports. Returns the running exposer (destroying it stops it), or
// UNAVAILABLE naming the address when it cannot listen there (port in use, bad host), or
// INVALID_ARGUMENT when `address` is not host:port.
absl::StatusOr<std::unique_ptr<prometheus::Exposer>> StartMetricsExposer(
    absl::string_view address, const std::weak_ptr<prometheus::Collectable>& collectable);

// Stops `exposer` (started on `address`) and returns once its threads are gone. civetweb's accept
// loop waits on its sockets up to 2 s at a time and sees a stop request only then; a connection
// to each listening port (on `address`'s host, loopback for a wildcard) wakes it at once.
void StopMetricsExposer(std::unique_ptr<prometheus::Exposer> exposer, absl::string_view address);

}  // namespace tandem::server
