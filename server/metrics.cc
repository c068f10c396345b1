// tandem's Prometheus metrics: families, their label values, and the scrape-time refresh.
// prometheus-cpp's exceptions (an exposer that cannot bind) are converted to absl::Status here.
#include "server/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <exception>
#include <filesystem>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "engine/platform.h"
#include "server/process_metrics.h"
#include "server/write_path_metrics.h"
#include "util/failure_cause.h"

namespace tandem::server {
namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;

// Swap pauses are microseconds when all is well: resolve from 1 µs up; the top buckets catch a
// pause that waited on something it should not have.
const Histogram::BucketBoundaries& SwapPauseBuckets() {
  static const auto* buckets = new Histogram::BucketBoundaries{
      1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1, 1};
  return *buckets;
}

// A warm-up is an instantiate from compiled code (~1–20 ms) plus the replay log (up to the warm
// deadline, 60 s by default).
const Histogram::BucketBoundaries& WarmBuckets() {
  static const auto* buckets = new Histogram::BucketBoundaries{
      1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  return *buckets;
}

// Blocks and gRPC calls: 100 µs (an empty block) to the 60 s default deadline.
const Histogram::BucketBoundaries& CallBuckets() {
  static const auto* buckets =
      new Histogram::BucketBoundaries{1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2,
                                      0.1,  0.25,   0.5,  1,    2.5,    5,    10,   30,     60};
  return *buckets;
}

// Views: 10 µs (a cached answer) to the 5 s default deadline.
const Histogram::BucketBoundaries& ViewBuckets() {
  static const auto* buckets =
      new Histogram::BucketBoundaries{1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3,
                                      1e-2, 2.5e-2, 5e-2, 0.1,  0.25,   0.5,  1,    2.5,    5};
  return *buckets;
}

// Snapshots: a checkpoint of hard links and the digest of every file, milliseconds for a small
// database to the 30 min default deadline for a large one copied across file systems.
const Histogram::BucketBoundaries& SnapshotBuckets() {
  static const auto* buckets = new Histogram::BucketBoundaries{
      1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800};
  return *buckets;
}

constexpr std::array<proxy::SwapReason, 8> kSwapReasons = {
    proxy::SwapReason::kBlock,   proxy::SwapReason::kThreshold,     proxy::SwapReason::kManual,
    proxy::SwapReason::kFailure, proxy::SwapReason::kStartup,       proxy::SwapReason::kRollback,
    proxy::SwapReason::kSync,    proxy::SwapReason::kReplayLogReset};

// Every value OutcomeLabel returns, pre-created at zero so that rate() has a series from the
// first scrape on.
constexpr std::array<absl::string_view, 9> kOutcomes = {
    "ok",        "aborted",          "deadline_exceeded",   "unavailable", "resource_exhausted",
    "not_found", "invalid_argument", "failed_precondition", "error"};
constexpr std::array<absl::string_view, 5> kWarmCauses = {"deadline", "replay_diverged", "guest",
                                                          "host", "other"};
constexpr std::array<proxy::StandbyState, 4> kStandbyStates = {
    proxy::StandbyState::kEmpty, proxy::StandbyState::kWarming, proxy::StandbyState::kReady,
    proxy::StandbyState::kFailed};
// The kinds of call a host memory refusal can fail, and its two typed causes.
constexpr std::array<proxy::CallKind, 4> kRefusedCalls = {
    proxy::CallKind::kBlock, proxy::CallKind::kView, proxy::CallKind::kInit,
    proxy::CallKind::kWarm};
constexpr std::array<util::FailureCause, 2> kRefusalCauses = {util::FailureCause::kHostMemoryBudget,
                                                              util::FailureCause::kHostMemory};

// The cause label of tandem_host_memory_refusals_total: "budget" or "host"; "" for other causes.
absl::string_view RefusalCauseLabel(util::FailureCause cause) {
  switch (cause) {
    case util::FailureCause::kHostMemoryBudget:
      return "budget";
    case util::FailureCause::kHostMemory:
      return "host";
    default:
      return "";
  }
}

std::string HostMemoryRefusalKey(proxy::CallKind call, util::FailureCause cause) {
  return absl::StrCat(proxy::CallKindName(call), "/", RefusalCauseLabel(cause));
}

// The kinds of call that can retire an instance (a failed warm-up is counted by cause instead).
constexpr std::array<proxy::CallKind, 3> kFailingCalls = {
    proxy::CallKind::kBlock, proxy::CallKind::kView, proxy::CallKind::kInit};

Family<Gauge>& GaugeFamily(prometheus::Registry& registry, const char* name, const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
}
Gauge& SingleGauge(prometheus::Registry& registry, const char* name, const char* help) {
  return GaugeFamily(registry, name, help).Add({});
}
Family<Counter>& CounterFamily(prometheus::Registry& registry, const char* name, const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}
Counter& SingleCounter(prometheus::Registry& registry, const char* name, const char* help) {
  return CounterFamily(registry, name, help).Add({});
}
Histogram& SingleHistogram(prometheus::Registry& registry, const char* name, const char* help,
                           const Histogram::BucketBoundaries& buckets) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(registry).Add({}, buckets);
}

void Observe(Histogram& histogram, absl::Duration duration) {
  histogram.Observe(absl::ToDoubleSeconds(duration));
}

// Increments the pre-created series of `label`. REQUIRES: `label` is one of the values the map
// was built with (every label function here returns only those).
void Increment(const absl::flat_hash_map<std::string, Counter*>& series, absl::string_view label) {
  auto it = series.find(label);
  if (it != series.end()) it->second->Increment();
}

void SetSlot(Family<Gauge>& family, const char* slot, bool present, double value) {
  const prometheus::Labels labels = {{"slot", slot}};
  if (present) {
    family.Add(labels).Set(value);
  } else if (family.Has(labels)) {
    family.Remove(&family.Add(labels));
  }
}

// Sum of the sizes of the regular files in `folder` (RocksDB keeps a flat folder).
uint64_t FolderBytes(const std::filesystem::path& folder) {
  uint64_t total = 0;
  std::error_code error;
  for (std::filesystem::directory_iterator it(folder, error), end; !error && it != end;
       it.increment(error)) {
    std::error_code size_error;
    if (!it->is_regular_file(size_error) || size_error) continue;
    uint64_t size = it->file_size(size_error);
    if (!size_error) total += size;
  }
  return total;
}

}  // namespace

