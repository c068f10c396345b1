// The tools' client library against a real gRPC server on loopback: a small Indexer service made
// for this test reports what each call carried (token, deadline), plaintext and TLS. Plus the
// status names and JSON documents every tool prints.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tandem/v1/tandem.grpc.pb.h"
#include "tests/server/test_server_dirs.h"
#include "tools/client/call_status.h"
#include "tools/client/connection.h"
#include "tools/client/json.h"
#include "tools/client/proto_time.h"

namespace tandem::client {
namespace {

using ::testing::HasSubstr;

// Answers GetTip with what the call carried: the authorization metadata as the tip's hash, the
// seconds left until the call's deadline as its height (capped at 1,000,000 for "none"). GetBlock
// waits until the client gives up, so deadlines can be seen to end calls.
class ReportingIndexer final : public tandem::v1::Indexer::Service {
 public:
  grpc::Status GetTip(grpc::ServerContext* context, const tandem::v1::GetTipRequest*,
                      tandem::v1::GetTipResponse* response) override {
    auto found = context->client_metadata().find("authorization");
    if (found != context->client_metadata().end()) {
      response->mutable_tip()->set_hash(std::string(found->second.data(), found->second.size()));
    }
    const absl::Duration left = absl::FromChrono(context->deadline()) - absl::Now();
    response->mutable_tip()->set_height(
        static_cast<uint32_t>(std::min<int64_t>(absl::ToInt64Seconds(left), 1'000'000)));
    return grpc::Status::OK;
  }

  grpc::Status GetBlock(grpc::ServerContext* context, const tandem::v1::GetBlockRequest*,
                        tandem::v1::GetBlockResponse*) override {
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    while (!context->IsCancelled() && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(5));
    return grpc::Status(grpc::StatusCode::INTERNAL, "the client never gave up");
  }
};

// A real gRPC server on a free loopback port.
class TestServer {
 public:
  explicit TestServer(std::shared_ptr<grpc::ServerCredentials> credentials) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", credentials, &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~TestServer() { server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5))); }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  int port() const { return port_; }

