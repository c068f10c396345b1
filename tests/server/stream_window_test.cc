// StreamWindow: when a stream's runner must wait for its oldest answer before running another
// block.
#include "server/stream_window.h"

#include "gtest/gtest.h"

namespace tandem::server {
namespace {

TEST(StreamWindowTest, BlocksOnOneInstanceFillItOnlyByCount) {
  StreamWindow<int> window(/*max_blocks=*/4, /*max_instances=*/2);
  for (int height = 1; height <= 4; ++height) {
    window.Add(height, /*instance_generation=*/7);
    EXPECT_FALSE(window.Overfull()) << "after " << height << " blocks";
  }
  EXPECT_EQ(window.InstancesHeld(), 1u);
  window.Add(5, 7);
  EXPECT_TRUE(window.Overfull());
  window.PopOldest();
  EXPECT_FALSE(window.Overfull());
  EXPECT_EQ(window.oldest(), 2);
}

TEST(StreamWindowTest, BlocksOnInstancesOfTheirOwnFillItByInstances) {
  StreamWindow<int> window(/*max_blocks=*/32, /*max_instances=*/2);
  window.Add(1, 1);
  window.Add(2, 2);
  EXPECT_FALSE(window.Overfull());
  window.Add(3, 3);
  EXPECT_EQ(window.InstancesHeld(), 3u);
  EXPECT_TRUE(window.Overfull());
  window.PopOldest();
  EXPECT_FALSE(window.Overfull());
}

TEST(StreamWindowTest, CountsEachInstanceOnceWhereverItsBlocksAre) {
  StreamWindow<int> window(/*max_blocks=*/32, /*max_instances=*/2);
  window.Add(1, 4);
  window.Add(2, 4);
  window.Add(3, 5);  // A swap between two blocks.
  window.Add(4, 5);
  window.Add(5, 4);  // Never happens in a stream, but must not count 4 twice.
  EXPECT_EQ(window.InstancesHeld(), 2u);
  EXPECT_FALSE(window.Overfull());
}

TEST(StreamWindowTest, BlocksThatHoldNoInstanceCountOnlyAsBlocks) {
  StreamWindow<int> window(/*max_blocks=*/3, /*max_instances=*/1);
  window.Add(1, 0);  // Known at once (a resubmission): it holds no instance.
  window.Add(2, 0);
  window.Add(3, 9);
  EXPECT_EQ(window.InstancesHeld(), 1u);
  EXPECT_FALSE(window.Overfull());
  window.Add(4, 0);
  EXPECT_TRUE(window.Overfull());
}

TEST(StreamWindowTest, BoundsBelowOneMeanOne) {
  StreamWindow<int> window(/*max_blocks=*/0, /*max_instances=*/0);
  window.Add(1, 1);
  EXPECT_FALSE(window.Overfull());
  window.Add(2, 1);
  EXPECT_TRUE(window.Overfull());
  window.PopOldest();
  window.Add(3, 2);
  EXPECT_TRUE(window.Overfull()) << "two instances held, one allowed";
}

}  // namespace
}  // namespace tandem::server
