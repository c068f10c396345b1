// tandemd as a process: --help, the exit statuses of bad flags (2), of an invalid module (1,
// naming the import) and of a database bound to another cap (3), serving over gRPC, a clean
// shutdown on SIGTERM and SIGINT that waits for calls in flight and for nothing else (idle
// streams and channels).
#include <thread>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tandem/v1/tandem.grpc.pb.h"
#include "tests/server/process_util.h"
#include "tests/server/test_server_dirs.h"

namespace tandem::server {
namespace {

using tandem::testing::Child;
using tandem::testing::WaitForPortFile;
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
    return tandem::testing::TandemdCommand(
        TANDEMD, port_file(),
        {absl::StrCat("--db=", (dir_.path() / "db").string()), "--fsync=false"});
  }
  std::filesystem::path port_file() const { return dir_.path() / "ports"; }

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
                           "--port_file",
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
                           "--db_block_cache",
                           "--db_write_buffers",
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
    std::optional<tandem::testing::TandemdPorts> ports = WaitForPortFile(child, port_file());
    ASSERT_TRUE(ports.has_value()) << child.Stderr();
    ASSERT_NE(ports->public_port, 0);
    EXPECT_NE(ports->admin_port, 0);
    EXPECT_NE(ports->metrics_port, 0);
    auto indexer = tandem::v1::Indexer::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", ports->public_port), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    tandem::v1::GetTipResponse tip;
    grpc::Status status = indexer->GetTip(&context, {}, &tip);
    ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << child.Stderr();
    child.Signal(signal);
    EXPECT_EQ(child.Wait(absl::Seconds(30)), 0) << child.Stderr();
    EXPECT_THAT(child.Stderr(), HasSubstr("stopped"));
    EXPECT_FALSE(std::filesystem::exists(port_file())) << "a stopped tandemd left its port file";
  }
}

TEST_F(TandemdProcessTest, APortInUseStopsTheStartAtOnceNamingTheCause) {
  Child first(ServingFlags(), dir_.path() / "out1", dir_.path() / "err1");
  std::optional<tandem::testing::TandemdPorts> ports = WaitForPortFile(first, port_file());
  ASSERT_TRUE(ports.has_value()) << first.Stderr();
  for (const auto& [flag, port] : {std::pair<std::string, int>{"listen", ports->public_port},
                                   {"admin_listen", ports->admin_port},
                                   {"metrics_listen", ports->metrics_port}}) {
    SCOPED_TRACE(flag);
    std::vector<std::string> flags =
        tandem::testing::TandemdCommand(TANDEMD, dir_.path() / "ports2",
                                        {absl::StrCat("--db=", (dir_.path() / "db2").string()),
                                         absl::StrCat("--", flag, "=127.0.0.1:", port)});
    const absl::Time started = absl::Now();
    std::string err;
    EXPECT_EQ(RunToEnd(std::vector<std::string>(flags.begin() + 1, flags.end()), &err), 1);
    EXPECT_LT(absl::Now() - started, absl::Seconds(1)) << "a busy port is found before loading";
    EXPECT_THAT(err, HasSubstr(absl::StrCat("cannot listen on --", flag, "=127.0.0.1:", port,
                                            ": Address already in use")));
  }
  first.Signal(SIGTERM);
  EXPECT_EQ(first.Wait(absl::Seconds(30)), 0);
}

// A client of `port` that has made one call and then only keeps its connection.
std::unique_ptr<tandem::v1::Indexer::Stub> IdleClient(int port) {
  auto stub = tandem::v1::Indexer::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  tandem::v1::GetTipResponse tip;
  EXPECT_TRUE(stub->GetTip(&context, {}, &tip).ok());
  return stub;
}