 private:
  ReportingIndexer service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

grpc::Status CallGetTip(Connection& connection, tandem::v1::GetTipResponse* response,
                        bool stream_context = false) {
  auto context = stream_context ? connection.StreamContext() : connection.UnaryContext();
  return connection.indexer().GetTip(context.get(), {}, response);
}

TEST(ConnectionTest, SendsTheTokenAsBearerAndNothingWithoutOne) {
  TestServer server(grpc::InsecureServerCredentials());
  ConnectionOptions options;
  options.address = server.address();
  options.token = "s3cret";
  Connection with_token(options);
  tandem::v1::GetTipResponse response;
  ASSERT_TRUE(CallGetTip(with_token, &response).ok());
  EXPECT_EQ(response.tip().hash(), "Bearer s3cret");

  options.token = "";
  Connection without(options);
  ASSERT_TRUE(CallGetTip(without, &response).ok());
  EXPECT_EQ(response.tip().hash(), "");
}

TEST(ConnectionTest, UnaryCallsCarryTheTimeoutAndStreamsNone) {
  TestServer server(grpc::InsecureServerCredentials());
  ConnectionOptions options;
  options.address = server.address();
  options.call_timeout = absl::Seconds(100);
  Connection connection(options);
  tandem::v1::GetTipResponse response;
  ASSERT_TRUE(CallGetTip(connection, &response).ok());
  EXPECT_GE(response.tip().height(), 90u);
  EXPECT_LE(response.tip().height(), 100u);

  auto context = connection.UnaryContext(absl::Seconds(20));
  ASSERT_TRUE(connection.indexer().GetTip(context.get(), {}, &response).ok());
  EXPECT_GE(response.tip().height(), 10u);
  EXPECT_LE(response.tip().height(), 20u);

  ASSERT_TRUE(CallGetTip(connection, &response, /*stream_context=*/true).ok());
  EXPECT_EQ(response.tip().height(), 1'000'000u);
}

TEST(ConnectionTest, ACallThatOutlivesItsDeadlineEndsWithDeadlineExceeded) {
  TestServer server(grpc::InsecureServerCredentials());
  ConnectionOptions options;
  options.address = server.address();
  options.call_timeout = absl::Milliseconds(300);
  Connection connection(options);
  auto context = connection.UnaryContext();
  tandem::v1::GetBlockResponse response;
  const absl::Time start = absl::Now();
  grpc::Status status = connection.indexer().GetBlock(context.get(), {}, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << DescribeStatus(status);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST(ConnectionTest, AnUnreachableAddressFailsTheCallNotTheConstructor) {
  ConnectionOptions options;
  options.address = "127.0.0.1:1";
  options.call_timeout = absl::Seconds(5);
  Connection connection(options);
  tandem::v1::GetTipResponse response;
  grpc::Status status = CallGetTip(connection, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << DescribeStatus(status);
}

std::string ReadText(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(ConnectionTest, TlsWithTheServersCertificateAsCa) {
  server::testing::ScratchDir dir;
  const auto cert = dir.path() / "cert.pem";
  const auto key = dir.path() / "key.pem";
  const std::string command = absl::StrCat(
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost -keyout ",
      key.string(), " -out ", cert.string(), " 2>/dev/null");
  ASSERT_EQ(std::system(command.c_str()), 0) << "the openssl command line is needed";
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back({ReadText(key), ReadText(cert)});
  TestServer server(grpc::SslServerCredentials(ssl));

  absl::StatusOr<std::string> ca = ReadTlsCa(cert.string());
  ASSERT_TRUE(ca.ok()) << ca.status();
  ConnectionOptions options;
  options.address = server.address();
  options.token = "tok";
  options.tls_ca_pem = *ca;
  options.tls_server_name = "localhost";  // The certificate does not name 127.0.0.1.
  options.call_timeout = absl::Seconds(10);
  Connection secure(options);
  tandem::v1::GetTipResponse response;
  grpc::Status status = CallGetTip(secure, &response);
  ASSERT_TRUE(status.ok()) << DescribeStatus(status);
  EXPECT_EQ(response.tip().hash(), "Bearer tok");

  options.tls_server_name = "";  // 127.0.0.1 is not in the certificate.
  Connection wrong_name(options);
  EXPECT_FALSE(CallGetTip(wrong_name, &response).ok());

  options.tls_ca_pem = "";
  Connection plaintext(options);
  EXPECT_EQ(CallGetTip(plaintext, &response).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST(ConnectionTest, ReadTlsCaNamesTheFileItCannotUse) {
  server::testing::ScratchDir dir;
  absl::StatusOr<std::string> missing = ReadTlsCa((dir.path() / "missing.pem").string());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("missing.pem"));
  std::ofstream(dir.path() / "junk.pem") << "not a certificate\n";
  absl::StatusOr<std::string> junk = ReadTlsCa((dir.path() / "junk.pem").string());
  EXPECT_EQ(junk.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(junk.status().message()), HasSubstr("junk.pem"));
}

TEST(CallStatusTest, NamesEveryCodeCanonically) {
  const std::pair<grpc::StatusCode, const char*> expected[] = {
      {grpc::StatusCode::OK, "OK"},
      {grpc::StatusCode::CANCELLED, "CANCELLED"},
      {grpc::StatusCode::UNKNOWN, "UNKNOWN"},
      {grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT"},
      {grpc::StatusCode::DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"},
      {grpc::StatusCode::NOT_FOUND, "NOT_FOUND"},
      {grpc::StatusCode::ALREADY_EXISTS, "ALREADY_EXISTS"},
      {grpc::StatusCode::PERMISSION_DENIED, "PERMISSION_DENIED"},
      {grpc::StatusCode::RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED"},
      {grpc::StatusCode::FAILED_PRECONDITION, "FAILED_PRECONDITION"},
      {grpc::StatusCode::ABORTED, "ABORTED"},
      {grpc::StatusCode::OUT_OF_RANGE, "OUT_OF_RANGE"},
      {grpc::StatusCode::UNIMPLEMENTED, "UNIMPLEMENTED"},
      {grpc::StatusCode::INTERNAL, "INTERNAL"},
      {grpc::StatusCode::UNAVAILABLE, "UNAVAILABLE"},
      {grpc::StatusCode::DATA_LOSS, "DATA_LOSS"},
      {grpc::StatusCode::UNAUTHENTICATED, "UNAUTHENTICATED"},
  };
  for (const auto& [code, name] : expected) EXPECT_EQ(StatusCodeName(code), name);
}

TEST(CallStatusTest, DescribesAndConvertsAFailedCall) {
  grpc::Status status(grpc::StatusCode::FAILED_PRECONDITION, "block at height 5 is not tip+1");
  EXPECT_EQ(DescribeStatus(status), "FAILED_PRECONDITION: block at height 5 is not tip+1");
  EXPECT_EQ(DescribeStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "")), "UNAVAILABLE");
  absl::Status converted = ToAbslStatus(status);
  EXPECT_EQ(converted.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(converted.message(), "block at height 5 is not tip+1");
  EXPECT_TRUE(ToAbslStatus(grpc::Status::OK).ok());
  EXPECT_EQ(DumpJson(FailedCallJson("view", status)),
            R"({"call":"view","code":"FAILED_PRECONDITION",)"
            R"("message":"block at height 5 is not tip+1"})");
}

TEST(JsonTest, EscapesControlCharactersAndReplacesInvalidUtf8) {
  Json document;
  document["text"] = std::string("quote \" backslash \\ newline \n tab \t bell \x07 end");
  document["bytes"] = std::string("ok \xff\xfe then \xc3\xa9");  // Two bad bytes, then "é".
  const std::string text = DumpJson(document);
  EXPECT_EQ(text,
            "{\"text\":\"quote \\\" backslash \\\\ newline \\n tab \\t bell \\u0007 end\","
            "\"bytes\":\"ok \xef\xbf\xbd\xef\xbf\xbd then \xc3\xa9\"}");
  Json parsed = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(parsed.is_discarded());
  EXPECT_EQ(parsed["text"], document["text"]);
}

TEST(JsonTest, BlockRecordsPrintTheirHashesInHex) {
  tandem::v1::BlockRecord record;
  record.set_height(7);
  record.set_hash(std::string("\x01\xab", 2));
  record.set_state_root(std::string("\xff", 1));
  record.set_write_count(3);
  EXPECT_EQ(DumpJson(BlockRecordJson(record)),
            R"({"height":7,"hash":"01ab","state_root":"ff","write_count":3})");
}

TEST(JsonTest, ProtoJsonKeepsFieldNamesAndDefaults) {
  tandem::v1::GetTipResponse tip;
  tip.mutable_tip()->set_height(5);
  tip.mutable_tip()->set_hash(std::string("\x01\x02\x03", 3));
  Json json = ProtoJson(tip);
  EXPECT_EQ(json["tip"]["height"], 5);
  EXPECT_EQ(json["tip"]["hash"], "AQID");       // proto3 JSON: bytes in base64.
  EXPECT_EQ(json["tip"]["write_count"], 0);     // Default values are printed.
  EXPECT_FALSE(json.contains("start_height"));  // Unset optional fields stay out.
  tandem::v1::SubmitBlockResponse submitted;
  submitted.set_generation(uint64_t{1} << 40);
  EXPECT_EQ(ProtoJson(submitted)["generation"], "1099511627776");  // 64-bit integers as strings.
}

TEST(ProtoTimeTest, ConvertsDurationsAndTimestampsExactly) {
  EXPECT_EQ(FromProto(ToProtoDuration(absl::Microseconds(1500))), absl::Microseconds(1500));
  EXPECT_EQ(FromProto(ToProtoDuration(absl::Seconds(-2) - absl::Nanoseconds(5))),
            absl::Seconds(-2) - absl::Nanoseconds(5));
  google::protobuf::Duration wait = ToProtoDuration(absl::Milliseconds(10'250));
  EXPECT_EQ(wait.seconds(), 10);
  EXPECT_EQ(wait.nanos(), 250'000'000);
  google::protobuf::Timestamp timestamp;
  timestamp.set_seconds(1'700'000'000);
  timestamp.set_nanos(123);
  EXPECT_EQ(FromProto(timestamp), absl::FromUnixSeconds(1'700'000'000) + absl::Nanoseconds(123));
}

}  // namespace
}  // namespace tandem::client
