// Helpers for the server tests: a TandemServer in-process on loopback ports picked by the kernel,
// over a real RocksDB in a temporary folder, and clients for it. Test-only.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/config.h"
#include "server/logger.h"
#include "server/tandem_server.h"
#include "tandem/v1/tandem.grpc.pb.h"

namespace tandem::server::testing {

// A fresh temporary folder, removed with the object.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "tandem-server-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::string GuestPath(absl::string_view name) {
  return absl::StrCat(TANDEM_GUEST_DIR, "/", name, ".wasm");
}

// A configuration for tests: the given guest, a database in `dir`, both listeners on port 0.
inline ServerConfig TestConfig(const TempDir& dir, absl::string_view guest = "bitcoin_indexer") {
  ServerConfig config;
  config.module_path = GuestPath(guest);
  config.db_path = (dir.path() / "db").string();
  config.listen = "127.0.0.1:0";
  config.admin_listen = "127.0.0.1:0";
  config.metrics_listen = "";
  config.fsync = false;
  config.shutdown_grace = absl::Seconds(5);
  return config;
}

// Client metadata for a bearer token (none when empty), and a deadline.
inline std::unique_ptr<grpc::ClientContext> Context(absl::string_view token = "",
                                                    absl::Duration deadline = absl::Seconds(60)) {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!token.empty()) context->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  context->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(deadline));
  return context;
}

inline std::shared_ptr<grpc::Channel> Channel(int port, int max_message_bytes = -1) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(max_message_bytes);
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials(), args);
}

// A running server and stubs for both listeners.
struct RunningServer {
  std::unique_ptr<TandemServer> server;
  std::unique_ptr<tandem::v1::Indexer::Stub> indexer;
  std::unique_ptr<tandem::v1::Admin::Stub> admin;         // On the admin listener.
  std::unique_ptr<tandem::v1::Admin::Stub> public_admin;  // Admin on the public listener.
};

inline Logger& TestLogger() {
  static Logger* logger = new Logger(stderr);
  return *logger;
}

inline RunningServer StartOrDie(const ServerConfig& config) {
  RunningServer running;
  absl::StatusOr<std::unique_ptr<TandemServer>> server = TandemServer::Start(config, TestLogger());
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return running;
  running.server = *std::move(server);
  running.indexer = tandem::v1::Indexer::NewStub(Channel(running.server->public_port()));
  running.public_admin = tandem::v1::Admin::NewStub(Channel(running.server->public_port()));
  if (running.server->admin_port() != 0) {
    running.admin = tandem::v1::Admin::NewStub(Channel(running.server->admin_port()));
  }
  return running;
}

inline tandem::v1::SubmitBlockRequest BlockRequest(uint32_t height, std::string bytes) {
  tandem::v1::SubmitBlockRequest request;
  request.set_height(height);
  request.set_block(std::move(bytes));
  return request;
}

}  // namespace tandem::server::testing
