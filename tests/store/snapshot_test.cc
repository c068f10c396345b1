// Tests of store/snapshot.h: the manifest's text form (what is written is read back, anything
// else is refused as DATA_LOSS rather than half-read), and snapshots of a real store taken while
// another thread commits (each holds whole blocks and verifies), a deadline and a cancellation
// (nothing left behind). The snapshot code runs here under ASan and TSan too (label unit).
#include "store/snapshot.h"

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/store/test_util.h"

namespace tandem::store {
namespace {

using ::testing::HasSubstr;

SnapshotManifest Example() {
  SnapshotManifest manifest;
  manifest.format_version = 2;
  manifest.start_height = 7;
  manifest.tip = BlockRecord{42, std::string(32, '\x01'), std::string(32, '\xfe'), 9};
  manifest.identity = NodeIdentity{std::string(32, '\x33'), 64ull << 20};
  manifest.files = {{"000012.sst", 1234, std::string(32, '\x44')},
                    {"CURRENT", 16, std::string(32, '\x55')}};
  return manifest;
}

TEST(SnapshotManifestTest, RoundTrips) {
  const SnapshotManifest manifest = Example();
  absl::StatusOr<SnapshotManifest> decoded =
      DecodeSnapshotManifest(EncodeSnapshotManifest(manifest));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, manifest);
  EXPECT_EQ(decoded->TotalBytes(), 1250u);

  SnapshotManifest empty;
  empty.format_version = 2;
  EXPECT_EQ(DecodeSnapshotManifest(EncodeSnapshotManifest(empty)).value(), empty);
}

TEST(SnapshotManifestTest, RefusesWhatItDidNotWrite) {
  const std::string good = EncodeSnapshotManifest(Example());
  for (const std::string& bad :
       {std::string(""), std::string("tandem-snapshot 2\nformat_version 2\n"),
        good + "file 12 zz CURRENT\n", good + "file 1 " + std::string(64, 'a') + " ../etc\n",
        good + "surprise 1\n", std::string("tandem-snapshot 1\nstart_height 3\n")}) {
    absl::StatusOr<SnapshotManifest> decoded = DecodeSnapshotManifest(bad);
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss) << bad;
  }
  EXPECT_THAT(DecodeSnapshotManifest(good + "surprise 1\n").status().message(),
              HasSubstr("surprise"));
}

BlockCommit Block(uint32_t height) {
  BlockCommit commit;
  commit.height = height;
  commit.block_bytes = "block";
  commit.hash = std::string(kHashSize, static_cast<char>(height));
  // Every block rewrites one shared key and adds its own: a torn copy would show both.
  commit.writes["shared"] = absl::StrCat("written at ", height);
  commit.writes[absl::StrCat("key-", height)] = std::string(1000, 'v');
  return commit;
}

BlockStoreOptions NoSync() {
  BlockStoreOptions options;
  options.sync = false;
  return options;
}

TEST(StoreSnapshotTest, SnapshotsTakenWhileBlocksCommitHoldWholeBlocksAndVerify) {
  testing::TempDir dir;
  absl::StatusOr<std::unique_ptr<BlockStore>> store = BlockStore::Open(dir.path() / "db", NoSync());
  ASSERT_TRUE(store.ok()) << store.status();
  constexpr uint32_t kBlocks = 300;
  std::atomic<bool> done{false};
  std::thread committer([&] {
    for (uint32_t height = 1; height <= kBlocks; ++height) {
      absl::StatusOr<BlockRecord> committed = (*store)->CommitBlock(Block(height));
      ASSERT_TRUE(committed.ok()) << committed.status();
    }
    done = true;
  });
  std::vector<std::filesystem::path> taken;
  while (!done.load() || taken.empty()) {
    const std::filesystem::path directory = dir.path() / absl::StrCat("s", taken.size());
    absl::StatusOr<SnapshotManifest> manifest = CreateSnapshot(**store, directory);
    ASSERT_TRUE(manifest.ok()) << manifest.status();
    taken.push_back(directory);
  }
  committer.join();
  for (const std::filesystem::path& directory : taken) {
    SCOPED_TRACE(directory.string());
    absl::StatusOr<std::optional<SnapshotManifest>> manifest = ReadSnapshotManifest(directory);
    ASSERT_TRUE(manifest.ok() && manifest->has_value()) << manifest.status();
    absl::Status verified = VerifySnapshot(directory, **manifest);
    ASSERT_TRUE(verified.ok()) << verified;
    absl::StatusOr<std::unique_ptr<BlockStore>> copy = BlockStore::Open(directory, NoSync());
    ASSERT_TRUE(copy.ok()) << copy.status();
    std::optional<BlockRecord> tip = (*copy)->GetTip();
    ASSERT_EQ(tip, (*manifest)->tip);
    if (!tip.has_value()) continue;
    EXPECT_EQ(tip->state_root, (*store)->GetBlock(tip->height)->state_root);
    EXPECT_EQ((*copy)->DumpAtHeightForTesting(tip->height).value(),
              (*store)->DumpAtHeightForTesting(tip->height).value());
    EXPECT_EQ((*copy)->Get("shared", tip->height).value(),
              absl::StrCat("written at ", tip->height));
  }
}

TEST(StoreSnapshotTest, ADeadlineOrACancellationLeavesNothingBehind) {
  testing::TempDir dir;
  absl::StatusOr<std::unique_ptr<BlockStore>> store = BlockStore::Open(dir.path() / "db", NoSync());
  ASSERT_TRUE(store.ok()) << store.status();
  for (uint32_t height = 1; height <= 3; ++height)
    ASSERT_TRUE((*store)->CommitBlock(Block(height)).ok());

  SnapshotLimits past;
  past.deadline = absl::Now() - absl::Seconds(1);
  absl::StatusOr<SnapshotManifest> late = CreateSnapshot(**store, dir.path() / "late", past);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded) << late.status();
  EXPECT_THAT(late.status().message(), HasSubstr((dir.path() / "late").string()));
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "late"));

  // Cancelled once the checkpoint is made: the copy is removed again.
  int polls = 0;
  SnapshotLimits cancelled;
  cancelled.cancelled = [&polls] { return ++polls > 1; };
  absl::StatusOr<SnapshotManifest> abandoned =
      CreateSnapshot(**store, dir.path() / "abandoned", cancelled);
  EXPECT_EQ(abandoned.status().code(), absl::StatusCode::kCancelled) << abandoned.status();
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "abandoned"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "abandoned.tmp"));

  EXPECT_EQ(CreateSnapshot(**store, dir.path() / "no" / "parent").status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(CreateSnapshot(**store, dir.path() / "whole").ok());
  EXPECT_EQ(CreateSnapshot(**store, dir.path() / "whole").status().code(),
            absl::StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace tandem::store
