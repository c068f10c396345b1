// Unit tests of the server's small pieces: byte sizes, config validation, the status mapping,
// bearer tokens, log lines and the event hub.
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/auth.h"
#include "server/config.h"
#include "server/convert.h"
#include "server/event_hub.h"
#include "server/logger.h"
#include "server/status_mapping.h"

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
  proxy::PairOptions pair = PairOptionsFromConfig(config);
  EXPECT_EQ(pair.policy, proxy::SwapPolicy::kThreshold);
  EXPECT_EQ(pair.historical_instances, 3);
  EXPECT_EQ(pair.block_deadline, absl::Seconds(7));
  store::BlockStoreOptions store = StoreOptionsFromConfig(config);
  EXPECT_EQ(store.replay_log_limits.max_bytes, 1234u);
  EXPECT_FALSE(store.sync);
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

TEST(LoggerTest, OneLinePerEventWithATimestamp) {
  std::string line = Logger::FormatLine(absl::FromUnixMicros(1700000000123456),
                                        Logger::Severity::kWarning, "two\nlines\x01");
  EXPECT_EQ(line, "2023-11-14T22:13:20.123456Z W two\\nlines\\x01");
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
  EventHub hub(logger, /*queue_limit=*/2);
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
