// tandemctl end to end: a real tandemd process and tandemctl processes, over loopback gRPC.
// Checks the human and --json outputs and the documented exit statuses (0 ok, 1 the server
// refused, 2 usage, 3 input).
#include <fstream>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/bitcoin_fixtures.h"
#include "tests/server/process_util.h"
#include "tests/server/test_server_dirs.h"

namespace tandem::tools {
namespace {

using tandem::testing::Child;
using tandem::testing::WaitForPortFile;
using ::testing::HasSubstr;

class TandemctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::filesystem::path port_file = dir_.path() / "ports";
    daemon_ = std::make_unique<Child>(
        tandem::testing::TandemdCommand(
            TANDEMD, port_file,
            {absl::StrCat("--db=", (dir_.path() / "db").string()), "--fsync=false", "--token=tok",
             "--ingest_token=ingesttok", "--admin_token=admintok"}),
        dir_.path() / "tandemd.out", dir_.path() / "tandemd.err");
    std::optional<tandem::testing::TandemdPorts> ports = WaitForPortFile(*daemon_, port_file);
    ASSERT_TRUE(ports.has_value()) << daemon_->Stderr();
    port_ = ports->public_port;
    admin_port_ = ports->admin_port;

    blocks_ = engine::testing::LoadFixtureBlocks();
    std::ofstream hex(dir_.path() / "blocks.hex");
    hex << "# the fixture blocks, one per line\n";
    for (const auto& block : blocks_) hex << absl::BytesToHexString(block.bytes) << "\n";
  }

  void TearDown() override {
    if (daemon_ == nullptr) return;
    daemon_->Signal(SIGTERM);
    EXPECT_EQ(daemon_->Wait(absl::Seconds(60)), 0) << daemon_->Stderr();
  }

  struct Result {
    int status;
    std::string out;
    std::string err;
  };

  // Runs tandemctl with the addresses and tokens set, then `args`.
  Result Ctl(std::vector<std::string> args, bool with_tokens = true) {
    std::vector<std::string> argv = {TANDEMCTL, absl::StrCat("--addr=127.0.0.1:", port_),
                                     absl::StrCat("--admin_addr=127.0.0.1:", admin_port_)};
    if (with_tokens) {
      argv.push_back("--token=tok");
      argv.push_back("--ingest_token=ingesttok");
      argv.push_back("--admin_token=admintok");
    }
    argv.insert(argv.end(), args.begin(), args.end());
    ++runs_;
    Child child(argv, dir_.path() / absl::StrCat("ctl", runs_, ".out"),
                dir_.path() / absl::StrCat("ctl", runs_, ".err"));
    std::optional<int> status = child.Wait(absl::Seconds(120));
    return {status.value_or(-1000), child.Stdout(), child.Stderr()};
  }

  server::testing::ScratchDir dir_;
  std::unique_ptr<Child> daemon_;
  int port_ = 0;
  int admin_port_ = 0;
  int runs_ = 0;
  std::vector<engine::testing::FixtureBlock> blocks_;
};

TEST_F(TandemctlTest, SubmitViewSwapStatusTipBlockRollback) {
  Result submit = Ctl({"submit", "--start_height=1", (dir_.path() / "blocks.hex").string()});
  ASSERT_EQ(submit.status, 0) << submit.err;
  EXPECT_THAT(submit.out, HasSubstr("submitted 20 blocks (heights 1..20)"));

  Result tip = Ctl({"--json", "tip"});
  ASSERT_EQ(tip.status, 0) << tip.err;
  EXPECT_THAT(tip.out, HasSubstr("\"height\":20"));
  EXPECT_THAT(tip.out, HasSubstr("\"start_height\":1"));

  // block_summary of height 2 (request: u32 LE 2), answered at the tip.
  Result view = Ctl({"--json", "view", "block_summary", "--request_hex=02000000"});
  ASSERT_EQ(view.status, 0) << view.err;
  EXPECT_THAT(view.out, HasSubstr("\"height\":20"));
  uint32_t tx_count = blocks_[1].tx_count;
  std::string tx_count_le = absl::BytesToHexString(
      std::string({static_cast<char>(tx_count & 0xff), static_cast<char>((tx_count >> 8) & 0xff),
                   static_cast<char>((tx_count >> 16) & 0xff), static_cast<char>(tx_count >> 24)}));
  EXPECT_THAT(view.out, HasSubstr(absl::StrCat("\"answer\":\"", tx_count_le)));

  Result at_height = Ctl({"view", "block_summary", "--height=1", "--request_hex=02000000"});
  ASSERT_EQ(at_height.status, 0) << at_height.err;
  EXPECT_THAT(at_height.out, HasSubstr("height 1, 0 bytes"));

  Result status = Ctl({"status"});
  ASSERT_EQ(status.status, 0) << status.err;
  EXPECT_THAT(status.out, HasSubstr("policy      block"));
  EXPECT_THAT(status.out, HasSubstr("tip         20"));

  Result swap = Ctl({"swap", "--wait=30s"});
  ASSERT_EQ(swap.status, 0) << swap.err;
  EXPECT_THAT(swap.out, HasSubstr("swapped generation"));

  Result block = Ctl({"block", "5"});
  ASSERT_EQ(block.status, 0) << block.err;
  EXPECT_THAT(block.out, HasSubstr("block height 5"));
  EXPECT_THAT(block.out, HasSubstr("state root"));

  Result rollback = Ctl({"rollback", "10"});
  ASSERT_EQ(rollback.status, 0) << rollback.err;
  EXPECT_THAT(rollback.out, HasSubstr("tip height 10"));
  Result missing = Ctl({"block", "11"});
  EXPECT_EQ(missing.status, 1);
  EXPECT_THAT(missing.err, HasSubstr("NOT_FOUND"));

  // Resubmitting from the tip onwards continues at tip+1 by default: blocks 11..20 again.
  std::ofstream rest(dir_.path() / "rest.hex");
  for (size_t i = 10; i < blocks_.size(); ++i)
    rest << absl::BytesToHexString(blocks_[i].bytes) << "\n";
  rest.close();
  Result resubmit = Ctl({"--json", "submit", (dir_.path() / "rest.hex").string()});
  ASSERT_EQ(resubmit.status, 0) << resubmit.err;
  EXPECT_THAT(resubmit.out, HasSubstr("\"committed\":10"));
}