absl::string_view OutcomeLabel(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return "ok";
    case absl::StatusCode::kAborted:
      return "aborted";
    case absl::StatusCode::kDeadlineExceeded:
      return "deadline_exceeded";
    case absl::StatusCode::kUnavailable:
      return "unavailable";
    case absl::StatusCode::kResourceExhausted:
      return "resource_exhausted";
    case absl::StatusCode::kNotFound:
      return "not_found";
    case absl::StatusCode::kInvalidArgument:
      return "invalid_argument";
    case absl::StatusCode::kFailedPrecondition:
      return "failed_precondition";
    default:
      return "error";
  }
}

absl::string_view WarmFailureCause(util::FailureCause failure, absl::StatusCode code) {
  switch (failure) {
    case util::FailureCause::kReplayDiverged:
      return "replay_diverged";
    case util::FailureCause::kDeadline:
      return "deadline";
    case util::FailureCause::kGuestTrap:
    case util::FailureCause::kGuestAbort:
    case util::FailureCause::kGuestAbi:
      return "guest";
    case util::FailureCause::kStackOverflow:
    case util::FailureCause::kHostMemory:
    case util::FailureCause::kHeapLimit:
    case util::FailureCause::kHostError:
    case util::FailureCause::kShutdown:
    case util::FailureCause::kInstanceLost:
    case util::FailureCause::kNoReadyInstance:
    case util::FailureCause::kIdentityMismatch:
    case util::FailureCause::kSnapshotInvalid:
    case util::FailureCause::kHostMemoryBudget:
      return "host";
    case util::FailureCause::kUnknown:
      break;
  }
  // No cause travelled with the status: its code is all there is to go by.
  switch (code) {
    case absl::StatusCode::kDeadlineExceeded:
      return "deadline";
    case absl::StatusCode::kAborted:
      return "guest";
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
      return "host";
    default:
      return "other";
  }
}

absl::string_view GrpcCodeLabel(int code) {
  static constexpr std::array<absl::string_view, 17> kNames = {
      "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
      "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
      "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
      "DataLoss", "Unauthenticated"};
  if (code < 0 || code >= static_cast<int>(kNames.size())) return "Unknown";
  return kNames[code];
}

