// tandemd as a process: --help, the exit statuses of bad flags (2) and of an invalid module (1,
// naming the import), serving over gRPC, and a clean shutdown on SIGTERM and SIGINT.
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tandem/v1/tandem.grpc.pb.h"
#include "tests/server/process_util.h"
#include "tests/server/test_server_dirs.h"

namespace tandem::server {
namespace {

using tandem::testing::Child;
using tandem::testing::WaitForListeningPort;
using ::testing::HasSubstr;

class TandemdProcessTest : public ::testing::Test {
 protected:
  // Runs tandemd with `flags` to completion; returns its exit status.
  int RunToEnd(std::vector<std::string> flags, std::string* err = nullptr) {
    flags.insert(flags.begin(), TANDEMD);
    Child child(flags, dir_.path() / "out", dir_.path() / "err");
    std::optional<int> status = child.Wait(absl::Seconds(60));
    if (err != nullptr) *err = child.Stderr();
    return status.value_or(-1000);
  }

  std::vector<std::string> ServingFlags() {
    return {TANDEMD, absl::StrCat("--db=", (dir_.path() / "db").string()), "--listen=127.0.0.1:0",
            "--admin_listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0", "--fsync=false"};
  }

  testing::ScratchDir dir_;
};

TEST_F(TandemdProcessTest, HelpExplainsEveryFlagAndExitsZero) {
  Child child({TANDEMD, "--help"}, dir_.path() / "out", dir_.path() / "err");
  ASSERT_EQ(child.Wait(absl::Seconds(30)), 0);
  std::string help = child.Stdout();
  for (const char* flag : {"--module",
                           "--db",
                           "--listen",
                           "--admin_listen",
                           "--admin_on_public",
                           "--metrics_listen",
                           "--swap_policy",
                           "--warm_at",
                           "--swap_at",
                           "--memory_limit",
                           "--block_deadline",
                           "--view_deadline",
                           "--init_deadline",
                           "--warm_deadline",
                           "--max_message_bytes",
                           "--tls_cert",
                           "--tls_key",
                           "--token",
                           "--admin_token",
                           "--replay_log_max_bytes",
                           "--fsync"}) {
    EXPECT_THAT(help, HasSubstr(flag));
  }
  EXPECT_THAT(help, HasSubstr("bitcoin_indexer.wasm"));  // The default module.
}

TEST_F(TandemdProcessTest, BadFlagsExitTwoWithAMessage) {
  std::string err;
  EXPECT_EQ(RunToEnd({"--warm_at=0.95"}, &err), 2);
  EXPECT_THAT(err, HasSubstr("--warm_at"));
  EXPECT_EQ(RunToEnd({"--swap_policy=sometimes"}, &err), 2);
  EXPECT_THAT(err, HasSubstr("sometimes"));
  EXPECT_EQ(RunToEnd({"--memory_limit=lots"}, &err), 2);
  EXPECT_THAT(err, HasSubstr("memory_limit"));
  EXPECT_EQ(RunToEnd({"--block_deadline=soon"}, &err), 2);
  EXPECT_EQ(RunToEnd({"--view_deadline=0s"}, &err), 2);
  EXPECT_EQ(RunToEnd({"--tls_cert=/x.pem"}, &err), 2);
  EXPECT_THAT(err, HasSubstr("--tls_key"));
  EXPECT_EQ(RunToEnd({"--listen=nowhere"}, &err), 2);
  EXPECT_EQ(RunToEnd({"--no_such_flag"}, &err), 2);
  EXPECT_EQ(RunToEnd({"stray-argument"}, &err), 2);
}

TEST_F(TandemdProcessTest, InvalidModuleExitsOneNamingTheImport) {
  std::string err;
  EXPECT_EQ(RunToEnd({absl::StrCat("--module=", TANDEM_GUEST_DIR, "/unknown_import.wasm"),
                      absl::StrCat("--db=", (dir_.path() / "db").string()), "--listen=127.0.0.1:0",
                      "--admin_listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0"},
                     &err),
            1);
  EXPECT_THAT(err, HasSubstr("__bogus_host_function"));
  EXPECT_EQ(RunToEnd({"--module=/no/such/file.wasm", "--listen=127.0.0.1:0",
                      "--admin_listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0"},
                     &err),
            1);
  EXPECT_THAT(err, HasSubstr("/no/such/file.wasm"));
}

TEST_F(TandemdProcessTest, ServesAndShutsDownCleanlyOnSigtermAndSigint) {
  for (int signal : {SIGTERM, SIGINT}) {
    // Fresh log files per run: the parent must never read the previous run's ports.
    Child child(ServingFlags(), dir_.path() / absl::StrCat("out", signal),
                dir_.path() / absl::StrCat("err", signal));
    int port = WaitForListeningPort(child, "Indexer");
    ASSERT_NE(port, 0) << child.Stderr();
    auto indexer = tandem::v1::Indexer::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    tandem::v1::GetTipResponse tip;
    grpc::Status status = indexer->GetTip(&context, {}, &tip);
    ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << child.Stderr();
    child.Signal(signal);
    EXPECT_EQ(child.Wait(absl::Seconds(30)), 0) << child.Stderr();
    EXPECT_THAT(child.Stderr(), HasSubstr("stopped"));
  }
}

}  // namespace
}  // namespace tandem::server
