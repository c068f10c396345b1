// The Admin service over real loopback gRPC: status, swap, init calls, events; where Admin is
// reachable (its own listener only, unless --admin_on_public); tokens; TLS with a test certificate.
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "tests/engine/bitcoin_fixtures.h"
#include "tests/server/test_server.h"

namespace tandem::server {
namespace {

using engine::testing::LoadFixtureBlocks;
using testing::BlockRequest;
using testing::Context;
using ::testing::HasSubstr;
using testing::RunningServer;
using testing::StartOrDie;
using testing::TempDir;
using testing::TestConfig;

TEST(AdminServiceTest, StatusDescribesThePair) {
  TempDir dir;
  RunningServer s = StartOrDie(TestConfig(dir));
  tandem::v1::StatusResponse status;
  ASSERT_TRUE(s.admin->Status(Context().get(), {}, &status).ok());
  EXPECT_EQ(status.policy(), tandem::v1::SWAP_POLICY_BLOCK);
  EXPECT_DOUBLE_EQ(status.warm_at(), 0.70);
  EXPECT_DOUBLE_EQ(status.swap_at(), 0.90);
  EXPECT_EQ(status.memory_limit_bytes(), 4ull << 30);
  EXPECT_FALSE(status.has_tip_height());
  // Under `block` the first instance may wait as the READY standby until a block runs on it.
  const tandem::v1::SlotStatus& slot =
      status.active().present() ? status.active() : status.standby();
  EXPECT_TRUE(slot.present());
  EXPECT_GT(slot.generation(), 0u);
  EXPECT_GT(slot.memory_bytes(), 0u);
  EXPECT_THAT(status.module_path(), HasSubstr("bitcoin_indexer.wasm"));

  auto blocks = LoadFixtureBlocks();
  tandem::v1::SubmitBlockResponse response;
  ASSERT_TRUE(
      s.indexer->SubmitBlock(Context().get(), BlockRequest(1, blocks[0].bytes), &response).ok());
  ASSERT_TRUE(s.admin->Status(Context().get(), {}, &status).ok());
  EXPECT_EQ(status.tip_height(), 1u);
}

TEST(AdminServiceTest, ResetReplayLogIsTheWayOutOfADivergedLog) {
  TempDir dir;
  ServerConfig config = TestConfig(dir, "init_echo");
  config.standby_wait = absl::Milliseconds(500);
  config.admin_token = "admin";
  RunningServer s = StartOrDie(config);
  tandem::v1::SubmitBlockResponse block;
  ASSERT_TRUE(s.indexer->SubmitBlock(Context().get(), BlockRequest(1, ""), &block).ok());
  for (const char* name : {"init_config", "init_nondeterministic"}) {
    tandem::v1::InitializeRequest init;
    init.set_name(name);
    init.set_payload("cfg");
    tandem::v1::InitializeResponse answer;
    ASSERT_TRUE(s.admin->Initialize(Context("admin").get(), init, &answer).ok()) << name;
  }
  // Every warm-up now diverges at call 1, so no block finds a fresh instance.
  grpc::Status stuck = s.indexer->SubmitBlock(Context().get(), BlockRequest(2, ""), &block);
  EXPECT_EQ(stuck.error_code(), grpc::StatusCode::UNAVAILABLE) << stuck.error_message();

  tandem::v1::ResetReplayLogRequest request;
  tandem::v1::ResetReplayLogResponse response;
  EXPECT_EQ(s.admin->ResetReplayLog(Context().get(), request, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  request.set_keep_calls(5);
  EXPECT_EQ(s.admin->ResetReplayLog(Context("admin").get(), request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  request.set_keep_calls(1);
  grpc::Status reset = s.admin->ResetReplayLog(Context("admin").get(), request, &response);
  ASSERT_TRUE(reset.ok()) << reset.error_message();
  EXPECT_EQ(response.dropped_calls(), 1u);
  EXPECT_EQ(response.replay_log_calls(), 1u);

  grpc::Status recovered = s.indexer->SubmitBlock(Context().get(), BlockRequest(2, ""), &block);
  ASSERT_TRUE(recovered.ok()) << recovered.error_message();
  tandem::v1::StatusResponse status;
  ASSERT_TRUE(s.admin->Status(Context("admin").get(), {}, &status).ok());
  EXPECT_EQ(status.replay_log_calls(), 1u);
  tandem::v1::ViewRequest view;
  view.set_name("config");
  tandem::v1::ViewResponse config_view;
  ASSERT_TRUE(s.indexer->View(Context().get(), view, &config_view).ok());
  EXPECT_EQ(config_view.answer(), "cfg");  // The kept call is still replayed.
}

TEST(AdminServiceTest, SwapPublishesTheStandbyAndEventsShowIt) {
  TempDir dir;
  ServerConfig config = TestConfig(dir);
  config.swap_policy = proxy::SwapPolicy::kNone;
  RunningServer s = StartOrDie(config);

  auto watch_context = Context();
  auto watch = s.admin->WatchEvents(watch_context.get(), {});
  watch->WaitForInitialMetadata();  // Subscribed.

  tandem::v1::StatusResponse before;
  ASSERT_TRUE(s.admin->Status(Context().get(), {}, &before).ok());
  tandem::v1::SwapRequest request;
  request.mutable_wait()->set_seconds(30);
  tandem::v1::SwapResponse swap;
  grpc::Status status = s.admin->Swap(Context().get(), request, &swap);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(swap.previous_generation(), before.active().generation());
  // Standbys warm in parallel, so a younger generation can become READY (and active) first.
  EXPECT_NE(swap.generation(), swap.previous_generation());
  tandem::v1::StatusResponse after;
  ASSERT_TRUE(s.admin->Status(Context().get(), {}, &after).ok());
  EXPECT_EQ(after.active().generation(), swap.generation());

  tandem::v1::PairEvent event;
  bool saw_swap = false;
  while (!saw_swap && watch->Read(&event)) {
    if (event.kind() == tandem::v1::PairEvent::KIND_SWAP) {
      saw_swap = true;
      EXPECT_EQ(event.generation(), swap.generation());
      EXPECT_EQ(event.previous_generation(), swap.previous_generation());
      EXPECT_EQ(event.reason(), tandem::v1::SWAP_REASON_MANUAL);
      EXPECT_GT(event.time().seconds(), 0);
    }
  }
  EXPECT_TRUE(saw_swap);
  // Shutdown ends the watch with UNAVAILABLE rather than waiting for the grace period.
  absl::Time started = absl::Now();
  s.server->Shutdown(absl::Seconds(20));
  EXPECT_LT(absl::Now() - started, absl::Seconds(5));
  while (watch->Read(&event)) {
  }
  EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST(AdminServiceTest, InitializeRecordsTheCallAndTheLogHasACap) {
  TempDir dir;
  ServerConfig config = TestConfig(dir, "init_echo");
  config.replay_log_max_bytes = 200;
  RunningServer s = StartOrDie(config);
  tandem::v1::InitializeRequest request;
  request.set_name("init_config");
  request.set_payload("hello");
  tandem::v1::InitializeResponse response;
  grpc::Status status = s.admin->Initialize(Context().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.answer(), "olleh");
  EXPECT_EQ(response.digest().size(), 32u);
  EXPECT_EQ(response.replay_log_calls(), 1u);

  request.set_payload(std::string(500, 'x'));
  status = s.admin->Initialize(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();

  request.set_name("no_such_init");
  EXPECT_EQ(s.admin->Initialize(Context().get(), request, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  request.set_name("");
  EXPECT_EQ(s.admin->Initialize(Context().get(), request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  request.set_name(std::string(9000, 'n'));  // Quoted in an error, it would not fit in trailers.
  status = s.admin->Initialize(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("9000 bytes long; at most 1024"));

  tandem::v1::StatusResponse after;
  ASSERT_TRUE(s.admin->Status(Context().get(), {}, &after).ok());
  EXPECT_EQ(after.replay_log_calls(), 1u);
}

TEST(AdminServiceTest, AdminIsNotServedOnThePublicListenerByDefault) {
  TempDir dir;
  RunningServer s = StartOrDie(TestConfig(dir));
  tandem::v1::StatusResponse status;
  EXPECT_EQ(s.public_admin->Status(Context().get(), {}, &status).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  tandem::v1::SwapResponse swap;
  EXPECT_EQ(s.public_admin->Swap(Context().get(), {}, &swap).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  // Nor Indexer on the admin listener.
  auto admin_indexer = tandem::v1::Indexer::NewStub(testing::Channel(s.server->admin_port()));
  tandem::v1::GetTipResponse tip;
  EXPECT_EQ(admin_indexer->GetTip(Context().get(), {}, &tip).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_TRUE(s.admin->Status(Context().get(), {}, &status).ok());
}

TEST(AdminServiceTest, AdminOnPublicWhenEnabledStillNeedsItsToken) {
  TempDir dir;
  ServerConfig config = TestConfig(dir);
  config.admin_on_public = true;
  config.admin_listen = "";
  config.admin_token = "admin-secret";
  config.token = "user-secret";
  RunningServer s = StartOrDie(config);
  EXPECT_EQ(s.server->admin_port(), 0);
  tandem::v1::StatusResponse status;
  EXPECT_EQ(s.public_admin->Status(Context().get(), {}, &status).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(s.public_admin->Status(Context("user-secret").get(), {}, &status).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(s.public_admin->Status(Context("admin-secret").get(), {}, &status).ok());
  tandem::v1::GetTipResponse tip;
  EXPECT_EQ(s.indexer->GetTip(Context("admin-secret").get(), {}, &tip).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(s.indexer->GetTip(Context("user-secret").get(), {}, &tip).ok());

  auto watch_context = Context();
  auto watch = s.public_admin->WatchEvents(watch_context.get(), {});
  tandem::v1::PairEvent event;
  EXPECT_FALSE(watch->Read(&event));
  EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

// grpc.health.v1.Health/Check with an empty request: the serialized reply (field 1 = status:
// "\x08\x01" is SERVING, "\x08\x02" NOT_SERVING), or a failure.
std::string HealthCheck(int port) {
  auto channel = testing::Channel(port);
  grpc::GenericStub generic(channel);
  grpc::ClientContext context;
  grpc::ByteBuffer request, reply;
  grpc::Slice empty("");
  request = grpc::ByteBuffer(&empty, 1);
  std::mutex mu;
  std::condition_variable done_cv;
  bool done = false;
  grpc::Status status;
  generic.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &reply,
                    [&](grpc::Status s) {
                      std::lock_guard<std::mutex> lock(mu);
                      status = s;
                      done = true;
                      done_cv.notify_all();
                    });
  std::unique_lock<std::mutex> lock(mu);
  done_cv.wait(lock, [&] { return done; });
  if (!status.ok()) return "failed: " + status.error_message();
  std::vector<grpc::Slice> slices;
  if (!reply.Dump(&slices).ok()) return "failed: unreadable reply";
  std::string bytes;
  for (const auto& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes;
}

TEST(AdminServiceTest, HealthIsNotServingWhileNoInstanceCanBeCreated) {
  TempDir dir;
  ServerConfig config = TestConfig(dir, "leaky");
  config.warm_deadline = absl::Milliseconds(200);
  config.standby_wait = absl::Milliseconds(200);
  {
    // Every warm-up replays a call that never returns: no instance can ever be made.
    auto store = store::BlockStore::Open(config.db_path);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->replay_log().Append({"init_runaway", "", std::string(32, '\0')}).ok());
  }
  RunningServer s = StartOrDie(config);
  const std::string kNotServing("\x08\x02", 2);
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (HealthCheck(s.server->public_port()) != kNotServing && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(HealthCheck(s.server->public_port()), kNotServing);
  EXPECT_EQ(HealthCheck(s.server->admin_port()), kNotServing);
  // Once warm-ups can succeed again, it serves again.
  ASSERT_TRUE(s.server->store().replay_log().Clear().ok());
  deadline = absl::Now() + absl::Seconds(20);
  while (HealthCheck(s.server->public_port()) == kNotServing && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(HealthCheck(s.server->public_port()), std::string("\x08\x01", 2));
}

TEST(AdminServiceTest, HealthIsServingOnBothListeners) {
  TempDir dir;
  RunningServer s = StartOrDie(TestConfig(dir));
  for (int port : {s.server->public_port(), s.server->admin_port()}) {
    EXPECT_EQ(HealthCheck(port), std::string("\x08\x01", 2));
  }
}

// Runs a shell command; true when it exits 0.
bool RunShell(const std::string& command) { return std::system(command.c_str()) == 0; }

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

TEST(AdminServiceTest, TlsRoundTripWithATestCertificate) {
  TempDir dir;
  const auto cert = dir.path() / "cert.pem";
  const auto key = dir.path() / "key.pem";
  ASSERT_TRUE(
      RunShell("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
               "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
               key.string() + " -out " + cert.string() + " 2>/dev/null"))
      << "openssl CLI needed";
  ServerConfig config = TestConfig(dir);
  config.tls_cert_path = cert.string();
  config.tls_key_path = key.string();
  RunningServer s = StartOrDie(config);

  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ReadFile(cert);
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  auto secure = tandem::v1::Admin::NewStub(grpc::CreateCustomChannel(
      absl::StrCat("127.0.0.1:", s.server->admin_port()), grpc::SslCredentials(options), args));
  tandem::v1::StatusResponse status;
  grpc::Status ok = secure->Status(Context().get(), {}, &status);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  auto indexer = tandem::v1::Indexer::NewStub(grpc::CreateCustomChannel(
      absl::StrCat("127.0.0.1:", s.server->public_port()), grpc::SslCredentials(options), args));
  auto blocks = LoadFixtureBlocks();
  tandem::v1::SubmitBlockResponse response;
  EXPECT_TRUE(
      indexer->SubmitBlock(Context().get(), BlockRequest(1, blocks[0].bytes), &response).ok());

  // A plaintext client cannot talk to the TLS listener.
  tandem::v1::StatusResponse plain_status;
  EXPECT_FALSE(s.admin->Status(Context("", absl::Seconds(3)).get(), {}, &plain_status).ok());
}

TEST(AdminServiceTest, StartFailsClearlyForAnInvalidModuleAndABusyPort) {
  TempDir dir;
  ServerConfig config = TestConfig(dir, "unknown_import");
  auto server = TandemServer::Start(config, testing::TestLogger());
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(server.status().message()), HasSubstr("__bogus_host_function"));

  RunningServer first = StartOrDie(TestConfig(dir));
  TempDir other;
  ServerConfig busy = TestConfig(other);
  busy.listen = absl::StrCat("127.0.0.1:", first.server->public_port());
  auto second = TandemServer::Start(busy, testing::TestLogger());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
}

}  // namespace
}  // namespace tandem::server