Metrics::Metrics(std::shared_ptr<prometheus::Registry> registry)
    : registry_(std::move(registry)),
      memory_bytes_(GaugeFamily(*registry_, "tandem_instance_memory_bytes",
                                "Linear memory of the instance in each slot (active, standby), "
                                "read after its latest call.")),
      generation_(GaugeFamily(*registry_, "tandem_instance_generation",
                              "Generation of the instance in each slot.")),
      memory_limit_bytes_(SingleGauge(*registry_, "tandem_instance_memory_limit_bytes",
                                      "The guest memory cap (--memory_limit).")),
      warm_at_ratio_(GaugeFamily(*registry_, "tandem_warm_at_ratio",
                                 "--warm_at: the fraction of the memory cap at which the "
                                 "`threshold` policy starts warming the standby. Label policy: "
                                 "--swap_policy (the fraction acts only under threshold).")),
      swap_at_ratio_(GaugeFamily(*registry_, "tandem_swap_at_ratio",
                                 "--swap_at: the fraction of the memory cap at which the "
                                 "`threshold` policy swaps. Label policy: --swap_policy.")),
      heap_used_bytes_(GaugeFamily(*registry_, "tandem_instance_v8_heap_used_bytes",
                                   "V8 heap in use in the isolate of each slot's instance, read "
                                   "after its latest call.")),
      heap_total_bytes_(GaugeFamily(*registry_, "tandem_instance_v8_heap_total_bytes",
                                    "V8 heap reserved by the isolate of each slot's instance.")),
      heap_limit_bytes_(GaugeFamily(*registry_, "tandem_instance_v8_heap_limit_bytes",
                                    "V8 heap limit of the isolate of each slot's instance.")),
      standby_state_(GaugeFamily(*registry_, "tandem_standby_state",
                                 "1 for the standby slot's state in force (label state: EMPTY, "
                                 "WARMING, READY, FAILED, as in the API), 0 for the others.")),
      swap_due_(SingleGauge(*registry_, "tandem_swap_due",
                            "1 while a threshold swap is due and waits for a READY standby.")),
      consecutive_warm_failures_(SingleGauge(*registry_, "tandem_consecutive_warm_failures",
                                             "Failed warm-ups in a row (0 after a success).")),
      tip_height_(SingleGauge(*registry_, "tandem_tip_height",
                              "Height of the committed tip; -1 while no block is committed.")),
      replay_log_calls_(
          SingleGauge(*registry_, "tandem_replay_log_calls", "Init calls in the replay log.")),
      replay_log_bytes_(
          SingleGauge(*registry_, "tandem_replay_log_bytes", "Size of the replay log in bytes.")),
      historical_instances_(SingleGauge(*registry_, "tandem_historical_instances",
                                        "Instances kept now for views below the tip.")),
      historical_instances_limit_(
          SingleGauge(*registry_, "tandem_historical_instances_limit",
                      "At most this many instances are kept for views below the tip "
                      "(--historical_instances).")),
      unsettled_instances_(
          SingleGauge(*registry_, "tandem_unsettled_instances",
                      "Instances that ran blocks not durable yet, held to serve their heights.")),
      unsettled_instances_given_up_(SingleCounter(
          *registry_, "tandem_unsettled_instances_given_up_total",
          "Instances of blocks in flight given up past --unsettled_instances; their blocks "
          "settled without becoming the active.")),
      host_memory_budget_bytes_(
          SingleGauge(*registry_, "tandem_host_memory_budget_bytes",
                      "Guest memory all instances together may commit (--host_memory_budget, or "
                      "the memory cgroup's limit less headroom and RocksDB's caches).")),
      guest_memory_committed_bytes_(
          SingleGauge(*registry_, "tandem_guest_memory_committed_bytes",
                      "Guest linear memory committed by all instances, counted against the "
                      "host memory budget.")),
      swaps_(CounterFamily(*registry_, "tandem_swaps_total",
                           "Swaps of the active instance, by reason.")),
      swap_pause_seconds_(SingleHistogram(*registry_, "tandem_swap_pause_seconds",
                                          "How long no call could start during a swap.",
                                          SwapPauseBuckets())),
      warm_seconds_(SingleHistogram(*registry_, "tandem_warm_seconds",
                                    "Duration of successful warm-ups (instantiate and replay).",
                                    WarmBuckets())),
      warm_failures_(CounterFamily(*registry_, "tandem_warm_failures_total",
                                   "Failed warm-ups, by cause (deadline, replay_diverged, guest, "
                                   "host, other).")),
      blocks_(CounterFamily(*registry_, "tandem_blocks_total",
                            "Blocks run by the pair, by outcome (ok or the failure's code).")),
      block_seconds_(SingleHistogram(*registry_, "tandem_block_seconds",
                                     "Duration of committed blocks (run and commit).",
                                     CallBuckets())),
      last_commit_time_(GaugeFamily(*registry_, "tandem_last_commit_timestamp_seconds",
                                    "Unix time of the latest block this process committed.")),
      instance_failures_(CounterFamily(*registry_, "tandem_instance_failures_total",
                                       "Instances retired because a call failed them, by the "
                                       "kind of call (block, view, init).")),
      swaps_delayed_(SingleCounter(*registry_, "tandem_swaps_delayed_total",
                                   "Swaps that were due while no standby was READY.")),
      rollbacks_(SingleCounter(*registry_, "tandem_rollbacks_total", "Rollbacks of the chain.")),
      replay_log_resets_(
          SingleCounter(*registry_, "tandem_replay_log_resets_total",
                        "Operator resets of the replay log (Admin.ResetReplayLog).")),
      replay_log_calls_dropped_(SingleCounter(*registry_, "tandem_replay_log_calls_dropped_total",
                                              "Init calls dropped from the replay log by resets.")),
      snapshots_(CounterFamily(*registry_, "tandem_snapshots_total",
                               "Snapshots (Admin.Snapshot and --snapshot_every), by outcome: ok "
                               "or failed.")),
      snapshots_taken_(snapshots_.Add({{"outcome", "ok"}})),
      snapshots_failed_(snapshots_.Add({{"outcome", "failed"}})),
      snapshot_seconds_(SingleHistogram(*registry_, "tandem_snapshot_seconds",
                                        "Duration of snapshots, taken or failed.",
                                        SnapshotBuckets())),
      last_snapshot_time_(GaugeFamily(*registry_, "tandem_last_snapshot_timestamp_seconds",
                                      "Unix time of the latest snapshot this process took.")),
      last_snapshot_height_(GaugeFamily(*registry_, "tandem_last_snapshot_height",
                                        "Tip height of the latest snapshot this process took.")),
      last_snapshot_failure_time_(
          GaugeFamily(*registry_, "tandem_last_snapshot_failure_timestamp_seconds",
                      "Unix time of the latest snapshot that failed in this process.")),
      host_memory_refusals_(CounterFamily(
          *registry_, "tandem_host_memory_refusals_total",
          "Calls failed with UNAVAILABLE because the host could not give memory below the cap, "
          "by call (block, view, init, warm) and cause (budget: the host memory budget; host: "
          "the system refused).")),
      views_(CounterFamily(*registry_, "tandem_views_total",
                           "View calls, by outcome (ok or the failure's code).")),
      view_seconds_(SingleHistogram(*registry_, "tandem_view_seconds", "Duration of view calls.",
                                    ViewBuckets())),
      grpc_started_(CounterFamily(*registry_, "grpc_server_started_total",
                                  "Total number of RPCs started on the server.")),
      grpc_handled_(CounterFamily(*registry_, "grpc_server_handled_total",
                                  "Total number of RPCs completed on the server, regardless of "
                                  "success or failure.")),
      grpc_handling_seconds_(
          prometheus::BuildHistogram()
              .Name("grpc_server_handling_seconds")
              .Help("Histogram of response latency (seconds) of gRPC that had been application-"
                    "level handled by the server.")
              .Register(*registry_)),
      db_live_data_bytes_(GaugeFamily(*registry_, "tandem_db_live_data_bytes",
                                      "RocksDB's estimate of the live data size.")),
      db_disk_bytes_(
          SingleGauge(*registry_, "tandem_db_disk_bytes", "Size of the database folder's files.")),
      watch_events_dropped_(SingleCounter(*registry_, "tandem_watch_events_dropped_total",
                                          "Events Admin.WatchEvents subscribers lost because "
                                          "they read too slowly.")),
      build_info_(GaugeFamily(*registry_, "tandem_build_info",
                              "1, labelled with tandem's version, git commit, V8 version and the "
                              "guest module's SHA-256.")) {
  for (proxy::SwapReason reason : kSwapReasons) {
    const std::string name(proxy::SwapReasonName(reason));
    swaps_by_reason_[name] = &swaps_.Add({{"reason", name}});
  }
  for (absl::string_view outcome : kOutcomes) {
    const std::string name(outcome);
    blocks_by_outcome_[name] = &blocks_.Add({{"outcome", name}});
    views_by_outcome_[name] = &views_.Add({{"outcome", name}});
  }
  for (absl::string_view cause : kWarmCauses) {
    const std::string name(cause);
    warm_failures_by_cause_[name] = &warm_failures_.Add({{"cause", name}});
  }
  for (proxy::StandbyState state : kStandbyStates) {
    const std::string name(proxy::StandbyStateName(state));
    standby_state_by_name_[name] = &standby_state_.Add({{"state", name}});
  }
  for (proxy::CallKind call : kFailingCalls) {
    instance_failures_.Add({{"call", std::string(proxy::CallKindName(call))}});
  }
  for (proxy::CallKind call : kRefusedCalls) {
    for (util::FailureCause cause : kRefusalCauses) {
      host_memory_refusals_by_key_[HostMemoryRefusalKey(call, cause)] =
          &host_memory_refusals_.Add({{"call", std::string(proxy::CallKindName(call))},
                                      {"cause", std::string(RefusalCauseLabel(cause))}});
    }
  }
  tip_height_.Set(-1);
}