TEST_F(TandemdProcessTest, SigtermWaitsForNoIdleStreamOrChannel) {
  std::vector<std::string> flags = ServingFlags();
  flags.push_back("--shutdown_grace=60s");
  Child child(flags, dir_.path() / "out", dir_.path() / "err");
  std::optional<tandem::testing::TandemdPorts> ports = WaitForPortFile(child, port_file());
  ASSERT_TRUE(ports.has_value()) << child.Stderr();
  // An idle channel, a block stream waiting for its first block, an event watch.
  auto idle = IdleClient(ports->public_port);
  auto streaming = IdleClient(ports->public_port);
  grpc::ClientContext stream_context;
  auto stream = streaming->StreamBlocks(&stream_context);
  auto admin = tandem::v1::Admin::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", ports->admin_port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext watch_context;
  auto watch = admin->WatchEvents(&watch_context, {});
  watch->WaitForInitialMetadata();  // The subscription exists.

  const absl::Time signalled = absl::Now();
  child.Signal(SIGTERM);
  // With nothing in flight there is nothing to wait for: not the 60 s grace, not the idle clients
  // (the promise: exit within 1 s of the last call in flight).
  EXPECT_EQ(child.Wait(absl::Seconds(70)), 0) << child.Stderr();
  const absl::Duration took = absl::Now() - signalled;
  EXPECT_LT(took, absl::Seconds(1)) << child.Stderr();
  std::cout << "exited " << absl::FormatDuration(took) << " after SIGTERM" << std::endl;
  tandem::v1::SubmitBlockResponse response;
  EXPECT_FALSE(stream->Read(&response));
  grpc::Status ended = stream->Finish();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::UNAVAILABLE) << ended.error_message();
}

TEST_F(TandemdProcessTest, SigtermLetsTheCallInFlightFinishThenExits) {
  std::vector<std::string> flags = ServingFlags();
  flags.push_back(absl::StrCat("--module=", TANDEM_GUEST_DIR, "/runaway.wasm"));
  flags.push_back("--block_deadline=3s");
  flags.push_back("--shutdown_grace=60s");
  Child child(flags, dir_.path() / "out", dir_.path() / "err");
  std::optional<tandem::testing::TandemdPorts> ports = WaitForPortFile(child, port_file());
  ASSERT_TRUE(ports.has_value()) << child.Stderr();
  auto indexer = IdleClient(ports->public_port);
  auto idle = IdleClient(ports->public_port);
  // A block that runs until its 3 s deadline; SIGTERM arrives while it runs.
  grpc::Status block_status;
  absl::Time block_done;
  std::thread block([&] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    tandem::v1::SubmitBlockRequest request;
    request.set_height(1);
    tandem::v1::SubmitBlockResponse response;
    block_status = indexer->SubmitBlock(&context, request, &response);
    block_done = absl::Now();
  });
  absl::SleepFor(absl::Milliseconds(500));
  child.Signal(SIGTERM);
  EXPECT_EQ(child.Wait(absl::Seconds(40)), 0) << child.Stderr();
  const absl::Time exited = absl::Now();
  block.join();
  // The call ran to its own end (its deadline), not cancelled by the shutdown...
  EXPECT_EQ(block_status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << block_status.error_message();
  EXPECT_THAT(block_status.error_message(), HasSubstr("past its deadline"));
  // ...and the process left soon after it, not at the end of the 60 s grace.
  EXPECT_LT(exited - block_done, absl::Seconds(1)) << child.Stderr();
  std::cout << "exited " << absl::FormatDuration(exited - block_done)
            << " after the last call in flight finished" << std::endl;
}

TEST_F(TandemdProcessTest, ADatabaseBoundToAnotherCapExitsThreeNamingBothAndWhatToDo) {
  // reads_and_writes commits an empty block (no ops) as it is.
  std::vector<std::string> flags = ServingFlags();
  flags.push_back(absl::StrCat("--module=", TANDEM_GUEST_DIR, "/reads_and_writes.wasm"));
  {
    Child child(flags, dir_.path() / "out-bind", dir_.path() / "err-bind");
    std::optional<tandem::testing::TandemdPorts> ports = WaitForPortFile(child, port_file());
    ASSERT_TRUE(ports.has_value()) << child.Stderr();
    auto indexer = tandem::v1::Indexer::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", ports->public_port), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    tandem::v1::SubmitBlockRequest block;
    block.set_height(1);
    tandem::v1::SubmitBlockResponse response;
    grpc::Status status = indexer->SubmitBlock(&context, block, &response);
    ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << child.Stderr();
    child.Signal(SIGTERM);
    ASSERT_EQ(child.Wait(absl::Seconds(30)), 0) << child.Stderr();
  }
  flags.erase(flags.begin());  // RunToEnd puts tandemd first.
  std::string err;
  std::vector<std::string> other_cap = flags;
  other_cap.push_back("--memory_limit=64MiB");
  EXPECT_EQ(RunToEnd(other_cap, &err), 3) << err;
  EXPECT_THAT(err, HasSubstr("memory cap 4294967296 bytes (given 67108864 bytes)"));
  EXPECT_THAT(err, HasSubstr("--memory_limit=64MiB"));
  EXPECT_THAT(err, HasSubstr("new --db"));
}

}  // namespace
}  // namespace tandem::server
