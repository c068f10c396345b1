// Tests of server/metrics.* and server/process_metrics.*: events, statuses and calls in, the
// Prometheus text out (names, labels, values), a real store and pair, and a real exposer.
#include "server/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/byte_buffer.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"
#include "proxy/events.h"
#include "server/process_metrics.h"
#include "server/write_path_metrics.h"
#include "tests/engine/test_support.h"
#include "tests/store/test_util.h"
#include "util/failure_cause.h"
#include "util/mutex.h"

namespace tandem::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The exposition text parsed into "name{labels}" -> value, exactly as serialized.
struct Scrape {
  std::string text;
  std::map<std::string, double> samples;

  bool Has(const std::string& series) const { return samples.count(series) > 0; }
  double Value(const std::string& series) const {
    auto it = samples.find(series);
    EXPECT_NE(it, samples.end()) << "no series " << series << " in:\n" << text;
    return it == samples.end() ? -12345 : it->second;
  }
};

Scrape Parse(const std::string& text) {
  Scrape scrape{text, {}};
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (line[0] == '#') continue;
    size_t space = line.rfind(' ');
    double value = 0;
    EXPECT_TRUE(absl::SimpleAtod(line.substr(space + 1), &value)) << line;
    scrape.samples[std::string(line.substr(0, space))] = value;
  }
  return scrape;
}

Scrape Serialize(const std::vector<prometheus::MetricFamily>& families) {
  return Parse(prometheus::TextSerializer().Serialize(families));
}

Scrape Serialize(const prometheus::Registry& registry) { return Serialize(registry.Collect()); }

proxy::PairEvent Event(proxy::PairEvent::Kind kind) {
  proxy::PairEvent event;
  event.kind = kind;
  event.time = absl::Now();
  return event;
}

proxy::PairEvent Swap(proxy::SwapReason reason, absl::Duration pause) {
  proxy::PairEvent event = Event(proxy::PairEvent::Kind::kSwap);
  event.reason = reason;
  event.pause = pause;
  return event;
}

store::BlockStoreOptions NoSync() {
  store::BlockStoreOptions options;
  options.sync = false;
  return options;
}

class MetricsTest : public ::testing::Test {
 protected:
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  Metrics metrics_{registry_};
};

// Every family of docs/design.md exists from the start, with its pre-labelled series at zero, so
// that rate() and the dashboard have series before the first event.
TEST_F(MetricsTest, EveryFamilyExistsBeforeAnyEvent) {
  Scrape scrape = Serialize(*registry_);
  for (const char* family : {"tandem_instance_memory_limit_bytes",
                             "tandem_standby_state",
                             "tandem_swaps_total",
                             "tandem_swap_pause_seconds",
                             "tandem_warm_seconds",
                             "tandem_warm_failures_total",
                             "tandem_replay_log_calls",
                             "tandem_replay_log_bytes",
                             "tandem_blocks_total",
                             "tandem_block_seconds",
                             "tandem_tip_height",
                             "tandem_views_total",
                             "tandem_view_seconds",
                             "tandem_db_disk_bytes",
                             "tandem_historical_instances",
                             "tandem_historical_instances_limit",
                             "tandem_instance_failures_total",
                             "tandem_watch_events_dropped_total",
                             "tandem_unsettled_instances",
                             "tandem_unsettled_instances_given_up_total"}) {
    EXPECT_THAT(scrape.text, HasSubstr(absl::StrCat("# TYPE ", family, " "))) << family;
  }
  // The gRPC families get their series (service, method, code) with the first call; a family
  // without series is not written at all.
  EXPECT_THAT(scrape.text, Not(HasSubstr("grpc_server_handled_total")));
  EXPECT_THAT(scrape.text, HasSubstr("# TYPE tandem_swaps_total counter"));
  EXPECT_THAT(scrape.text, HasSubstr("# TYPE tandem_swap_pause_seconds histogram"));
  EXPECT_THAT(scrape.text, HasSubstr("# TYPE tandem_standby_state gauge"));
  for (const char* reason :
       {"block", "threshold", "manual", "failure", "startup", "rollback", "sync"}) {
    EXPECT_EQ(scrape.Value(absl::StrCat("tandem_swaps_total{reason=\"", reason, "\"}")), 0);
  }
  for (const char* outcome : {"ok", "aborted", "deadline_exceeded", "unavailable", "error"}) {
    EXPECT_EQ(scrape.Value(absl::StrCat("tandem_blocks_total{outcome=\"", outcome, "\"}")), 0);
    EXPECT_EQ(scrape.Value(absl::StrCat("tandem_views_total{outcome=\"", outcome, "\"}")), 0);
  }
  for (const char* cause : {"deadline", "replay_diverged", "guest", "host", "other"}) {
    EXPECT_EQ(scrape.Value(absl::StrCat("tandem_warm_failures_total{cause=\"", cause, "\"}")), 0);
  }
  for (const char* call : {"block", "view", "init"}) {
    EXPECT_EQ(scrape.Value(absl::StrCat("tandem_instance_failures_total{call=\"", call, "\"}")), 0);
  }
  for (const char* state : {"EMPTY", "WARMING", "READY", "FAILED"}) {
    EXPECT_EQ(scrape.Value(absl::StrCat("tandem_standby_state{state=\"", state, "\"}")), 0);
  }
  EXPECT_EQ(scrape.Value("tandem_watch_events_dropped_total"), 0);
  EXPECT_EQ(scrape.Value("tandem_tip_height"), -1);
  // Nothing committed yet: no last-commit time (not a 1970 one), no build identity yet, no call.
  EXPECT_THAT(scrape.text, Not(HasSubstr("tandem_last_commit_timestamp_seconds ")));
  EXPECT_THAT(scrape.text, Not(HasSubstr("tandem_build_info{")));
  EXPECT_THAT(scrape.text, Not(HasSubstr("grpc_server_started_total{")));
  // No slot is known before the first status.
  EXPECT_THAT(scrape.text, Not(HasSubstr("tandem_instance_memory_bytes{")));
}