void Metrics::OnPairEvent(const proxy::PairEvent& event) {
  using Kind = proxy::PairEvent::Kind;
  switch (event.kind) {
    case Kind::kSwap:
      Increment(swaps_by_reason_, proxy::SwapReasonName(event.reason));
      Observe(swap_pause_seconds_, event.pause);
      break;
    case Kind::kWarmReady:
      Observe(warm_seconds_, event.duration);
      break;
    case Kind::kWarmFailed:
      Increment(warm_failures_by_cause_, WarmFailureCause(event.failure, event.code));
      Increment(host_memory_refusals_by_key_, HostMemoryRefusalKey(event.call, event.failure));
      break;
    case Kind::kBlockCommitted: {
      Increment(blocks_by_outcome_, "ok");
      Observe(block_seconds_, event.duration);
      util::MutexLock lock(&commit_mu_);
      if (event.time > last_commit_) {
        last_commit_ = event.time;
        if (last_commit_series_ == nullptr) last_commit_series_ = &last_commit_time_.Add({});
        last_commit_series_->Set(absl::ToDoubleSeconds(event.time - absl::UnixEpoch()));
      }
      break;
    }
    case Kind::kBlockFailed:
      Increment(blocks_by_outcome_, OutcomeLabel(event.code));
      break;
    case Kind::kInstanceFailed:
      // Rare (once per failed instance): the family's own lookup is cheap enough, and a kind of
      // call not pre-created above still gets its series.
      instance_failures_.Add({{"call", std::string(proxy::CallKindName(event.call))}}).Increment();
      Increment(host_memory_refusals_by_key_, HostMemoryRefusalKey(event.call, event.failure));
      break;
    case Kind::kSwapDelayed:
      swaps_delayed_.Increment();
      break;
    case Kind::kRolledBack:
      rollbacks_.Increment();
      break;
    case Kind::kReplayLogReset:
      replay_log_resets_.Increment();
      replay_log_calls_dropped_.Increment(static_cast<double>(event.replay_log_calls_dropped));
      break;
    case Kind::kSnapshotTaken: {
      snapshots_taken_.Increment();
      Observe(snapshot_seconds_, event.duration);
      util::MutexLock lock(&snapshot_mu_);
      if (event.time > last_snapshot_) {
        last_snapshot_ = event.time;
        if (last_snapshot_time_series_ == nullptr) {
          last_snapshot_time_series_ = &last_snapshot_time_.Add({});
          last_snapshot_height_series_ = &last_snapshot_height_.Add({});
        }
        last_snapshot_time_series_->Set(absl::ToDoubleSeconds(event.time - absl::UnixEpoch()));
        last_snapshot_height_series_->Set(event.height);
      }
      break;
    }
    case Kind::kSnapshotFailed: {
      snapshots_failed_.Increment();
      Observe(snapshot_seconds_, event.duration);
      util::MutexLock lock(&snapshot_mu_);
      if (event.time > last_snapshot_failure_) {
        last_snapshot_failure_ = event.time;
        if (last_snapshot_failure_series_ == nullptr) {
          last_snapshot_failure_series_ = &last_snapshot_failure_time_.Add({});
        }
        last_snapshot_failure_series_->Set(absl::ToDoubleSeconds(event.time - absl::UnixEpoch()));
      }
      break;
    }
    case Kind::kWarmStarted:
    case Kind::kStandbyDiscarded:
    case Kind::kInitCall:
      break;  // Visible through the status gauges and the event stream.
  }
}

