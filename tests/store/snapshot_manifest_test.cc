// Tests of the snapshot manifest's text form: what is written is read back, and anything else is
// refused as DATA_LOSS rather than half-read.
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/snapshot.h"

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

}  // namespace
}  // namespace tandem::store
