// Unit tests of the server's small pieces: byte sizes, config validation, the status mapping,
// bearer tokens, log lines, the event hub (and its count of dropped events) and the port file.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/auth.h"
#include "server/config.h"
#include "server/convert.h"
#include "server/event_hub.h"
#include "server/logger.h"
#include "server/metrics.h"
#include "server/port_file.h"
#include "server/status_mapping.h"
#include "tests/server/test_server_dirs.h"

namespace tandem::server {
namespace {

using ::testing::HasSubstr;

TEST(ByteSizeTest, ParsesUnits) {
  EXPECT_EQ(*ParseByteSize("4096"), 4096u);
  EXPECT_EQ(*ParseByteSize("64MiB"), 64ull << 20);
  EXPECT_EQ(*ParseByteSize("4GiB"), 4ull << 30);
  EXPECT_EQ(*ParseByteSize("4gib"), 4ull << 30);
  EXPECT_EQ(*ParseByteSize("2G"), 2ull << 30);
  EXPECT_EQ(*ParseByteSize("1KB"), 1000u);
  EXPECT_EQ(*ParseByteSize("10 B"), 10u);
  EXPECT_FALSE(ParseByteSize("").ok());
  EXPECT_FALSE(ParseByteSize("MiB").ok());
  EXPECT_FALSE(ParseByteSize("12XB").ok());
  EXPECT_FALSE(ParseByteSize("-1").ok());
  EXPECT_FALSE(ParseByteSize("99999999999999999999").ok());
  EXPECT_FALSE(ParseByteSize("20000000TiB").ok());
  EXPECT_EQ(FormatByteSize(4ull << 30), "4GiB");
  EXPECT_EQ(FormatByteSize(1536 * 1024), "1536KiB");
  EXPECT_EQ(FormatByteSize(100), "100");
}

ServerConfig Valid() {
  ServerConfig config;
  config.module_path = "guest.wasm";
  return config;
}

void ExpectInvalid(const ServerConfig& config, absl::string_view flag) {
  absl::Status status = ValidateConfig(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr(absl::StrCat("--", flag)));
}

TEST(ConfigTest, DefaultsAreValid) { EXPECT_TRUE(ValidateConfig(Valid()).ok()); }

TEST(ConfigTest, RefusesValuesOutOfRange) {
  ServerConfig config = Valid();
  config.warm_at = 0.95;
  ExpectInvalid(config, "warm_at");
  config = Valid();
  config.warm_at = 0;
  ExpectInvalid(config, "warm_at");
  config = Valid();
  config.swap_at = 1.5;
  ExpectInvalid(config, "swap_at");
  config = Valid();
  config.memory_limit_bytes = 1000;
  ExpectInvalid(config, "memory_limit");
  config = Valid();
  config.token = config.ingest_token = "same";
  ExpectInvalid(config, "ingest_token");
  config = Valid();
  config.memory_limit_bytes = 5ull << 30;
  ExpectInvalid(config, "memory_limit");
  config = Valid();
  config.view_deadline = absl::ZeroDuration();
  ExpectInvalid(config, "view_deadline");
  config = Valid();
  config.tls_cert_path = "cert.pem";
  ExpectInvalid(config, "tls_key");
  config = Valid();
  config.listen = "localhost";
  ExpectInvalid(config, "listen");
  config = Valid();
  config.listen = "127.0.0.1:70000";
  ExpectInvalid(config, "listen");
  config = Valid();
  config.admin_listen = config.listen;
  ExpectInvalid(config, "admin_listen");
  config = Valid();
  config.max_message_bytes = 10;
  ExpectInvalid(config, "max_message_bytes");
  config = Valid();
  config.module_path = "";
  ExpectInvalid(config, "module");
  config = Valid();
  config.historical_instances = -1;
  ExpectInvalid(config, "historical_instances");
  config = Valid();
  config.historical_instances = 17;
  ExpectInvalid(config, "historical_instances");
  config = Valid();
  config.stream_blocks_in_flight = 0;
  ExpectInvalid(config, "stream_blocks_in_flight");
  config = Valid();
  config.unsettled_instances = 0;
  ExpectInvalid(config, "unsettled_instances");
  config = Valid();
  config.unsettled_instances = 65;
  ExpectInvalid(config, "unsettled_instances");
  config = Valid();
  config.db_block_cache_bytes = 1000;
  ExpectInvalid(config, "db_block_cache");
  config = Valid();
  config.db_write_buffer_bytes = 8ull << 20;  // RocksDB aborts the process at this size.
  ExpectInvalid(config, "db_write_buffers");
  config.db_write_buffer_bytes = 16ull << 20;
  EXPECT_TRUE(ValidateConfig(config).ok());
  config = Valid();
  config.listen = "[::1]:50051";
  config.admin_listen = "";
  EXPECT_TRUE(ValidateConfig(config).ok());
}

TEST(ConfigTest, PairAndStoreOptionsFollowTheConfig) {
  ServerConfig config = Valid();
  config.swap_policy = proxy::SwapPolicy::kThreshold;
  config.block_deadline = absl::Seconds(7);
  config.replay_log_max_bytes = 1234;
  config.fsync = false;
  config.historical_instances = 3;
  config.stream_blocks_in_flight = 5;
  config.unsettled_instances = 3;
  config.db_block_cache_bytes = 64ull << 20;
  config.db_write_buffer_bytes = 32ull << 20;
  proxy::PairOptions pair = PairOptionsFromConfig(config);
  EXPECT_EQ(pair.policy, proxy::SwapPolicy::kThreshold);
  EXPECT_EQ(pair.historical_instances, 3);
  EXPECT_EQ(pair.max_unsettled_instances, 3);
  EXPECT_EQ(pair.block_deadline, absl::Seconds(7));
  StreamLimits stream = StreamLimitsFromConfig(config);
  EXPECT_EQ(stream.max_blocks_in_flight, 5u);
  store::BlockStoreOptions store = StoreOptionsFromConfig(config);
  EXPECT_EQ(store.replay_log_limits.max_bytes, 1234u);
  EXPECT_FALSE(store.sync);
  EXPECT_EQ(store.block_cache_bytes, 64ull << 20);
  EXPECT_EQ(store.write_buffer_bytes, 32ull << 20);
}

TEST(StatusMappingTest, KeepsCodeAndMessage) {
  for (absl::StatusCode code :
       {absl::StatusCode::kInvalidArgument, absl::StatusCode::kFailedPrecondition,
        absl::StatusCode::kNotFound, absl::StatusCode::kDeadlineExceeded,
        absl::StatusCode::kResourceExhausted, absl::StatusCode::kAborted,
        absl::StatusCode::kUnavailable, absl::StatusCode::kUnauthenticated,
        absl::StatusCode::kDataLoss, absl::StatusCode::kInternal}) {
    grpc::Status status = ToGrpcStatus(absl::Status(code, "why"));
    EXPECT_EQ(static_cast<int>(status.error_code()), static_cast<int>(code));
    EXPECT_EQ(status.error_message(), "why");
  }
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

TEST(AuthTest, BearerTokens) {
  EXPECT_TRUE(CheckBearerToken("", "").ok());
  EXPECT_TRUE(CheckBearerToken("anything", "").ok());
  EXPECT_TRUE(CheckBearerToken("Bearer abc", "abc").ok());
  EXPECT_EQ(CheckBearerToken("", "abc").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(CheckBearerToken("Bearer abd", "abc").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(CheckBearerToken("Bearer ab", "abc").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(CheckBearerToken("abc", "abc").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(CheckBearerToken("Basic abc", "abc").error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST(AuthTest, ReadersAndWritersAreDifferentPrincipals) {
  const IndexerAccess open{"", "", /*local_listener=*/true};
  EXPECT_TRUE(CheckReader("", open).ok());
  EXPECT_TRUE(CheckWriter("", open).ok());  // A loopback listener with no tokens: as before.

  // A public listener without an ingest token reads but never writes, whatever is presented.
  const IndexerAccess public_reads{"", "", /*local_listener=*/false};
  EXPECT_TRUE(CheckReader("", public_reads).ok());
  grpc::Status refused = CheckWriter("Bearer anything", public_reads);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(refused.error_message(), HasSubstr("--ingest_token"));

  // With both tokens: the read token reads, only the ingest token writes (and reads).
  for (bool local : {true, false}) {
    const IndexerAccess split{"reader", "writer", local};
    EXPECT_EQ(CheckReader("", split).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_TRUE(CheckReader("Bearer reader", split).ok());
    EXPECT_TRUE(CheckReader("Bearer writer", split).ok());
    EXPECT_EQ(CheckWriter("Bearer reader", split).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_EQ(CheckWriter("", split).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(CheckWriter("Bearer wrong", split).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_TRUE(CheckWriter("Bearer writer", split).ok());
  }
  // An ingest token alone: public reads, token-guarded writes.
  const IndexerAccess writers_only{"", "writer", false};
  EXPECT_TRUE(CheckReader("", writers_only).ok());
  EXPECT_EQ(CheckWriter("", writers_only).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(CheckWriter("Bearer writer", writers_only).ok());
}

TEST(AuthTest, LoopbackAddresses) {
  for (const char* local : {"127.0.0.1:50051", "127.0.0.1:0", "127.1.2.3:1", "localhost:50051",
                            "[::1]:50051", "unix:/run/tandem.sock"}) {
    EXPECT_TRUE(IsLoopbackAddress(local)) << local;
  }
  for (const char* remote : {"0.0.0.0:50051", "[::]:50051", "10.0.0.5:50051", "example.org:443",
                             "128.0.0.1:1", "127.0.0.1.5:1", "[::ffff:10.0.0.1]:1"}) {
    EXPECT_FALSE(IsLoopbackAddress(remote)) << remote;
  }
}

TEST(LoggerTest, OneLinePerEventWithATimestamp) {
  std::string line = Logger::FormatLine(absl::FromUnixMicros(1700000000123456),
                                        Logger::Severity::kWarning, "two\nlines\x01");
  EXPECT_EQ(line, "2023-11-14T22:13:20.123456Z W two\\nlines\\x01");
}

TEST(PortFileTest, RoundTripsAndRefusesWhatItDoesNotWrite) {
  BoundAddresses addresses{"127.0.0.1:40123", "", "[::1]:9464"};
  EXPECT_EQ(FormatPortFile(addresses),
            "listen=127.0.0.1:40123\nadmin_listen=\nmetrics_listen=[::1]:9464\n");
  absl::StatusOr<BoundAddresses> parsed = ParsePortFile(FormatPortFile(addresses));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, addresses);
  EXPECT_THAT(ParsePortFile("listen 127.0.0.1:1\n").status().message(),
              HasSubstr("line 1 is not name=value"));
  EXPECT_THAT(ParsePortFile("listen=a:1\npublic=b:2\n").status().message(),
              HasSubstr("line 2 names no listener"));
  EXPECT_THAT(ParsePortFile("listen=a:1\nlisten=b:2\n").status().message(),
              HasSubstr("repeats 'listen'"));
}

TEST(PortFileTest, IsWrittenWholeAndRemoved) {
  testing::ScratchDir dir;
  const std::string path = (dir.path() / "ports").string();
  ASSERT_TRUE(WritePortFile(path, {"127.0.0.1:1", "127.0.0.1:2", ""}).ok());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(ParsePortFile(text.str())->admin_listen, "127.0.0.1:2");
  EXPECT_TRUE(RemovePortFile(path).ok());
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(RemovePortFile(path).ok());  // Already gone: fine.
  EXPECT_EQ(WritePortFile((dir.path() / "no" / "such" / "folder").string(), {}).code(),
            absl::StatusCode::kUnavailable);
}

TEST(ConvertTest, RefusesHashesOfTheWrongLength) {
  tandem::v1::SubmitBlockRequest request;
  request.set_height(3);
  request.set_block("bytes");
  EXPECT_TRUE(BlockSubmissionFromProto(request).ok());
  EXPECT_FALSE(BlockSubmissionFromProto(request)->prev_hash.has_value());
  request.set_prev_hash(std::string(32, 'p'));
  EXPECT_EQ(*BlockSubmissionFromProto(request)->prev_hash, std::string(32, 'p'));
  request.set_hash(std::string(33, 'h'));
  EXPECT_EQ(BlockSubmissionFromProto(request).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(EventHubTest, FansOutAndDropsTheOldestForSlowWatchers) {
  std::FILE* sink = std::tmpfile();
  Logger logger(sink);
  auto registry = std::make_shared<prometheus::Registry>();
  Metrics metrics(registry);
  EventHub hub(logger, /*queue_limit=*/2, &metrics);
  auto fast = hub.Subscribe();
  auto slow = hub.Subscribe();
  proxy::PairEvent event;
  event.kind = proxy::PairEvent::Kind::kBlockCommitted;
  uint64_t dropped = 0;
  proxy::PairEvent got;
  for (uint32_t height = 1; height <= 5; ++height) {
    event.height = height;
    hub.OnPairEvent(event);
    ASSERT_EQ(fast->Next(absl::ZeroDuration(), &got, &dropped),
              EventHub::Subscription::Result::kEvent);
    EXPECT_EQ(got.height, height);
    EXPECT_EQ(dropped, 0u);
  }
  ASSERT_EQ(slow->Next(absl::ZeroDuration(), &got, &dropped),
            EventHub::Subscription::Result::kEvent);
  EXPECT_EQ(got.height, 4u);
  EXPECT_EQ(dropped, 3u);
  // The same three, for Prometheus: only the slow watcher lost any.
  double exported = -1;
  for (const prometheus::MetricFamily& family : registry->Collect()) {
    if (family.name == "tandem_watch_events_dropped_total") {
      exported = family.metric.at(0).counter.value;
    }
  }
  EXPECT_EQ(exported, 3);
  ASSERT_EQ(slow->Next(absl::ZeroDuration(), &got, &dropped),
            EventHub::Subscription::Result::kEvent);
  EXPECT_EQ(got.height, 5u);
  EXPECT_EQ(dropped, 0u);
  EXPECT_EQ(slow->Next(absl::Milliseconds(10), &got, &dropped),
            EventHub::Subscription::Result::kTimeout);
  hub.Close();
  EXPECT_EQ(slow->Next(absl::Seconds(10), &got, &dropped), EventHub::Subscription::Result::kClosed);
  std::fclose(sink);
}

}  // namespace
}  // namespace tandem::server
