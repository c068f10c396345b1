// How tandem-follow sizes its batched requests: by the bytes of the previous batch's blocks.
#include <cstdint>

#include "gtest/gtest.h"
#include "tools/follow/block_fetcher.h"

namespace tandem::follow {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

FetchOptions Options() {
  FetchOptions options;
  options.batch = 128;
  options.batch_bytes = 4 * kMiB;
  return options;
}

TEST(BatchSizeTest, TheFirstBatchIsOneBlock) { EXPECT_EQ(BatchSize(Options(), 0, 0), 1); }

TEST(BatchSizeTest, SmallBlocksGrowTheBatchByDoublingUpToTheCount) {
  int count = BatchSize(Options(), 0, 0);
  const int expected[] = {2, 4, 8, 16, 32, 64, 128, 128};
  for (int next : expected) {
    count = BatchSize(Options(), count, uint64_t{350} * count);  // Regtest-sized blocks.
    EXPECT_EQ(count, next);
  }
}

TEST(BatchSizeTest, LargeBlocksKeepTheBatchNearItsBytes) {
  EXPECT_EQ(BatchSize(Options(), 64, 64 * (2 * kMiB)), 2);  // Two 2 MiB blocks make 4 MiB.
  EXPECT_EQ(BatchSize(Options(), 8, 8 * (1 * kMiB)), 4);
  EXPECT_EQ(BatchSize(Options(), 2, 2 * (8 * kMiB)), 1);  // A block past batch_bytes: one.
}

TEST(BatchSizeTest, AnEmptyPreviousAnswerDoesNotDivideByZero) {
  EXPECT_EQ(BatchSize(Options(), 4, 0), 8);
}

}  // namespace
}  // namespace tandem::follow
