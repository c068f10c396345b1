// Snapshots end to end, over real RocksDB on disk and real gRPC on loopback: a node restored from
// a snapshot at height h and fed h+1..N ends with the roots of a node that indexed 1..N; snapshots
// taken during streamed ingest are consistent and restore; a tampered or truncated snapshot is
// refused at start, whole, with exit status 4 from tandemd; a snapshot into a full or read-only
// file system (small tmpfs mounts) fails with a clear status and ingest carries on; periodic
// snapshots (--snapshot_every, --snapshot_keep) are taken and pruned as configured.
#include "store/snapshot.h"

#include <sys/mount.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/flags.h"
#include "server/snapshotter.h"
#include "store/block_store.h"
#include "tests/engine/bitcoin_fixtures.h"
#include "tests/server/process_util.h"
#include "tests/server/test_server.h"
#include "tests/support/scoped_tmpfs.h"
#include "util/failure_cause.h"

namespace tandem::server {
namespace {

namespace fs = std::filesystem;
using engine::testing::LoadFixtureBlocks;
using ::tandem::testing::ScopedTmpfs;
using testing::BlockRequest;
using testing::Context;
using ::testing::HasSubstr;
using testing::RunningServer;
using testing::StartOrDie;
using testing::TempDir;
using testing::TestConfig;

// Every file of a folder with its contents, to show that a refused snapshot was left byte for
// byte as it was.
std::map<std::string, std::string> FolderContents(const fs::path& directory) {
  std::map<std::string, std::string> contents;
  for (const fs::directory_entry& entry : fs::directory_iterator(directory)) {
    contents[entry.path().filename().string()] = tandem::testing::ReadText(entry.path());
  }
  return contents;
}

// The names in `directory`.
std::set<std::string> Names(const fs::path& directory) {
  std::set<std::string> names;
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(directory, error)) {
    names.insert(entry.path().filename().string());
  }
  return names;
}

// Waits (60 s at most) until `directory` holds exactly `expected`.
bool AwaitNames(const fs::path& directory, const std::set<std::string>& expected) {
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (Names(directory) != expected) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

class SnapshotTest : public ::testing::Test {
 protected:
  // Submits blocks first..last; the block at height h is fixture block (h - 1) % 20, so the
  // chain can be longer than the fixture set (the indexer guest takes any height).
  void Submit(RunningServer& s, uint32_t first, uint32_t last) {
    for (uint32_t height = first; height <= last; ++height) {
      tandem::v1::SubmitBlockResponse response;
      grpc::Status status =
          s.indexer->SubmitBlock(Context().get(), BlockRequest(height, Block(height)), &response);
      ASSERT_TRUE(status.ok()) << height << ": " << status.error_message();
    }
  }
  const std::string& Block(uint32_t height) const {
    return blocks_[(height - 1) % blocks_.size()].bytes;
  }

  grpc::Status Snapshot(RunningServer& s, const fs::path& directory,
                        tandem::v1::SnapshotResponse* response) {
    tandem::v1::SnapshotRequest request;
    request.set_directory(directory.string());
    return s.admin->Snapshot(Context().get(), request, response);
  }

  std::string Root(RunningServer& s, uint32_t height) {
    tandem::v1::GetBlockRequest request;
    request.set_height(height);
    tandem::v1::GetBlockResponse response;
    grpc::Status status = s.indexer->GetBlock(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << height << ": " << status.error_message();
    return response.block().state_root();
  }

  uint32_t Tip(RunningServer& s) {
    tandem::v1::GetTipResponse tip;
    grpc::Status status = s.indexer->GetTip(Context().get(), {}, &tip);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return tip.has_tip() ? tip.tip().height() : 0;
  }

  // The roots at 1..n of a node that indexes 1..n itself.
  std::vector<std::string> ReferenceRoots(uint32_t n) {
    TempDir reference_dir;
    RunningServer reference = StartOrDie(TestConfig(reference_dir));
    std::vector<std::string> roots(n + 1);
    if (reference.server == nullptr) return roots;
    Submit(reference, 1, n);
    for (uint32_t height = 1; height <= n; ++height) roots[height] = Root(reference, height);
    return roots;
  }

  TempDir dir_;
  std::vector<engine::testing::FixtureBlock> blocks_ = LoadFixtureBlocks();
};

TEST_F(SnapshotTest, ARestoredNodeEndsWithTheRootsOfOneThatIndexedEverything) {
  const uint32_t n = static_cast<uint32_t>(blocks_.size());
  const uint32_t h = n / 2;
  const fs::path snapshot = dir_.path() / "snapshot";
  {
    RunningServer source = StartOrDie(TestConfig(dir_));
    ASSERT_NE(source.server, nullptr);
    Submit(source, 1, h);
    tandem::v1::SnapshotResponse response;
    grpc::Status status = Snapshot(source, snapshot, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.tip().height(), h);
    EXPECT_EQ(response.tip().state_root(), Root(source, h));
    EXPECT_EQ(response.start_height(), 1u);
    EXPECT_EQ(response.module_sha256(), source.server->identity().module_sha256);
    EXPECT_EQ(response.memory_limit_bytes(), 4ull << 30);
    EXPECT_GT(response.files(), 0u);
    EXPECT_GT(response.bytes(), 0u);
    // The source carries on past the snapshot; the snapshot does not move with it.
    Submit(source, h + 1, h + 2);
  }
  const std::vector<std::string> roots = ReferenceRoots(n);
  ServerConfig restored_config = TestConfig(dir_);
  restored_config.db_path = snapshot.string();
  RunningServer restored = StartOrDie(restored_config);
  ASSERT_NE(restored.server, nullptr);
  EXPECT_EQ(Tip(restored), h);
  EXPECT_FALSE(fs::exists(snapshot / store::kSnapshotManifestName));
  EXPECT_TRUE(fs::exists(snapshot / store::kRestoredManifestName));
  Submit(restored, h + 1, n);
  for (uint32_t height = 1; height <= n; ++height) {
    EXPECT_EQ(Root(restored, height), roots[height]) << "height " << height;
  }
}

TEST_F(SnapshotTest, SnapshotsTakenDuringStreamedIngestAreConsistentAndRestore) {
  const uint32_t n = 3 * static_cast<uint32_t>(blocks_.size());
  RunningServer s = StartOrDie(TestConfig(dir_));
  ASSERT_NE(s.server, nullptr);
  // The stream writes the first half, then waits (bounded) until a snapshot holding a block has
  // been taken, then writes the rest: so at least one snapshot lands inside an open stream with
  // blocks in flight, whatever the machine's speed.
  std::atomic<bool> done{false};
  std::atomic<uint32_t> best_snapshot_tip{0};
  std::thread ingest([&] {
    auto context = Context("", absl::Minutes(5));
    auto stream = s.indexer->StreamBlocks(context.get());
    for (uint32_t height = 1; height <= n; ++height) {
      if (height == n / 2 + 1) {
        const absl::Time deadline = absl::Now() + absl::Seconds(60);
        while (best_snapshot_tip.load() == 0 && absl::Now() < deadline) {
          absl::SleepFor(absl::Milliseconds(5));
        }
      }
      stream->Write(BlockRequest(height, Block(height)));
    }
    stream->WritesDone();
    tandem::v1::SubmitBlockResponse response;
    uint32_t acknowledged = 0;
    while (stream->Read(&response)) ++acknowledged;
    grpc::Status finished = stream->Finish();
    EXPECT_TRUE(finished.ok()) << finished.error_message();
    EXPECT_EQ(acknowledged, n);
    done = true;
  });
  std::vector<fs::path> snapshots;
  while (!done.load()) {
    const fs::path directory = dir_.path() / absl::StrCat("s", snapshots.size());
    tandem::v1::SnapshotResponse response;
    grpc::Status status = Snapshot(s, directory, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (!status.ok()) break;
    snapshots.push_back(directory);
    if (response.has_tip()) best_snapshot_tip = response.tip().height();
  }
  ingest.join();
  ASSERT_EQ(Tip(s), n);

  // Every snapshot is whole and verifies; one taken with blocks in flight is shipped (copied, as
  // an operator would) before anything opens the originals.
  std::optional<uint32_t> mid_ingest;
  const fs::path shipped = dir_.path() / "shipped";
  for (const fs::path& directory : snapshots) {
    SCOPED_TRACE(directory.string());
    absl::StatusOr<std::optional<store::SnapshotManifest>> manifest =
        store::ReadSnapshotManifest(directory);
    ASSERT_TRUE(manifest.ok() && manifest->has_value()) << manifest.status();
    absl::Status verified = store::VerifySnapshot(directory, **manifest);
    ASSERT_TRUE(verified.ok()) << verified;
    if (!mid_ingest.has_value() && (*manifest)->tip.has_value() && (*manifest)->tip->height < n) {
      mid_ingest = (*manifest)->tip->height;
      fs::copy(directory, shipped, fs::copy_options::recursive);
    }
  }
  ASSERT_TRUE(mid_ingest.has_value()) << "no snapshot was taken while blocks were streamed";
  for (const fs::path& directory : snapshots) {
    SCOPED_TRACE(directory.string());
    const std::optional<store::SnapshotManifest> manifest =
        store::ReadSnapshotManifest(directory).value();
    absl::StatusOr<std::unique_ptr<store::BlockStore>> copy = store::BlockStore::Open(directory);
    ASSERT_TRUE(copy.ok()) << copy.status();
    std::optional<store::BlockRecord> tip = (*copy)->GetTip();
    EXPECT_EQ(tip, manifest->tip);
    // Whole blocks only: the copy's state is the source's at that height, every key of it.
    EXPECT_TRUE((*copy)->CheckLatestForTesting().ok());
    if (!tip.has_value()) continue;
    EXPECT_EQ(tip->state_root, s.server->store().GetBlock(tip->height)->state_root);
    EXPECT_EQ((*copy)->DumpAtHeightForTesting(tip->height).value(),
              s.server->store().DumpAtHeightForTesting(tip->height).value());
  }

  // The shipped one catches up to the source.
  const uint32_t h = *mid_ingest;
  ServerConfig restored_config = TestConfig(dir_);
  restored_config.db_path = shipped.string();
  RunningServer restored = StartOrDie(restored_config);
  ASSERT_NE(restored.server, nullptr);
  EXPECT_EQ(Tip(restored), h);
  Submit(restored, h + 1, n);
  for (uint32_t height = 1; height <= n; ++height) {
    EXPECT_EQ(Root(restored, height), Root(s, height)) << "height " << height;
  }
}

class RefusedSnapshotTest : public SnapshotTest {
 protected:
  void SetUp() override {
    RunningServer s = StartOrDie(TestConfig(dir_));
    ASSERT_NE(s.server, nullptr);
    Submit(s, 1, 5);
    tandem::v1::SnapshotResponse response;
    grpc::Status status = Snapshot(s, snapshot_, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    absl::StatusOr<std::optional<store::SnapshotManifest>> manifest =
        store::ReadSnapshotManifest(snapshot_);
    ASSERT_TRUE(manifest.ok() && manifest->has_value());
    for (const store::SnapshotFile& file : (*manifest)->files) {
      if (file.name.ends_with(".sst")) table_ = file.name;
    }
    ASSERT_FALSE(table_.empty()) << "the checkpoint holds no table file";
    fs::copy_file(snapshot_ / table_, dir_.path() / "table.orig");
    config_ = TestConfig(dir_);
    config_.db_path = snapshot_.string();
  }

  // Starts a server on the snapshot, expects it refused, and checks nothing was touched.
  absl::Status StartRefused() {
    const std::map<std::string, std::string> before = FolderContents(snapshot_);
    absl::StatusOr<std::unique_ptr<TandemServer>> server =
        TandemServer::Start(config_, testing::TestLogger());
    EXPECT_FALSE(server.ok());
    if (server.ok()) return absl::OkStatus();
    EXPECT_EQ(util::CauseOf(server.status()), util::FailureCause::kSnapshotInvalid);
    EXPECT_EQ(FolderContents(snapshot_), before) << "a refused snapshot was changed";
    return server.status();
  }

  void PutTableBack() {
    fs::remove(snapshot_ / table_);
    fs::copy_file(dir_.path() / "table.orig", snapshot_ / table_);
  }

  // Runs the tandemd binary on the snapshot; returns its exit status and stderr.
  std::pair<int, std::string> RunTandemd() {
    tandem::testing::Child child(
        tandem::testing::TandemdCommand(
            TANDEMD, dir_.path() / "ports",
            {absl::StrCat("--db=", snapshot_.string()), "--fsync=false",
             absl::StrCat("--module=", testing::GuestPath("bitcoin_indexer"))}),
        dir_.path() / "out", dir_.path() / "err");
    std::optional<int> status = child.Wait(absl::Seconds(60));
    return {status.value_or(-1000), child.Stderr()};
  }

  const fs::path snapshot_ = dir_.path() / "snapshot";
  std::string table_;
  ServerConfig config_;
};

TEST_F(RefusedSnapshotTest, AChangedByteIsRefusedNamingTheFile) {
  {
    std::fstream file(snapshot_ / table_, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(10);
    const char was = static_cast<char>(file.get());
    file.seekp(10);
    file.put(static_cast<char>(was ^ 0x5a));
  }
  absl::Status refused = StartRefused();
  EXPECT_EQ(refused.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(refused.message(), HasSubstr(table_));
  EXPECT_THAT(refused.message(), HasSubstr("its manifest says"));

  auto [exit_status, err] = RunTandemd();
  EXPECT_EQ(exit_status, kExitSnapshotInvalid) << err;
  EXPECT_THAT(err, HasSubstr("refusing to start from snapshot"));
  EXPECT_THAT(err, HasSubstr(table_));
  EXPECT_TRUE(fs::exists(snapshot_ / store::kSnapshotManifestName));

  PutTableBack();
  RunningServer restored = StartOrDie(config_);
  ASSERT_NE(restored.server, nullptr);
  EXPECT_EQ(Tip(restored), 5u);
}

TEST_F(RefusedSnapshotTest, ATruncatedOrMissingFileIsRefused) {
  fs::resize_file(snapshot_ / table_, fs::file_size(snapshot_ / table_) / 2);
  absl::Status truncated = StartRefused();
  EXPECT_EQ(truncated.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(truncated.message(), HasSubstr("truncated"));
  auto [exit_status, err] = RunTandemd();
  EXPECT_EQ(exit_status, kExitSnapshotInvalid) << err;
  EXPECT_THAT(err, HasSubstr("truncated"));

  fs::remove(snapshot_ / table_);
  absl::Status missing = StartRefused();
  EXPECT_THAT(missing.message(), HasSubstr(absl::StrCat("lacks ", table_)));

  PutTableBack();
  RunningServer restored = StartOrDie(config_);
  ASSERT_NE(restored.server, nullptr);
}

TEST_F(RefusedSnapshotTest, AManifestThatLiesAboutTheTipIsRefused) {
  // The files are intact; only the manifest's claim changed: the database is read to check it.
  const fs::path manifest = snapshot_ / store::kSnapshotManifestName;
  std::string text = tandem::testing::ReadText(manifest);
  const size_t tip = text.find("\ntip 5 ");
  ASSERT_NE(tip, std::string::npos) << text;
  text.replace(tip, 7, "\ntip 4 ");
  std::ofstream(manifest, std::ios::trunc) << text;
  absl::Status refused = StartRefused();
  EXPECT_EQ(refused.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(refused.message(), HasSubstr("differ from its manifest"));

  std::ofstream(manifest, std::ios::trunc) << "tandem-snapshot 1\nformat_version x\n";
  absl::Status garbled = StartRefused();
  EXPECT_EQ(garbled.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(garbled.message(), HasSubstr("format_version x"));
}

TEST_F(SnapshotTest, ASnapshotIntoAFullOrReadOnlyFileSystemFailsClearlyAndIngestCarriesOn) {
  RunningServer s = StartOrDie(TestConfig(dir_));
  ASSERT_NE(s.server, nullptr);
  Submit(s, 1, 10);
  tandem::v1::SnapshotResponse response;

  // 64 KiB: the database (hundreds of KiB) is copied, not linked, across file systems, and the
  // copy runs out of space.
  const fs::path full_mount = dir_.path() / "full";
  ScopedTmpfs full(full_mount, "size=64k", 0);
  if (!full.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here: " << full.error();
  grpc::Status no_space = Snapshot(s, full_mount / "snapshot", &response);
  EXPECT_EQ(no_space.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << no_space.error_message();
  EXPECT_THAT(no_space.error_message(), HasSubstr((full_mount / "snapshot").string()));
  EXPECT_TRUE(fs::is_empty(full_mount)) << "a failed snapshot left files behind";

  const fs::path read_only_mount = dir_.path() / "read-only";
  ScopedTmpfs read_only(read_only_mount, "size=1m", MS_RDONLY);
  ASSERT_TRUE(read_only.mounted()) << read_only.error();
  grpc::Status refused = Snapshot(s, read_only_mount / "snapshot", &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();
  EXPECT_THAT(refused.error_message(), HasSubstr((read_only_mount / "snapshot").string()));
  EXPECT_THAT(refused.error_message(), HasSubstr("Read-only file system"));

  grpc::Status no_parent = Snapshot(s, dir_.path() / "no" / "such" / "folder", &response);
  EXPECT_EQ(no_parent.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  grpc::Status relative = Snapshot(s, "relative/folder", &response);
  EXPECT_EQ(relative.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(Snapshot(s, dir_.path() / "once", &response).ok());
  grpc::Status exists = Snapshot(s, dir_.path() / "once", &response);
  EXPECT_EQ(exists.error_code(), grpc::StatusCode::ALREADY_EXISTS);

  // Ingest never noticed: the next blocks commit, with the roots of a node that saw no snapshot.
  Submit(s, 11, 20);
  const std::vector<std::string> roots = ReferenceRoots(20);
  EXPECT_EQ(Root(s, 20), roots[20]);
}

TEST_F(SnapshotTest, SnapshotEveryNBlocksKeepsTheLastK) {
  EXPECT_EQ(PeriodicSnapshotName(20), "snapshot-0000000020");
  EXPECT_EQ(PeriodicSnapshotHeight("snapshot-0000000020"), 20u);
  EXPECT_EQ(PeriodicSnapshotHeight("snapshot-20"), std::nullopt);
  EXPECT_EQ(PeriodicSnapshotHeight(".snapshot-in-progress"), std::nullopt);

  const fs::path directory = dir_.path() / "snapshots";
  // Something a crash left half-taken is cleared at start; what is not ours stays.
  fs::create_directories(directory / ".snapshot-in-progress.tmp");
  fs::create_directories(directory / "operator-notes");
  ServerConfig config = TestConfig(dir_);
  config.snapshot_dir = directory.string();
  config.snapshot_every = 5;
  config.snapshot_keep = 2;
  RunningServer s = StartOrDie(config);
  ASSERT_NE(s.server, nullptr);
  EXPECT_EQ(Names(directory), std::set<std::string>{"operator-notes"});

  // Blocks go in five at a time and the test waits for each snapshot, so that every one is at
  // a multiple of 5 (under a continuous stream a snapshot's tip is wherever the stream is).
  const std::vector<std::set<std::string>> expected = {
      {"snapshot-0000000005"},
      {"snapshot-0000000005", "snapshot-0000000010"},
      {"snapshot-0000000010", "snapshot-0000000015"},
      {"snapshot-0000000015", "snapshot-0000000020"}};
  for (uint32_t round = 0; round < expected.size(); ++round) {
    Submit(s, 5 * round + 1, 5 * round + 4);
    absl::SleepFor(absl::Milliseconds(50));  // Nothing is due before the fifth block.
    std::set<std::string> before = round == 0 ? std::set<std::string>{} : expected[round - 1];
    before.insert("operator-notes");
    EXPECT_EQ(Names(directory), before) << "round " << round;
    Submit(s, 5 * round + 5, 5 * round + 5);
    std::set<std::string> want = expected[round];
    want.insert("operator-notes");
    ASSERT_TRUE(AwaitNames(directory, want))
        << "round " << round << ": " << ::testing::PrintToString(Names(directory));
  }
  for (const std::string& name : expected.back()) {
    absl::StatusOr<std::optional<store::SnapshotManifest>> manifest =
        store::ReadSnapshotManifest(directory / name);
    ASSERT_TRUE(manifest.ok() && manifest->has_value()) << name;
    EXPECT_EQ((*manifest)->tip->height, PeriodicSnapshotHeight(name));
    EXPECT_EQ((*manifest)->tip->state_root, Root(s, *PeriodicSnapshotHeight(name)));
    EXPECT_TRUE(store::VerifySnapshot(directory / name, **manifest).ok()) << name;
  }
}

TEST_F(SnapshotTest, PeriodicSnapshotsUnderAStreamAreAMultipleApartAndVerify) {
  constexpr uint32_t kEvery = 4;
  const uint32_t n = 3 * static_cast<uint32_t>(blocks_.size());
  const fs::path directory = dir_.path() / "snapshots";
  ServerConfig config = TestConfig(dir_);
  config.snapshot_dir = directory.string();
  config.snapshot_every = kEvery;
  config.snapshot_keep = 0;  // All of them.
  RunningServer s = StartOrDie(config);
  ASSERT_NE(s.server, nullptr);
  {
    auto context = Context("", absl::Minutes(5));
    auto stream = s.indexer->StreamBlocks(context.get());
    for (uint32_t height = 1; height <= n; ++height) {
      stream->Write(BlockRequest(height, Block(height)));
    }
    stream->WritesDone();
    tandem::v1::SubmitBlockResponse response;
    while (stream->Read(&response)) {
    }
    grpc::Status finished = stream->Finish();
    ASSERT_TRUE(finished.ok()) << finished.error_message();
  }
  s.server->Shutdown(absl::Seconds(5));  // Abandons (and removes) a snapshot in progress.

  // A snapshot's tip is wherever the stream was, but the next one waits for the next multiple
  // of kEvery above it: commits made while one is taken do not trigger another at once.
  std::vector<uint32_t> heights;
  for (const std::string& name : Names(directory)) {
    std::optional<uint32_t> height = PeriodicSnapshotHeight(name);
    ASSERT_TRUE(height.has_value()) << "unexpected " << name;
    heights.push_back(*height);
    absl::StatusOr<std::optional<store::SnapshotManifest>> manifest =
        store::ReadSnapshotManifest(directory / name);
    ASSERT_TRUE(manifest.ok() && manifest->has_value()) << name;
    EXPECT_TRUE(store::VerifySnapshot(directory / name, **manifest).ok()) << name;
  }
  ASSERT_FALSE(heights.empty());
  EXPECT_GE(heights.front(), kEvery);
  for (size_t i = 1; i < heights.size(); ++i) {
    EXPECT_GE(heights[i], (heights[i - 1] / kEvery + 1) * kEvery)
        << ::testing::PrintToString(heights);
  }
}

TEST_F(SnapshotTest, APeriodicSnapshotThatFailsIsReportedAndIngestCarriesOn) {
  const fs::path full_mount = dir_.path() / "full";
  ScopedTmpfs full(full_mount, "size=64k", 0);
  if (!full.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here: " << full.error();
  ServerConfig config = TestConfig(dir_);
  config.snapshot_dir = full_mount.string();
  config.snapshot_every = 2;
  RunningServer s = StartOrDie(config);
  ASSERT_NE(s.server, nullptr);
  auto watch_context = Context("", absl::Seconds(60));
  auto watch = s.admin->WatchEvents(watch_context.get(), {});

  Submit(s, 1, 10);  // Every block commits, whatever the snapshots do.
  EXPECT_EQ(Tip(s), 10u);
  tandem::v1::PairEvent event;
  bool failed = false;
  while (!failed && watch->Read(&event)) {
    EXPECT_NE(event.kind(), tandem::v1::PairEvent::KIND_SNAPSHOT_TAKEN) << event.cause();
    failed = event.kind() == tandem::v1::PairEvent::KIND_SNAPSHOT_FAILED;
  }
  ASSERT_TRUE(failed) << "no snapshot_failed event";
  EXPECT_THAT(event.cause(), HasSubstr(full_mount.string()));
  EXPECT_THAT(event.cause(), HasSubstr("RESOURCE_EXHAUSTED"));
  EXPECT_THAT(event.cause(), HasSubstr("ingest carries on"));
  watch_context->TryCancel();
  // Once the snapshotter is done, nothing half-taken remains.
  s.server->Shutdown(absl::Seconds(5));
  EXPECT_TRUE(fs::is_empty(full_mount)) << ::testing::PrintToString(Names(full_mount));
}

}  // namespace
}  // namespace tandem::server