void Metrics::RecordView(const absl::Status& status, absl::Duration duration) {
  Increment(views_by_outcome_, OutcomeLabel(status.code()));
  Observe(view_seconds_, duration);
}

void Metrics::RecordGrpcStarted(absl::string_view service, absl::string_view method) {
  const std::string method_key = absl::StrCat(service, "/", method);
  prometheus::Counter* started;
  {
    util::MutexLock lock(&grpc_mu_);
    prometheus::Counter*& slot = grpc_started_series_[method_key];
    if (slot == nullptr) {
      slot = &grpc_started_.Add(
          {{"grpc_service", std::string(service)}, {"grpc_method", std::string(method)}});
    }
    started = slot;
  }
  started->Increment();
}

void Metrics::RecordDroppedWatchEvents(uint64_t count) {
  watch_events_dropped_.Increment(static_cast<double>(count));
}

void Metrics::SetBuildInfo(const BuildInfo& info) {
  util::MutexLock lock(&update_mu_);
  if (build_info_series_ != nullptr) build_info_.Remove(build_info_series_);
  build_info_series_ = &build_info_.Add({{"version", info.version},
                                         {"git_commit", info.git_commit},
                                         {"v8_version", info.v8_version},
                                         {"module_sha256", info.module_sha256}});
  build_info_series_->Set(1);
}