TEST_F(TandemctlTest, SubmitReadsRawFilesAndStdin) {
  std::ofstream raw(dir_.path() / "block1.raw", std::ios::binary);
  raw << blocks_[0].bytes;
  raw.close();
  Result submit =
      Ctl({"submit", "--raw", "--start_height=100", (dir_.path() / "block1.raw").string()});
  ASSERT_EQ(submit.status, 0) << submit.err;
  EXPECT_THAT(submit.out, HasSubstr("heights 100..100"));

  std::ofstream one(dir_.path() / "one.hex");
  one << absl::BytesToHexString(blocks_[1].bytes) << "\n";
  one.close();
  std::vector<std::string> argv = {TANDEMCTL, absl::StrCat("--addr=127.0.0.1:", port_),
                                   "--ingest_token=ingesttok", "submit"};
  Child child(argv, dir_.path() / "stdin.out", dir_.path() / "stdin.err", dir_.path() / "one.hex");
  ASSERT_EQ(child.Wait(absl::Seconds(60)), 0) << child.Stderr();
  EXPECT_THAT(child.Stdout(), HasSubstr("heights 101..101"));
}

TEST_F(TandemctlTest, ExitStatusesSayWhatHappened) {
  // 2: usage.
  EXPECT_EQ(Ctl({}).status, 2);
  EXPECT_EQ(Ctl({"frobnicate"}).status, 2);
  EXPECT_EQ(Ctl({"block"}).status, 2);
  EXPECT_EQ(Ctl({"block", "minus-one"}).status, 2);
  EXPECT_EQ(Ctl({"--no_such_flag", "tip"}).status, 2);
  Result empty = Ctl({"submit", (dir_.path() / "blocks.hex").string()});
  EXPECT_EQ(empty.status, 2);  // Empty store: --start_height is needed.
  EXPECT_THAT(empty.err, HasSubstr("--start_height"));
  EXPECT_EQ(Ctl({"--help"}).status, 0);

  // 3: input.
  std::ofstream bad(dir_.path() / "bad.hex");
  bad << absl::BytesToHexString(blocks_[0].bytes) << "\nnot hex\n";
  bad.close();
  Result input = Ctl({"submit", "--start_height=1", (dir_.path() / "bad.hex").string()});
  EXPECT_EQ(input.status, 3);
  EXPECT_THAT(input.err, HasSubstr("bad.hex:2"));
  EXPECT_EQ(Ctl({"submit", "--start_height=1", "/no/such/file"}).status, 3);

  // 1: the server refused, with the status code and message.
  Result unauthenticated = Ctl({"tip"}, /*with_tokens=*/false);
  EXPECT_EQ(unauthenticated.status, 1);
  EXPECT_THAT(unauthenticated.err, HasSubstr("UNAUTHENTICATED"));
  // A reader's token cannot write: the chain is the writers' (tandemd --ingest_token).
  Result reader_rollback = Ctl({"--token=tok", "rollback", "0"}, /*with_tokens=*/false);
  EXPECT_EQ(reader_rollback.status, 1);
  EXPECT_THAT(reader_rollback.err, HasSubstr("PERMISSION_DENIED"));
  Result not_found = Ctl({"--json", "init", "no_such_export"});
  EXPECT_EQ(not_found.status, 1);
  EXPECT_THAT(not_found.out, HasSubstr("\"code\":\"NOT_FOUND\""));
  std::ofstream gap(dir_.path() / "gap.hex");
  gap << absl::BytesToHexString(blocks_[0].bytes) << "\n";
  gap.close();
  ASSERT_EQ(Ctl({"submit", "--start_height=1", (dir_.path() / "gap.hex").string()}).status, 0);
  Result precondition = Ctl({"submit", "--start_height=5", (dir_.path() / "gap.hex").string()});
  EXPECT_EQ(precondition.status, 1);
  EXPECT_THAT(precondition.err, HasSubstr("FAILED_PRECONDITION"));
  EXPECT_THAT(precondition.err, HasSubstr("block at height 5"));
  Result unreachable = Ctl({"--addr=127.0.0.1:1", "--timeout=3s", "tip"});
  EXPECT_EQ(unreachable.status, 1);
  EXPECT_THAT(unreachable.err, HasSubstr("UNAVAILABLE"));
}