TEST_F(MetricsTest, SwapsCountByReasonAndObservePauseFromOneMicrosecond) {
  metrics_.OnPairEvent(Swap(proxy::SwapReason::kStartup, absl::Microseconds(3)));
  metrics_.OnPairEvent(Swap(proxy::SwapReason::kBlock, absl::Nanoseconds(800)));
  metrics_.OnPairEvent(Swap(proxy::SwapReason::kBlock, absl::Microseconds(40)));
  metrics_.OnPairEvent(Swap(proxy::SwapReason::kManual, absl::Milliseconds(2)));
  Scrape scrape = Serialize(*registry_);
  EXPECT_EQ(scrape.Value("tandem_swaps_total{reason=\"block\"}"), 2);
  EXPECT_EQ(scrape.Value("tandem_swaps_total{reason=\"manual\"}"), 1);
  EXPECT_EQ(scrape.Value("tandem_swaps_total{reason=\"startup\"}"), 1);
  EXPECT_EQ(scrape.Value("tandem_swaps_total{reason=\"threshold\"}"), 0);
  EXPECT_EQ(scrape.Value("tandem_swap_pause_seconds_count"), 4);
  EXPECT_NEAR(scrape.Value("tandem_swap_pause_seconds_sum"), 0.0020438, 1e-9);
  EXPECT_EQ(scrape.Value("tandem_swap_pause_seconds_bucket{le=\"1e-06\"}"), 1);
  EXPECT_EQ(scrape.Value("tandem_swap_pause_seconds_bucket{le=\"5e-06\"}"), 2);
  EXPECT_EQ(scrape.Value("tandem_swap_pause_seconds_bucket{le=\"5e-05\"}"), 3);
  EXPECT_EQ(scrape.Value("tandem_swap_pause_seconds_bucket{le=\"0.0025\"}"), 4);
  EXPECT_EQ(scrape.Value("tandem_swap_pause_seconds_bucket{le=\"+Inf\"}"), 4);
}

TEST_F(MetricsTest, ReplayLogResetsCountWithTheCallsTheyDropped) {
  EXPECT_EQ(Serialize(*registry_).Value("tandem_replay_log_resets_total"), 0);
  for (uint64_t dropped : {3u, 0u, 2u}) {
    proxy::PairEvent reset = Event(proxy::PairEvent::Kind::kReplayLogReset);
    reset.replay_log_calls_dropped = dropped;
    metrics_.OnPairEvent(reset);
  }
  metrics_.OnPairEvent(Swap(proxy::SwapReason::kReplayLogReset, absl::Microseconds(5)));
  Scrape scrape = Serialize(*registry_);
  EXPECT_EQ(scrape.Value("tandem_replay_log_resets_total"), 3);
  EXPECT_EQ(scrape.Value("tandem_replay_log_calls_dropped_total"), 5);
  EXPECT_EQ(scrape.Value("tandem_swaps_total{reason=\"replay_log_reset\"}"), 1);
}