void Metrics::RecordGrpc(absl::string_view service, absl::string_view method, int code,
                         absl::Duration duration) {
  const absl::string_view code_label = GrpcCodeLabel(code);
  const std::string method_key = absl::StrCat(service, "/", method);
  const std::string handled_key = absl::StrCat(method_key, "/", code_label);
  prometheus::Counter* handled;
  prometheus::Histogram* seconds;
  {
    util::MutexLock lock(&grpc_mu_);
    prometheus::Counter*& handled_slot = grpc_handled_series_[handled_key];
    if (handled_slot == nullptr) {
      handled_slot = &grpc_handled_.Add({{"grpc_service", std::string(service)},
                                         {"grpc_method", std::string(method)},
                                         {"grpc_code", std::string(code_label)}});
    }
    handled = handled_slot;
    prometheus::Histogram*& seconds_slot = grpc_seconds_series_[method_key];
    if (seconds_slot == nullptr) {
      seconds_slot = &grpc_handling_seconds_.Add(
          {{"grpc_service", std::string(service)}, {"grpc_method", std::string(method)}},
          CallBuckets());
    }
    seconds = seconds_slot;
  }
  handled->Increment();
  Observe(*seconds, duration);
}

void Metrics::UpdateHostMemory(const engine::GuestMemoryLedger::Usage& usage) {
  util::MutexLock lock(&update_mu_);
  host_memory_budget_bytes_.Set(static_cast<double>(usage.budget_bytes));
  guest_memory_committed_bytes_.Set(static_cast<double>(usage.committed_bytes));
}

