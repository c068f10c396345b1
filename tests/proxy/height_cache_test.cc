// Tests for the height-bound instance cache: one instance per height, LRU within the capacity.
#include "proxy/height_cache.h"

#include "gtest/gtest.h"
#include "tests/proxy/slot_test_support.h"

namespace tandem::proxy {
namespace {

TEST(HeightCacheTest, FindsOnlyTheInstanceBoundToTheHeight) {
  testing::LeaseMaker leases;
  HeightCache cache(2);
  Lease five = leases.Make(5);
  cache.Keep(5, five);
  EXPECT_EQ(cache.Find(5), five);
  EXPECT_EQ(cache.Find(4), nullptr);
  EXPECT_EQ(cache.Find(6), nullptr);
}

TEST(HeightCacheTest, DropsTheLeastRecentlyUsedPastItsCapacity) {
  testing::LeaseMaker leases;
  HeightCache cache(2);
  cache.Keep(1, leases.Make(1));
  cache.Keep(2, leases.Make(2));
  ASSERT_NE(cache.Find(1), nullptr);  // 2 is now the least recently used.
  cache.Keep(3, leases.Make(3));
  EXPECT_EQ(cache.size(), 2);
  EXPECT_NE(cache.Find(1), nullptr);
  EXPECT_EQ(cache.Find(2), nullptr);
  EXPECT_NE(cache.Find(3), nullptr);
}

TEST(HeightCacheTest, KeepsTheFirstInstanceForAHeightAndNothingAtCapacityZero) {
  testing::LeaseMaker leases;
  HeightCache cache(2);
  Lease first = leases.Make(1);
  cache.Keep(7, first);
  cache.Keep(7, leases.Make(2));
  EXPECT_EQ(cache.Find(7), first);
  HeightCache none(0);
  none.Keep(7, leases.Make(3));
  EXPECT_EQ(none.size(), 0);
}

TEST(HeightCacheTest, DropAboveRemovesEveryHeightPastTheNewTip) {
  testing::LeaseMaker leases;
  HeightCache cache(4);
  for (uint32_t height : {3, 5, 8, 9}) cache.Keep(height, leases.Make(height));
  cache.DropAbove(5);
  EXPECT_NE(cache.Find(3), nullptr);
  EXPECT_NE(cache.Find(5), nullptr);
  EXPECT_EQ(cache.Find(8), nullptr);
  EXPECT_EQ(cache.Find(9), nullptr);
  cache.DropAbove(std::nullopt);
  EXPECT_EQ(cache.size(), 0);
}

TEST(HeightCacheTest, DropRemovesAnInstanceWhereverItIsKept) {
  testing::LeaseMaker leases;
  HeightCache cache(3);
  Lease lease = leases.Make(1);
  cache.Keep(4, lease);
  cache.Keep(6, leases.Make(2));
  EXPECT_TRUE(cache.Drop(lease));
  EXPECT_FALSE(cache.Drop(lease));
  EXPECT_EQ(cache.Find(4), nullptr);
  EXPECT_EQ(cache.size(), 1);
  cache.Keep(4, leases.Make(3));  // The freed height can be kept again, and the order is sane.
  EXPECT_EQ(cache.size(), 2);
}

}  // namespace
}  // namespace tandem::proxy
