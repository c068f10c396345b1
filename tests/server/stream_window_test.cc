// StreamWindow: when a stream's runner must wait for its oldest answer before running another
// block.
#include "server/stream_window.h"

#include "gtest/gtest.h"

namespace tandem::server {
namespace {

TEST(StreamWindowTest, IsOverfullPastItsBlocksAndAnsweringTheOldestMakesRoom) {
  StreamWindow<int> window(/*max_blocks=*/4);
  for (int height = 1; height <= 4; ++height) {
    window.Add(height);
    EXPECT_FALSE(window.Overfull()) << "after " << height << " blocks";
  }
  window.Add(5);
  EXPECT_TRUE(window.Overfull());
  EXPECT_EQ(window.oldest(), 1);
  window.PopOldest();
  EXPECT_FALSE(window.Overfull());
  EXPECT_EQ(window.oldest(), 2);
}

TEST(StreamWindowTest, ABoundBelowOneMeansOne) {
  StreamWindow<int> window(/*max_blocks=*/0);
  window.Add(1);
  EXPECT_FALSE(window.Overfull());
  window.Add(2);
  EXPECT_TRUE(window.Overfull());
  window.PopOldest();
  EXPECT_FALSE(window.Overfull());
  EXPECT_FALSE(window.empty());
}

}  // namespace
}  // namespace tandem::server