void Metrics::UpdateFromStatus(const proxy::PairStatus& status) {
  util::MutexLock lock(&update_mu_);
  SetSlot(memory_bytes_, "active", status.active.present,
          static_cast<double>(status.active.memory_bytes));
  SetSlot(memory_bytes_, "standby", status.standby.present,
          static_cast<double>(status.standby.memory_bytes));
  SetSlot(generation_, "active", status.active.present,
          static_cast<double>(status.active.generation));
  SetSlot(generation_, "standby", status.standby.present,
          static_cast<double>(status.standby.generation));
  for (const auto& [slot, slot_status] :
       {std::pair<const char*, const proxy::SlotStatus&>{"active", status.active},
        {"standby", status.standby}}) {
    SetSlot(heap_used_bytes_, slot, slot_status.present,
            static_cast<double>(slot_status.memory.heap_used_bytes));
    SetSlot(heap_total_bytes_, slot, slot_status.present,
            static_cast<double>(slot_status.memory.heap_total_bytes));
    SetSlot(heap_limit_bytes_, slot, slot_status.present,
            static_cast<double>(slot_status.memory.heap_limit_bytes));
  }
  memory_limit_bytes_.Set(static_cast<double>(status.memory_limit_bytes));
  const std::string policy(proxy::SwapPolicyName(status.policy));
  if (policy != policy_label_ && !policy_label_.empty()) {
    // One series per family: the configuration in force, never a stale policy beside it.
    const prometheus::Labels stale = {{"policy", policy_label_}};
    warm_at_ratio_.Remove(&warm_at_ratio_.Add(stale));
    swap_at_ratio_.Remove(&swap_at_ratio_.Add(stale));
  }
  policy_label_ = policy;
  warm_at_ratio_.Add({{"policy", policy}}).Set(status.warm_at);
  swap_at_ratio_.Add({{"policy", policy}}).Set(status.swap_at);
  const absl::string_view standby_state = proxy::StandbyStateName(status.standby_state);
  for (const auto& [name, gauge] : standby_state_by_name_) {
    gauge->Set(name == standby_state ? 1 : 0);
  }
  swap_due_.Set(status.swap_due ? 1 : 0);
  consecutive_warm_failures_.Set(status.consecutive_warm_failures);
  tip_height_.Set(status.tip.has_value() ? static_cast<double>(*status.tip) : -1);
  replay_log_calls_.Set(static_cast<double>(status.replay_log_calls));
  replay_log_bytes_.Set(static_cast<double>(status.replay_log_bytes));
  historical_instances_.Set(static_cast<double>(status.historical_instances));
  historical_instances_limit_.Set(static_cast<double>(status.historical_instances_limit));
  unsettled_instances_.Set(static_cast<double>(status.unsettled_instances));
  if (status.unsettled_instances_given_up > unsettled_given_up_seen_) {
    unsettled_instances_given_up_.Increment(
        static_cast<double>(status.unsettled_instances_given_up - unsettled_given_up_seen_));
    unsettled_given_up_seen_ = status.unsettled_instances_given_up;
  }
}

void Metrics::UpdateStore(const store::BlockStore& store) {
  absl::StatusOr<uint64_t> live = store.ApproximateLiveDataBytes();
  const uint64_t disk = FolderBytes(store.path());
  util::MutexLock lock(&update_mu_);
  if (live.ok()) {
    db_live_data_bytes_.Add({}).Set(static_cast<double>(*live));
  } else if (db_live_data_bytes_.Has({})) {
    db_live_data_bytes_.Remove(&db_live_data_bytes_.Add({}));
  }
  db_disk_bytes_.Set(static_cast<double>(disk));
}

namespace {

// One per call: created when the call starts, records it when its status is sent.
class GrpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  GrpcMetricsInterceptor(Metrics& metrics, absl::string_view path)
      : metrics_(metrics), started_(absl::Now()) {
    SplitGrpcMethod(path, &service_, &method_);
    is_view_ = service_ == "tandem.v1.Indexer" && method_ == "View";
    metrics_.RecordGrpcStarted(service_, method_);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      const absl::Duration took = absl::Now() - started_;
      metrics_.RecordGrpc(service_, method_, status.error_code(), took);
      if (is_view_) {
        metrics_.RecordView(absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                                         status.error_message()),
                            took);
      }
    }
    methods->Proceed();
  }

 private:
  Metrics& metrics_;
  const absl::Time started_;
  std::string service_;
  std::string method_;
  bool is_view_ = false;
};

class GrpcMetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit GrpcMetricsInterceptorFactory(Metrics& metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new GrpcMetricsInterceptor(metrics_, info->method() != nullptr ? info->method() : "");
  }

 private:
  Metrics& metrics_;
};

}  // namespace