TEST_F(TandemctlTest, InitResetAndTheBindingInTip) {
  Result reset = Ctl({"init", "--reset"});
  EXPECT_EQ(reset.status, 0) << reset.err;
  EXPECT_THAT(reset.out, HasSubstr("dropped     0 calls"));
  Result json = Ctl({"--json", "init", "--reset"});
  EXPECT_EQ(json.status, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr("\"dropped_calls\":0"));
  Result beyond = Ctl({"init", "--reset", "--keep=2"});
  EXPECT_EQ(beyond.status, 1) << beyond.err;
  EXPECT_THAT(beyond.err, HasSubstr("holds 0 calls"));
  EXPECT_EQ(Ctl({"init", "--reset", "some_export"}).status, 2);
  EXPECT_EQ(Ctl({"init", "some_export", "--keep=1"}).status, 2);

  Result tip = Ctl({"tip"});
  EXPECT_EQ(tip.status, 0) << tip.err;
  EXPECT_THAT(tip.out, HasSubstr("memory cap  4294967296 bytes"));
  EXPECT_THAT(tip.out, HasSubstr("module      "));
  Result tip_json = Ctl({"--json", "tip"});
  EXPECT_THAT(tip_json.out, HasSubstr("\"memory_limit_bytes\":4294967296"));
}

TEST_F(TandemctlTest, SnapshotCopiesTheDatabaseAtItsTip) {
  ASSERT_EQ(Ctl({"submit", "--start_height=1", (dir_.path() / "blocks.hex").string()}).status, 0);
  const std::filesystem::path snapshot = dir_.path() / "snapshot";
  Result taken = Ctl({"snapshot", snapshot.string()});
  ASSERT_EQ(taken.status, 0) << taken.err;
  EXPECT_THAT(taken.out, HasSubstr(absl::StrCat("snapshot    ", snapshot.string(), " (")));
  EXPECT_THAT(taken.out, HasSubstr("tip         height 20"));
  EXPECT_THAT(taken.out, HasSubstr("memory cap  4294967296 bytes"));
  EXPECT_TRUE(std::filesystem::exists(snapshot / "TANDEM-SNAPSHOT"));

  Result again = Ctl({"snapshot", snapshot.string()});
  EXPECT_EQ(again.status, 1) << again.err;
  EXPECT_THAT(again.err, HasSubstr("already exists"));
  Result json = Ctl({"--json", "snapshot", (dir_.path() / "snapshot2").string()});
  ASSERT_EQ(json.status, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr("\"height\":20"));
  EXPECT_THAT(json.out, HasSubstr("\"start_height\":1"));
  EXPECT_THAT(json.out, HasSubstr("\"memory_limit_bytes\":4294967296"));
  EXPECT_EQ(Ctl({"snapshot"}).status, 2);
  EXPECT_EQ(Ctl({"snapshot", "a", "b"}).status, 2);
}

TEST_F(TandemctlTest, WatchPrintsEvents) {
  std::vector<std::string> argv = {TANDEMCTL, absl::StrCat("--admin_addr=127.0.0.1:", admin_port_),
                                   "--admin_token=admintok", "watch", "--count=1"};
  Child watch(argv, dir_.path() / "watch.out", dir_.path() / "watch.err");
  // The watcher subscribes asynchronously: swap until it has seen an event.
  std::optional<int> status;
  for (int attempt = 0; attempt < 50 && !status.has_value(); ++attempt) {
    ASSERT_EQ(Ctl({"swap"}).status, 0);
    status = watch.Wait(absl::Milliseconds(200));
  }
  ASSERT_EQ(status, 0) << watch.Stderr();
  EXPECT_THAT(watch.Stdout(), HasSubstr("generation"));
}

}  // namespace
}  // namespace tandem::tools