TEST_F(MetricsTest, SnapshotsCountByOutcomeAndTheLatestIsKept) {
  Scrape before = Serialize(*registry_);
  EXPECT_EQ(before.Value("tandem_snapshots_total{outcome=\"ok\"}"), 0);
  EXPECT_EQ(before.Value("tandem_snapshots_total{outcome=\"failed\"}"), 0);
  EXPECT_FALSE(before.Has("tandem_last_snapshot_height"));  // No snapshot yet: no series.
  EXPECT_FALSE(before.Has("tandem_last_snapshot_failure_timestamp_seconds"));
  const absl::Time first = absl::FromUnixSeconds(1'800'000'000);
  for (auto [height, time] : {std::pair{40u, first + absl::Seconds(10)}, std::pair{30u, first}}) {
    proxy::PairEvent taken = Event(proxy::PairEvent::Kind::kSnapshotTaken);
    taken.height = height;
    taken.time = time;
    taken.duration = absl::Milliseconds(200);
    metrics_.OnPairEvent(taken);
  }
  proxy::PairEvent failed = Event(proxy::PairEvent::Kind::kSnapshotFailed);
  failed.duration = absl::Seconds(2);
  metrics_.OnPairEvent(failed);
  Scrape scrape = Serialize(*registry_);
  EXPECT_EQ(scrape.Value("tandem_snapshots_total{outcome=\"ok\"}"), 2);
  EXPECT_EQ(scrape.Value("tandem_snapshots_total{outcome=\"failed\"}"), 1);
  EXPECT_EQ(scrape.Value("tandem_snapshot_seconds_count"), 3);
  EXPECT_EQ(scrape.Value("tandem_snapshot_seconds_bucket{le=\"0.25\"}"), 2);
  // The later snapshot wins, whatever order its event arrived in.
  EXPECT_EQ(scrape.Value("tandem_last_snapshot_height"), 40);
  EXPECT_EQ(scrape.Value("tandem_last_snapshot_timestamp_seconds"), 1'800'000'010);
  EXPECT_TRUE(scrape.Has("tandem_last_snapshot_failure_timestamp_seconds"));
}

TEST_F(MetricsTest, WarmDurationsAndFailureCauses) {
  proxy::PairEvent ready = Event(proxy::PairEvent::Kind::kWarmReady);
  ready.duration = absl::Milliseconds(20);
  metrics_.OnPairEvent(ready);
  // Classified by the typed failure and code the status carried; the message is for people and
  // never read (the first event's says "replay diverged" but its cause says otherwise).
  using util::CausedError;
  using util::FailureCause;
  for (const absl::Status& status :
       {CausedError(absl::StatusCode::kUnavailable, FailureCause::kHostMemory,
                    "replay diverged, or so this message says"),
        CausedError(absl::StatusCode::kDeadlineExceeded, FailureCause::kDeadline, "x"),
        CausedError(absl::StatusCode::kAborted, FailureCause::kReplayDiverged, "x"),
        CausedError(absl::StatusCode::kAborted, FailureCause::kGuestTrap, "x"),
        CausedError(absl::StatusCode::kAborted, FailureCause::kGuestAbi, "x"),
        CausedError(absl::StatusCode::kUnavailable, FailureCause::kStackOverflow, "x"),
        // No cause travelled: the code decides.
        absl::ResourceExhaustedError("x"), absl::InternalError("replay diverged"),
        absl::DeadlineExceededError("x")}) {
    proxy::PairEvent failed = Event(proxy::PairEvent::Kind::kWarmFailed);
    proxy::DescribeFailure(status, failed);
    metrics_.OnPairEvent(failed);
  }
  Scrape scrape = Serialize(*registry_);
  EXPECT_EQ(scrape.Value("tandem_warm_seconds_count"), 1);
  EXPECT_NEAR(scrape.Value("tandem_warm_seconds_sum"), 0.02, 1e-12);
  EXPECT_EQ(scrape.Value("tandem_warm_seconds_bucket{le=\"0.01\"}"), 0);
  EXPECT_EQ(scrape.Value("tandem_warm_seconds_bucket{le=\"0.025\"}"), 1);
  EXPECT_EQ(scrape.Value("tandem_warm_failures_total{cause=\"deadline\"}"), 2);
  EXPECT_EQ(scrape.Value("tandem_warm_failures_total{cause=\"replay_diverged\"}"), 1);
  EXPECT_EQ(scrape.Value("tandem_warm_failures_total{cause=\"guest\"}"), 2);
  EXPECT_EQ(scrape.Value("tandem_warm_failures_total{cause=\"host\"}"), 3);
  EXPECT_EQ(scrape.Value("tandem_warm_failures_total{cause=\"other\"}"), 1);
}

TEST_F(MetricsTest, BlocksCountByOutcomeAndCommittedOnesAreTimedFrom100Microseconds) {
  for (absl::Duration took : {absl::Microseconds(90), absl::Milliseconds(3), absl::Seconds(45)}) {
    proxy::PairEvent committed = Event(proxy::PairEvent::Kind::kBlockCommitted);
    committed.duration = took;
    metrics_.OnPairEvent(committed);
  }
  // By the code the caller saw, whatever the message says.
  for (const absl::Status& status :
       {util::CausedError(absl::StatusCode::kAborted, util::FailureCause::kGuestAbort,
                          "UNAVAILABLE: a message that looks like another code"),
        util::CausedError(absl::StatusCode::kDeadlineExceeded, util::FailureCause::kDeadline,
                          "block ran past its deadline"),
        util::CausedError(absl::StatusCode::kUnavailable, util::FailureCause::kNoReadyInstance,
                          "no ready instance within 10s; the standby is WARMING"),
        absl::UnavailableError("block 3 ran but could not be committed: IO error")}) {
    proxy::PairEvent failed = Event(proxy::PairEvent::Kind::kBlockFailed);
    proxy::DescribeFailure(status, failed);
    metrics_.OnPairEvent(failed);
  }
  for (proxy::CallKind call : {proxy::CallKind::kView, proxy::CallKind::kView,
                               proxy::CallKind::kBlock, proxy::CallKind::kInit}) {
    proxy::PairEvent failed = Event(proxy::PairEvent::Kind::kInstanceFailed);
    failed.call = call;
    metrics_.OnPairEvent(failed);
  }
  metrics_.OnPairEvent(Event(proxy::PairEvent::Kind::kSwapDelayed));
  metrics_.OnPairEvent(Event(proxy::PairEvent::Kind::kRolledBack));
  Scrape scrape = Serialize(*registry_);
  EXPECT_EQ(scrape.Value("tandem_blocks_total{outcome=\"ok\"}"), 3);
  EXPECT_EQ(scrape.Value("tandem_blocks_total{outcome=\"aborted\"}"), 1);
  EXPECT_EQ(scrape.Value("tandem_blocks_total{outcome=\"deadline_exceeded\"}"), 1);
  EXPECT_EQ(scrape.Value("tandem_blocks_total{outcome=\"unavailable\"}"), 2);
  EXPECT_EQ(scrape.Value("tandem_block_seconds_count"), 3);
  EXPECT_EQ(scrape.Value("tandem_block_seconds_bucket{le=\"0.0001\"}"), 1);
  EXPECT_EQ(scrape.Value("tandem_block_seconds_bucket{le=\"0.005\"}"), 2);
  EXPECT_EQ(scrape.Value("tandem_block_seconds_bucket{le=\"30\"}"), 2);
  EXPECT_EQ(scrape.Value("tandem_block_seconds_bucket{le=\"60\"}"), 3);
  EXPECT_EQ(scrape.Value("tandem_instance_failures_total{call=\"block\"}"), 1);
  EXPECT_EQ(scrape.Value("tandem_instance_failures_total{call=\"view\"}"), 2);
  EXPECT_EQ(scrape.Value("tandem_instance_failures_total{call=\"init\"}"), 1);
  EXPECT_EQ(scrape.Value("tandem_swaps_delayed_total"), 1);
  EXPECT_EQ(scrape.Value("tandem_rollbacks_total"), 1);
}

TEST_F(MetricsTest, LastCommitTimeIsTheLatestCommitsWhateverTheOrderOfEvents) {
  const absl::Time first = absl::FromUnixSeconds(1'700'000'000);
  for (absl::Time time : {first, first + absl::Seconds(30), first + absl::Seconds(10)}) {
    proxy::PairEvent committed = Event(proxy::PairEvent::Kind::kBlockCommitted);
    committed.time = time;
    metrics_.OnPairEvent(committed);
  }
  // A failed block is no commit.
  proxy::PairEvent failed = Event(proxy::PairEvent::Kind::kBlockFailed);
  failed.time = first + absl::Seconds(60);
  metrics_.OnPairEvent(failed);
  EXPECT_EQ(Serialize(*registry_).Value("tandem_last_commit_timestamp_seconds"), 1'700'000'030);
}

TEST_F(MetricsTest, BuildInfoIsOneSeriesLabelledWithTheIdentity) {
  metrics_.SetBuildInfo({"0.1.0", "0123456789ab", "10.2.154", std::string(64, 'f')});
  metrics_.SetBuildInfo({"0.1.0", "0123456789ab", "10.2.154", std::string(64, 'e')});
  Scrape scrape = Serialize(*registry_);
  EXPECT_EQ(scrape.Value(absl::StrCat(
                "tandem_build_info{git_commit=\"0123456789ab\",module_sha256=\"",
                std::string(64, 'e'), "\",v8_version=\"10.2.154\",version=\"0.1.0\"}")),
            1);
  // The identity in force only: the first module's series is gone.
  EXPECT_THAT(scrape.text, Not(HasSubstr(std::string(64, 'f'))));
}

TEST_F(MetricsTest, ViewsCountByOutcome) {
  metrics_.RecordView(absl::OkStatus(), absl::Microseconds(50));
  metrics_.RecordView(absl::OkStatus(), absl::Microseconds(70));
  metrics_.RecordView(absl::NotFoundError("height 9 is above the tip 3"), absl::Microseconds(5));
  metrics_.RecordView(absl::AbortedError("trap"), absl::Milliseconds(1));
  metrics_.RecordView(absl::InternalError("?"), absl::Milliseconds(1));
  Scrape scrape = Serialize(*registry_);
  EXPECT_EQ(scrape.Value("tandem_views_total{outcome=\"ok\"}"), 2);
  EXPECT_EQ(scrape.Value("tandem_views_total{outcome=\"not_found\"}"), 1);
  EXPECT_EQ(scrape.Value("tandem_views_total{outcome=\"aborted\"}"), 1);
  EXPECT_EQ(scrape.Value("tandem_views_total{outcome=\"error\"}"), 1);
  EXPECT_EQ(scrape.Value("tandem_view_seconds_count"), 5);
  EXPECT_EQ(scrape.Value("tandem_view_seconds_bucket{le=\"1e-05\"}"), 1);
}

TEST_F(MetricsTest, GrpcCallsUseTheGoGrpcPrometheusLabels) {
  metrics_.RecordGrpc("tandem.v1.Indexer", "SubmitBlock", 0, absl::Milliseconds(2));
  metrics_.RecordGrpc("tandem.v1.Indexer", "SubmitBlock", 0, absl::Milliseconds(3));
  metrics_.RecordGrpc("tandem.v1.Indexer", "SubmitBlock", 9, absl::Microseconds(200));
  metrics_.RecordGrpc("tandem.v1.Admin", "Swap", 14, absl::Seconds(10));
  metrics_.RecordGrpc("tandem.v1.Admin", "Swap", 99, absl::Seconds(1));
  Scrape scrape = Serialize(*registry_);
  EXPECT_EQ(scrape.Value("grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"SubmitBlock\","
                         "grpc_service=\"tandem.v1.Indexer\"}"),
            2);
  EXPECT_EQ(scrape.Value("grpc_server_handled_total{grpc_code=\"FailedPrecondition\","
                         "grpc_method=\"SubmitBlock\",grpc_service=\"tandem.v1.Indexer\"}"),
            1);
  EXPECT_EQ(scrape.Value("grpc_server_handled_total{grpc_code=\"Unavailable\","
                         "grpc_method=\"Swap\",grpc_service=\"tandem.v1.Admin\"}"),
            1);
  EXPECT_EQ(scrape.Value("grpc_server_handled_total{grpc_code=\"Unknown\","
                         "grpc_method=\"Swap\",grpc_service=\"tandem.v1.Admin\"}"),
            1);
  EXPECT_EQ(scrape.Value("grpc_server_handling_seconds_count{grpc_method=\"SubmitBlock\","
                         "grpc_service=\"tandem.v1.Indexer\"}"),
            3);
  EXPECT_EQ(scrape.Value("grpc_server_handling_seconds_bucket{grpc_method=\"SubmitBlock\","
                         "grpc_service=\"tandem.v1.Indexer\",le=\"0.00025\"}"),
            1);
}

TEST(LabelTest, CodeNames) {
  EXPECT_EQ(GrpcCodeLabel(0), "OK");
  EXPECT_EQ(GrpcCodeLabel(1), "Canceled");
  EXPECT_EQ(GrpcCodeLabel(4), "DeadlineExceeded");
  EXPECT_EQ(GrpcCodeLabel(16), "Unauthenticated");
  EXPECT_EQ(GrpcCodeLabel(-1), "Unknown");
  EXPECT_EQ(GrpcCodeLabel(17), "Unknown");
  EXPECT_EQ(OutcomeLabel(absl::StatusCode::kOk), "ok");
  EXPECT_EQ(OutcomeLabel(absl::StatusCode::kDataLoss), "error");
  EXPECT_EQ(OutcomeLabel(absl::StatusCode::kAborted), "aborted");
  EXPECT_EQ(WarmFailureCause(util::FailureCause::kUnknown, absl::StatusCode::kOk), "other");
  EXPECT_EQ(WarmFailureCause(util::FailureCause::kHostMemoryBudget, absl::StatusCode::kAborted),
            "host");
}

proxy::PairStatus SomeStatus() {
  proxy::PairStatus status;
  status.policy = proxy::SwapPolicy::kThreshold;
  status.warm_at = 0.6;
  status.swap_at = 0.85;
  status.memory_limit_bytes = 64ull << 20;
  status.tip = 7;
  status.active.present = true;
  status.active.generation = 5;
  status.active.memory_bytes = 3 << 20;
  status.standby_state = proxy::StandbyState::kWarming;
  status.consecutive_warm_failures = 2;
  status.swap_due = true;
  status.replay_log_calls = 3;
  status.replay_log_bytes = 1234;
  status.historical_instances = 1;
  status.historical_instances_limit = 4;
  status.unsettled_instances = 3;
  status.unsettled_instances_given_up = 2;
  status.active.memory.heap_used_bytes = 700'000;
  status.active.memory.heap_total_bytes = 1'200'000;
  status.active.memory.heap_limit_bytes = 256 << 20;
  return status;
}

TEST_F(MetricsTest, StatusSetsTheGaugesAndAnEmptySlotHasNoSeries) {
  proxy::PairStatus status = SomeStatus();
  metrics_.UpdateFromStatus(status);
  Scrape scrape = Serialize(*registry_);
  EXPECT_EQ(scrape.Value("tandem_instance_memory_bytes{slot=\"active\"}"), 3 << 20);
  EXPECT_EQ(scrape.Value("tandem_instance_generation{slot=\"active\"}"), 5);
  EXPECT_FALSE(scrape.Has("tandem_instance_memory_bytes{slot=\"standby\"}"));
  EXPECT_FALSE(scrape.Has("tandem_instance_generation{slot=\"standby\"}"));
  EXPECT_EQ(scrape.Value("tandem_instance_memory_limit_bytes"), 64 << 20);
  EXPECT_EQ(scrape.Value("tandem_instance_v8_heap_used_bytes{slot=\"active\"}"), 700'000);
  EXPECT_EQ(scrape.Value("tandem_instance_v8_heap_total_bytes{slot=\"active\"}"), 1'200'000);
  EXPECT_EQ(scrape.Value("tandem_instance_v8_heap_limit_bytes{slot=\"active\"}"), 256 << 20);
  EXPECT_FALSE(scrape.Has("tandem_instance_v8_heap_used_bytes{slot=\"standby\"}"));
  EXPECT_EQ(scrape.Value("tandem_standby_state{state=\"WARMING\"}"), 1);
  EXPECT_EQ(scrape.Value("tandem_standby_state{state=\"READY\"}"), 0);
  EXPECT_EQ(scrape.Value("tandem_standby_state{state=\"EMPTY\"}"), 0);
  EXPECT_EQ(scrape.Value("tandem_standby_state{state=\"FAILED\"}"), 0);
  EXPECT_EQ(scrape.Value("tandem_swap_due"), 1);
  EXPECT_EQ(scrape.Value("tandem_consecutive_warm_failures"), 2);
  EXPECT_EQ(scrape.Value("tandem_tip_height"), 7);
  EXPECT_EQ(scrape.Value("tandem_replay_log_calls"), 3);
  EXPECT_EQ(scrape.Value("tandem_replay_log_bytes"), 1234);
  EXPECT_EQ(scrape.Value("tandem_historical_instances"), 1);
  EXPECT_EQ(scrape.Value("tandem_historical_instances_limit"), 4);
  EXPECT_EQ(scrape.Value("tandem_unsettled_instances"), 3);
  EXPECT_EQ(scrape.Value("tandem_unsettled_instances_given_up_total"), 2);
  EXPECT_EQ(scrape.Value("tandem_warm_at_ratio{policy=\"threshold\"}"), 0.6);
  EXPECT_EQ(scrape.Value("tandem_swap_at_ratio{policy=\"threshold\"}"), 0.85);

  status.standby.present = true;
  status.standby.generation = 6;
  status.standby.memory_bytes = 1 << 20;
  status.standby.memory.heap_used_bytes = 300'000;
  status.standby_state = proxy::StandbyState::kReady;
  status.unsettled_instances_given_up = 5;
  metrics_.UpdateFromStatus(status);
  scrape = Serialize(*registry_);
  // The counter follows the status's total, advanced by what was counted since the last scrape.
  EXPECT_EQ(scrape.Value("tandem_unsettled_instances_given_up_total"), 5);
  EXPECT_EQ(scrape.Value("tandem_instance_memory_bytes{slot=\"standby\"}"), 1 << 20);
  EXPECT_EQ(scrape.Value("tandem_instance_generation{slot=\"standby\"}"), 6);
  EXPECT_EQ(scrape.Value("tandem_instance_v8_heap_used_bytes{slot=\"standby\"}"), 300'000);
  EXPECT_EQ(scrape.Value("tandem_standby_state{state=\"READY\"}"), 1);
  EXPECT_EQ(scrape.Value("tandem_standby_state{state=\"WARMING\"}"), 0);

  status.standby = {};
  status.active = {};
  status.standby_state = proxy::StandbyState::kFailed;
  status.tip.reset();
  metrics_.UpdateFromStatus(status);
  scrape = Serialize(*registry_);
  EXPECT_THAT(scrape.text, Not(HasSubstr("tandem_instance_memory_bytes{")));
  EXPECT_THAT(scrape.text, Not(HasSubstr("tandem_instance_generation{")));
  EXPECT_THAT(scrape.text, Not(HasSubstr("tandem_instance_v8_heap_used_bytes{")));
  EXPECT_EQ(scrape.Value("tandem_standby_state{state=\"FAILED\"}"), 1);
  EXPECT_EQ(scrape.Value("tandem_standby_state{state=\"READY\"}"), 0);
  EXPECT_EQ(scrape.Value("tandem_tip_height"), -1);
}

TEST_F(MetricsTest, ConfigurationGaugesFollowThePolicyInForce) {
  proxy::PairStatus status = SomeStatus();
  metrics_.UpdateFromStatus(status);
  status.policy = proxy::SwapPolicy::kBlock;
  status.warm_at = 0.5;
  status.swap_at = 0.75;
  metrics_.UpdateFromStatus(status);
  Scrape scrape = Serialize(*registry_);
  EXPECT_EQ(scrape.Value("tandem_warm_at_ratio{policy=\"block\"}"), 0.5);
  EXPECT_EQ(scrape.Value("tandem_swap_at_ratio{policy=\"block\"}"), 0.75);
  EXPECT_FALSE(scrape.Has("tandem_warm_at_ratio{policy=\"threshold\"}"));
  EXPECT_FALSE(scrape.Has("tandem_swap_at_ratio{policy=\"threshold\"}"));
}

TEST_F(MetricsTest, StoreGauges) {
  store::testing::TempDir dir;
  absl::StatusOr<std::unique_ptr<store::BlockStore>> store =
      store::BlockStore::Open(dir.path() / "db", NoSync());
  ASSERT_TRUE(store.ok()) << store.status();
  metrics_.UpdateStore(**store);
  Scrape scrape = Serialize(*registry_);
  EXPECT_GE(scrape.Value("tandem_db_live_data_bytes"), 0);
  EXPECT_GT(scrape.Value("tandem_db_disk_bytes"), 0);  // At least RocksDB's manifest and log.
}

// The write path's families come with each scrape of a store: a synced commit is a WAL sync.
TEST_F(MetricsTest, CollectableAddsTheWritePathOfTheStore) {
  store::testing::TempDir dir;
  absl::StatusOr<std::unique_ptr<store::BlockStore>> store =
      store::BlockStore::Open(dir.path() / "db", store::BlockStoreOptions{});  // fsync on.
  ASSERT_TRUE(store.ok()) << store.status();
  auto collectable = std::make_shared<MetricsCollectable>(metrics_, nullptr, store->get());
  Scrape before = Serialize(collectable->Collect());
  store::BlockCommit commit;
  commit.height = 1;
  commit.block_bytes = "block";
  commit.writes = {{"k", "v"}};
  ASSERT_TRUE((*store)->CommitBlock(commit).ok());
  Scrape after = Serialize(collectable->Collect());
  EXPECT_THAT(after.text, HasSubstr("# TYPE tandem_db_wal_sync_seconds summary"));
  EXPECT_THAT(after.text, HasSubstr("# TYPE tandem_db_write_stall_seconds_total counter"));
  EXPECT_EQ(after.Value("tandem_db_wal_sync_seconds_count") -
                before.Value("tandem_db_wal_sync_seconds_count"),
            1);
  EXPECT_GT(after.Value("tandem_db_wal_sync_seconds{quantile=\"0.99\"}"), 0);
  EXPECT_EQ(after.Value("tandem_db_write_stall_seconds_total"), 0);
  EXPECT_EQ(after.Value("tandem_db_writes_stopped"), 0);
  EXPECT_EQ(after.Value("tandem_db_delayed_write_rate_bytes_per_second"), 0);
}

TEST(WritePathMetricsTest, ConvertsMicrosecondsAndFlags) {
  store::WritePathStats stats;
  stats.stall_micros = 2'500'000;
  stats.writes_stopped = true;
  stats.delayed_write_rate = 16 << 20;
  stats.wal_syncs = 4;
  stats.wal_sync_micros = 8'000;
  stats.wal_sync_p50_micros = 1'500;
  stats.wal_sync_p99_micros = 3'000;
  Scrape scrape = Serialize(WritePathMetricFamilies(stats));
  EXPECT_EQ(scrape.Value("tandem_db_write_stall_seconds_total"), 2.5);
  EXPECT_EQ(scrape.Value("tandem_db_writes_stopped"), 1);
  EXPECT_EQ(scrape.Value("tandem_db_delayed_write_rate_bytes_per_second"), 16 << 20);
  EXPECT_EQ(scrape.Value("tandem_db_wal_sync_seconds_count"), 4);
  EXPECT_DOUBLE_EQ(scrape.Value("tandem_db_wal_sync_seconds_sum"), 0.008);
  EXPECT_DOUBLE_EQ(scrape.Value("tandem_db_wal_sync_seconds{quantile=\"0.5\"}"), 0.0015);
  EXPECT_DOUBLE_EQ(scrape.Value("tandem_db_wal_sync_seconds{quantile=\"0.99\"}"), 0.003);
}

TEST(ProcessMetricsTest, ReadsThisProcess) {
  absl::StatusOr<ProcessSample> sample = ReadProcessSample();
  ASSERT_TRUE(sample.ok()) << sample.status();
  EXPECT_GT(sample->resident_bytes, 1u << 20);
  EXPECT_GE(sample->virtual_bytes, sample->resident_bytes);
  EXPECT_GE(sample->open_fds, 3u);  // stdin, stdout, stderr.
  EXPECT_GE(sample->max_fds, sample->open_fds);
  EXPECT_GE(sample->threads, 1u);
  const double now = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  EXPECT_LE(sample->start_time_seconds, now + 2);
  EXPECT_GE(sample->start_time_seconds, now - 3600);
}

TEST_F(MetricsTest, CollectableAddsTheProcessFamilies) {
  auto collectable = std::make_shared<MetricsCollectable>(metrics_, nullptr, nullptr);
  Scrape scrape = Serialize(collectable->Collect());
  EXPECT_THAT(scrape.text, HasSubstr("# TYPE process_cpu_seconds_total counter"));
  EXPECT_THAT(scrape.text, HasSubstr("# TYPE process_resident_memory_bytes gauge"));
  EXPECT_GT(scrape.Value("process_resident_memory_bytes"), 1 << 20);
  EXPECT_GT(scrape.Value("process_virtual_memory_bytes"), 1 << 20);
  EXPECT_GE(scrape.Value("process_open_fds"), 3);
  EXPECT_GT(scrape.Value("process_max_fds"), 0);
  EXPECT_GT(scrape.Value("process_start_time_seconds"), 1.6e9);
  EXPECT_GE(scrape.Value("process_cpu_seconds_total"), 0);
  EXPECT_GE(scrape.Value("process_threads"), 1);
  EXPECT_EQ(scrape.Value("tandem_swaps_total{reason=\"block\"}"), 0);
}

// A real pair over the example indexer, wired as tandemd wires it: the metrics are its event
// sink and the collectable refreshes from its status and store at each scrape.
TEST(MetricsWithPairTest, BlocksSwapsAndStatusReachTheScrape) {
  std::unique_ptr<engine::Module> module =
      engine::testing::LoadGuestOrDie("bitcoin_indexer", 64ull << 20);
  ASSERT_NE(module, nullptr);
  store::testing::TempDir dir;
  absl::StatusOr<std::unique_ptr<store::BlockStore>> store =
      store::BlockStore::Open(dir.path() / "db", NoSync());
  ASSERT_TRUE(store.ok()) << store.status();

  auto registry = std::make_shared<prometheus::Registry>();
  Metrics metrics(registry);
  {
    proxy::PairOptions options;
    options.historical_instances = 3;
    proxy::InstancePair pair(*module, **store, options, &metrics);
    absl::Status ready = pair.WaitUntilReady(absl::Seconds(30));
    ASSERT_TRUE(ready.ok()) << ready;
    auto collectable = std::make_shared<MetricsCollectable>(metrics, &pair, store->get());
    Scrape at_start = Serialize(collectable->Collect());
    EXPECT_EQ(at_start.Value("tandem_historical_instances"), 0);
    EXPECT_EQ(at_start.Value("tandem_historical_instances_limit"), 3);

    // An empty payload is a malformed block: the guest aborts, the block fails.
    proxy::BlockSubmission bad;
    bad.height = 1;
    absl::Status bad_status = pair.SubmitBlock(bad).status();
    EXPECT_EQ(bad_status.code(), absl::StatusCode::kAborted) << bad_status;
    // The first block of the test data (mainnet block 1, 215 bytes), at heights 1 and 2 (the
    // indexer does not check links).
    std::string block =
        engine::testing::ReadFileOrDie(std::string(TANDEM_TEST_DATA_DIR) + "/bitcoin_blocks.json");
    size_t hex_at = block.find("\"hex\": \"");
    ASSERT_NE(hex_at, std::string::npos);
    hex_at += 8;
    std::string hex = block.substr(hex_at, block.find('"', hex_at) - hex_at);
    std::string bytes;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
      bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    for (uint32_t height : {1u, 2u}) {
      proxy::BlockSubmission good;
      good.height = height;
      good.bytes = bytes;
      absl::StatusOr<proxy::BlockOutcome> outcome = pair.SubmitBlock(good);
      ASSERT_TRUE(outcome.ok()) << outcome.status();
    }
    ASSERT_TRUE(pair.Swap(absl::Seconds(30)).ok());

    Scrape scrape = Serialize(collectable->Collect());
    EXPECT_EQ(scrape.Value("tandem_blocks_total{outcome=\"ok\"}"), 2);
    EXPECT_EQ(scrape.Value("tandem_blocks_total{outcome=\"aborted\"}"), 1);
    EXPECT_EQ(scrape.Value("tandem_block_seconds_count"), 2);
    EXPECT_EQ(scrape.Value("tandem_swaps_total{reason=\"block\"}"), 2);
    EXPECT_EQ(scrape.Value("tandem_swaps_total{reason=\"manual\"}"), 1);
    EXPECT_GE(scrape.Value("tandem_swap_pause_seconds_count"), 3);
    EXPECT_GE(scrape.Value("tandem_warm_seconds_count"), 3);
    EXPECT_EQ(scrape.Value("tandem_tip_height"), 2);
    EXPECT_EQ(scrape.Value("tandem_instance_memory_limit_bytes"), 64 << 20);
    EXPECT_GT(scrape.Value("tandem_instance_memory_bytes{slot=\"active\"}"), 0);
    EXPECT_GT(scrape.Value("tandem_instance_generation{slot=\"active\"}"), 1);
    EXPECT_GT(scrape.Value("tandem_db_disk_bytes"), 0);
    EXPECT_GT(scrape.Value("process_resident_memory_bytes"), 0);
    // The malformed block failed its instance; no view or init call failed one.
    EXPECT_EQ(scrape.Value("tandem_instance_failures_total{call=\"block\"}"), 1);
    EXPECT_EQ(scrape.Value("tandem_instance_failures_total{call=\"view\"}"), 0);
    // Under `block`, the instance that ran height 1 is kept for views there when height 2's
    // instance takes over: one kept, of at most three.
    EXPECT_EQ(scrape.Value("tandem_historical_instances"), 1);
    EXPECT_EQ(scrape.Value("tandem_historical_instances_limit"), 3);
    // The V8 heap of the active instance's isolate, read on its worker after its latest call.
    EXPECT_GT(scrape.Value("tandem_instance_v8_heap_used_bytes{slot=\"active\"}"), 0);
    EXPECT_GE(scrape.Value("tandem_instance_v8_heap_total_bytes{slot=\"active\"}"),
              scrape.Value("tandem_instance_v8_heap_used_bytes{slot=\"active\"}"));
    EXPECT_GT(scrape.Value("tandem_instance_v8_heap_limit_bytes{slot=\"active\"}"),
              scrape.Value("tandem_instance_v8_heap_total_bytes{slot=\"active\"}"));
    EXPECT_GT(scrape.Value("tandem_last_commit_timestamp_seconds"), 1.6e9);
    EXPECT_EQ(scrape.Value("tandem_standby_state{state=\"READY\"}") +
                  scrape.Value("tandem_standby_state{state=\"WARMING\"}") +
                  scrape.Value("tandem_standby_state{state=\"EMPTY\"}") +
                  scrape.Value("tandem_standby_state{state=\"FAILED\"}"),
              1);
  }
}

// A TCP connection to 127.0.0.1:`port` whose reads give up after `timeout`; -1 on failure.
int Connect(int port, absl::Duration timeout) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  timeval limit = absl::ToTimeval(timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Sends `GET /metrics` to 127.0.0.1:`port` and returns the whole response ("" on failure, or
// what arrived before a read waited longer than `timeout`).
std::string HttpGetMetrics(int port, absl::Duration timeout = absl::Seconds(30)) {
  int fd = Connect(port, timeout);
  if (fd < 0) return "";
  std::string response;
  {
    const std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      for (ssize_t n; (n = read(fd, buffer, sizeof(buffer))) > 0;) response.append(buffer, n);
    }
  }
  close(fd);
  return response;
}

TEST_F(MetricsTest, ExposerServesTheCollectableAndReportsABusyPort) {
  metrics_.OnPairEvent(Swap(proxy::SwapReason::kManual, absl::Microseconds(2)));
  auto collectable = std::make_shared<MetricsCollectable>(metrics_, nullptr, nullptr);
  absl::StatusOr<std::unique_ptr<prometheus::Exposer>> exposer =
      StartMetricsExposer("127.0.0.1:0", collectable);
  ASSERT_TRUE(exposer.ok()) << exposer.status();
  std::vector<int> ports = (*exposer)->GetListeningPorts();
  ASSERT_EQ(ports.size(), 1u);
  ASSERT_GT(ports[0], 0);

  std::string response = HttpGetMetrics(ports[0]);
  EXPECT_THAT(response, HasSubstr("200 OK"));
  EXPECT_THAT(response, HasSubstr("tandem_swaps_total{reason=\"manual\"} 1"));
  EXPECT_THAT(response, HasSubstr("process_resident_memory_bytes "));

  absl::StatusOr<std::unique_ptr<prometheus::Exposer>> second =
      StartMetricsExposer(absl::StrCat("127.0.0.1:", ports[0]), collectable);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr(absl::StrCat("127.0.0.1:", ports[0])));

  for (const char* bad :
       {"", "9464", "127.0.0.1", "127.0.0.1:x", "127.0.0.1:70000", "::1:80", "[::1:80"}) {
    EXPECT_EQ(StartMetricsExposer(bad, collectable).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST_F(MetricsTest, IdleConnectionsNeitherStarveTheScrapeNorStayOpen) {
  auto collectable = std::make_shared<MetricsCollectable>(metrics_, nullptr, nullptr);
  absl::StatusOr<std::unique_ptr<prometheus::Exposer>> exposer =
      StartMetricsExposer("127.0.0.1:0", collectable);
  ASSERT_TRUE(exposer.ok()) << exposer.status();
  const int port = (*exposer)->GetListeningPorts().at(0);
  // Clients that connect and send nothing, more of them than civetweb's 2 default workers.
  std::vector<int> idle;
  for (int i = 0; i < kExposerThreads - 2; ++i) {
    idle.push_back(Connect(port, kExposerRequestTimeout + absl::Seconds(20)));
    ASSERT_GE(idle.back(), 0);
  }
  // Prometheus still gets its answer, long before an idle client would have given up.
  EXPECT_THAT(HttpGetMetrics(port, absl::Seconds(10)), HasSubstr("200 OK"))
      << "idle connections kept the scrape out";
  // And the server hangs up on them (read returns 0: closed), rather than keeping a worker each
  // for as long as they like (read would time out: -1, EAGAIN).
  for (int fd : idle) {
    char byte;
    EXPECT_EQ(read(fd, &byte, 1), 0) << "an idle connection stayed open: errno " << errno;
    close(fd);
  }
}

TEST(GrpcMethodTest, Splits) {
  std::string service, method;
  SplitGrpcMethod("/tandem.v1.Indexer/View", &service, &method);
  EXPECT_EQ(service, "tandem.v1.Indexer");
  EXPECT_EQ(method, "View");
  SplitGrpcMethod("weird", &service, &method);
  EXPECT_EQ(service, "unknown");
  EXPECT_EQ(method, "weird");
  SplitGrpcMethod("/x/", &service, &method);
  EXPECT_EQ(service, "unknown");
}

// Calls `path` on `channel` with `request` (raw bytes); returns the status code.
grpc::StatusCode CallRaw(const std::shared_ptr<grpc::Channel>& channel, const std::string& path,
                         const std::string& request) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Slice slice(request);
  grpc::ByteBuffer request_buffer(&slice, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, path, grpc::StubOptions(), &request_buffer, &response,
                 [&done](grpc::Status status) { done.set_value(status); });
  return done.get_future().get().error_code();
}

// Stands in for tandem's services: "/test.Echo/Echo" answers its request, "/test.Echo/Hold"
// answers it only when the test calls ReleaseHeld, any other method fails with NOT_FOUND.
class EchoService final : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* context) override {
    const std::string& method = context->method();
    return new Reactor(*this, method == "/test.Echo/Echo" || method == "/test.Echo/Hold",
                       method == "/test.Echo/Hold");
  }

  // Calls of /test.Echo/Hold whose request arrived and that wait for ReleaseHeld.
  int held() ABSL_LOCKS_EXCLUDED(mu_) {
    util::MutexLock lock(&mu_);
    return static_cast<int>(held_.size());
  }

  // Answers every held call.
  void ReleaseHeld() ABSL_LOCKS_EXCLUDED(mu_) {
    util::MutexLock lock(&mu_);
    for (grpc::ServerGenericBidiReactor* reactor : held_) {
      static_cast<Reactor*>(reactor)->Answer();
    }
    held_.clear();
  }

 private:
  class Reactor final : public grpc::ServerGenericBidiReactor {
   public:
    Reactor(EchoService& service, bool echo, bool hold) : service_(service), hold_(hold) {
      if (echo) {
        StartRead(&request_);
      } else {
        Finish(grpc::Status(grpc::StatusCode::NOT_FOUND, "no such method"));
      }
    }
    void OnReadDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status::OK);
        return;
      }
      if (hold_) {
        util::MutexLock lock(&service_.mu_);
        service_.held_.push_back(this);
        return;
      }
      Answer();
    }
    void Answer() { StartWriteAndFinish(&request_, grpc::WriteOptions(), grpc::Status::OK); }
    void OnDone() override { delete this; }

   private:
    EchoService& service_;
    const bool hold_;
    grpc::ByteBuffer request_;
  };

  util::Mutex mu_;
  std::vector<grpc::ServerGenericBidiReactor*> held_ ABSL_GUARDED_BY(mu_);
};

// `service` on loopback, port 0 (the port chosen in *port), with the metrics interceptor.
std::unique_ptr<grpc::Server> StartEchoServer(EchoService& service, Metrics& metrics, int* port) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), port);
  builder.RegisterCallbackGenericService(&service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(NewGrpcMetricsInterceptorFactory(metrics));
  builder.experimental().SetInterceptorCreators(std::move(creators));
  return builder.BuildAndStart();
}

// The interceptor on a real server over loopback.
TEST_F(MetricsTest, GrpcInterceptorRecordsEveryCall) {
  EchoService service;
  int port = 0;
  std::unique_ptr<grpc::Server> server = StartEchoServer(service, metrics_, &port);
  ASSERT_NE(server, nullptr);
  ASSERT_GT(port, 0);
  auto channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  EXPECT_EQ(CallRaw(channel, "/test.Echo/Echo", "hello"), grpc::StatusCode::OK);
  EXPECT_EQ(CallRaw(channel, "/test.Echo/Echo", "again"), grpc::StatusCode::OK);
  EXPECT_EQ(CallRaw(channel, "/test.Echo/Missing", ""), grpc::StatusCode::NOT_FOUND);
  // A view is also counted by outcome.
  EXPECT_EQ(CallRaw(channel, "/tandem.v1.Indexer/View", ""), grpc::StatusCode::NOT_FOUND);
  server->Shutdown();

  Scrape scrape = Serialize(*registry_);
  EXPECT_EQ(scrape.Value("grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Echo\","
                         "grpc_service=\"test.Echo\"}"),
            2);
  EXPECT_EQ(scrape.Value("grpc_server_handled_total{grpc_code=\"NotFound\","
                         "grpc_method=\"Missing\",grpc_service=\"test.Echo\"}"),
            1);
  EXPECT_EQ(scrape.Value("grpc_server_handling_seconds_count{grpc_method=\"Echo\","
                         "grpc_service=\"test.Echo\"}"),
            2);
  EXPECT_EQ(scrape.Value("grpc_server_handled_total{grpc_code=\"NotFound\","
                         "grpc_method=\"View\",grpc_service=\"tandem.v1.Indexer\"}"),
            1);
  EXPECT_EQ(scrape.Value("tandem_views_total{outcome=\"not_found\"}"), 1);
  EXPECT_EQ(scrape.Value("tandem_views_total{outcome=\"ok\"}"), 0);
  EXPECT_EQ(scrape.Value("tandem_view_seconds_count"), 1);
  EXPECT_EQ(
      scrape.Value("grpc_server_started_total{grpc_method=\"Echo\",grpc_service=\"test.Echo\"}"),
      2);
  EXPECT_EQ(scrape.Value("grpc_server_started_total{grpc_method=\"Missing\","
                         "grpc_service=\"test.Echo\"}"),
            1);
}

// Calls in flight are what started and has not been handled yet.
TEST_F(MetricsTest, StartedMinusHandledIsTheCallsInFlight) {
  EchoService service;
  int port = 0;
  std::unique_ptr<grpc::Server> server = StartEchoServer(service, metrics_, &port);
  ASSERT_NE(server, nullptr);
  auto channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  auto in_flight = [this] {
    Scrape scrape = Serialize(*registry_);
    double started = 0;
    double handled = 0;
    for (const auto& [series, value] : scrape.samples) {
      if (series.find("grpc_method=\"Hold\"") == std::string::npos) continue;
      if (series.rfind("grpc_server_started_total{", 0) == 0) started += value;
      if (series.rfind("grpc_server_handled_total{", 0) == 0) handled += value;
    }
    return started - handled;
  };
  std::vector<std::future<grpc::StatusCode>> calls;
  for (int i = 0; i < 3; ++i) {
    calls.push_back(std::async(std::launch::async,
                               [&channel] { return CallRaw(channel, "/test.Echo/Hold", "x"); }));
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (service.held() < 3 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_EQ(service.held(), 3);
  EXPECT_EQ(in_flight(), 3);
  service.ReleaseHeld();
  for (auto& call : calls) EXPECT_EQ(call.get(), grpc::StatusCode::OK);
  server->Shutdown();
  EXPECT_EQ(in_flight(), 0);
}

// Events, calls, status updates and scrapes from many threads at once (run under TSan too).
TEST_F(MetricsTest, ConcurrentUpdatesAndScrapes) {
  auto collectable = std::make_shared<MetricsCollectable>(metrics_, nullptr, nullptr);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  constexpr int kPerThread = 2000;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < kPerThread; ++i) {
        metrics_.OnPairEvent(Swap(proxy::SwapReason::kBlock, absl::Microseconds(1)));
        metrics_.RecordView(absl::OkStatus(), absl::Microseconds(i));
        metrics_.RecordGrpc("tandem.v1.Indexer", t % 2 ? "View" : "SubmitBlock", i % 3,
                            absl::Microseconds(i));
      }
    });
  }
  threads.emplace_back([this, &stop] {
    proxy::PairStatus status = SomeStatus();
    for (int i = 0; !stop.load(); ++i) {
      status.standby.present = i % 2 == 0;
      metrics_.UpdateFromStatus(status);
    }
  });
  threads.emplace_back([&collectable, &stop] {
    while (!stop.load()) Serialize(collectable->Collect());
  });
  for (int t = 0; t < 3; ++t) threads[t].join();
  stop = true;
  for (size_t t = 3; t < threads.size(); ++t) threads[t].join();
  Scrape scrape = Serialize(*registry_);
  EXPECT_EQ(scrape.Value("tandem_swaps_total{reason=\"block\"}"), 3 * kPerThread);
  EXPECT_EQ(scrape.Value("tandem_views_total{outcome=\"ok\"}"), 3 * kPerThread);
  double handled = 0;
  for (const auto& [series, value] : scrape.samples) {
    if (series.rfind("grpc_server_handled_total{", 0) == 0) handled += value;
  }
  EXPECT_EQ(handled, 3 * kPerThread);
}
}  // namespace
}  // namespace tandem::server