void SplitGrpcMethod(absl::string_view path, std::string* service, std::string* method) {
  const size_t slash = path.rfind('/');
  if (absl::StartsWith(path, "/") && slash != absl::string_view::npos && slash > 1 &&
      slash + 1 < path.size()) {
    *service = std::string(path.substr(1, slash - 1));
    *method = std::string(path.substr(slash + 1));
  } else {
    *service = "unknown";
    *method = std::string(path);
  }
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
NewGrpcMetricsInterceptorFactory(Metrics& metrics) {
  return std::make_unique<GrpcMetricsInterceptorFactory>(metrics);
}

MetricsCollectable::MetricsCollectable(Metrics& metrics, const proxy::InstancePair* pair,
                                       const store::BlockStore* store)
    : metrics_(metrics), pair_(pair), store_(store) {}

std::vector<prometheus::MetricFamily> MetricsCollectable::Collect() const {
  util::MutexLock lock(&mu_);
  if (pair_ != nullptr) {
    metrics_.UpdateFromStatus(pair_->Status());
    // A pair exists only once V8 (and with it the ledger) is initialised.
    metrics_.UpdateHostMemory(engine::GuestMemoryUsage());
  }
  if (store_ != nullptr) metrics_.UpdateStore(*store_);
  std::vector<prometheus::MetricFamily> families = metrics_.registry()->Collect();
  if (store_ != nullptr) {
    // Absent when RocksDB reports no write-controller state.
    if (absl::StatusOr<store::WritePathStats> stats = store_->ReadWritePathStats(); stats.ok()) {
      for (prometheus::MetricFamily& family : WritePathMetricFamilies(*stats)) {
        families.push_back(std::move(family));
      }
    }
  }
  // Without /proc (not Linux) the process families are simply absent.
  if (absl::StatusOr<ProcessSample> sample = ReadProcessSample(); sample.ok()) {
    for (prometheus::MetricFamily& family : ProcessMetricFamilies(*sample)) {
      families.push_back(std::move(family));
    }
  }
  return families;
}

absl::StatusOr<std::unique_ptr<prometheus::Exposer>> StartMetricsExposer(
    absl::string_view address, const std::weak_ptr<prometheus::Collectable>& collectable) {
  // host:port, the host possibly a bracketed IPv6 address; civetweb takes the same syntax.
  const size_t colon = address.rfind(':');
  uint32_t port = 0;
  const bool bracketed = absl::StartsWith(address, "[");
  if (colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port > 65535 ||
      (bracketed && address[colon - 1] != ']') ||
      (!bracketed && address.substr(0, colon).find(':') != absl::string_view::npos)) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address \"", address, "\" is not host:port"));
  }
  try {
    // civetweb gives each connection a worker thread until its request has arrived, waiting up
    // to request_timeout_ms (30 s by default) for it. With its 2 default threads, two idle TCP
    // connections held /metrics for 30 s: Prometheus must not be starved by idle sockets, so
    // there are more workers, and an idle connection is dropped after a few seconds.
    auto exposer = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
        "listening_ports", std::string(address), "num_threads", absl::StrCat(kExposerThreads),
        "request_timeout_ms", absl::StrCat(absl::ToInt64Milliseconds(kExposerRequestTimeout))});
    exposer->RegisterCollectable(collectable);
    return exposer;
  } catch (const std::exception& error) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address,
                     " (port in use or address not local?): ", error.what()));
  }
}

namespace {

// Opens and closes a TCP connection to host:port (a numeric IPv4 or IPv6 host); failures are
// ignored: this only wakes a server that may already have stopped listening.
void Poke(const std::string& host, int port) {
  sockaddr_storage address{};
  socklen_t length = 0;
  if (auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
      inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    length = sizeof(sockaddr_in);
  } else if (auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
             inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    length = sizeof(sockaddr_in6);
  } else {
    return;
  }
  const int fd = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  (void)connect(fd, reinterpret_cast<sockaddr*>(&address), length);
  close(fd);
}

}  // namespace

void StopMetricsExposer(std::unique_ptr<prometheus::Exposer> exposer, absl::string_view address) {
  if (exposer == nullptr) return;
  const std::vector<int> ports = exposer->GetListeningPorts();
  std::string host(address.substr(0, address.rfind(':')));
  if (absl::StartsWith(host, "[")) host = host.substr(1, host.size() - 2);
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    exposer.reset();
    stopped = true;
  });
  while (!stopped.load()) {
    for (int port : ports) Poke(host, port);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stopper.join();
}

}  // namespace tandem::server
