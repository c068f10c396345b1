// Tests for the instances held by blocks in flight: within the capacity every block keeps its
// own; past it the newest but one gives its instance up, never the newest.
#include "proxy/unsettled_instances.h"

#include "gtest/gtest.h"
#include "tests/proxy/slot_test_support.h"

namespace tandem::proxy {
namespace {

TEST(UnsettledInstancesTest, EveryBlockKeepsItsInstanceWithinTheCapacity) {
  testing::LeaseMaker leases;
  UnsettledInstances held(3);
  Lease one = leases.Make(1);
  Lease two = leases.Make(2);
  Lease three = leases.Make(3);
  EXPECT_EQ(held.Hold(10, one), nullptr);
  EXPECT_EQ(held.Hold(11, two), nullptr);
  EXPECT_EQ(held.Hold(12, three), nullptr);
  EXPECT_EQ(held.held(), 3u);
  EXPECT_EQ(held.Take(10), one);
  EXPECT_EQ(held.Take(11), two);
  EXPECT_EQ(held.Take(12), three);
  EXPECT_EQ(held.held(), 0u);
  EXPECT_EQ(held.given_up(), 0u);
}

TEST(UnsettledInstancesTest, PastTheCapacityTheNewestButOneGivesItsInstanceUp) {
  testing::LeaseMaker leases;
  UnsettledInstances held(2);
  Lease one = leases.Make(1);
  Lease two = leases.Make(2);
  Lease three = leases.Make(3);
  Lease four = leases.Make(4);
  EXPECT_EQ(held.Hold(1, one), nullptr);
  EXPECT_EQ(held.Hold(2, two), nullptr);
  // The oldest settles first and keeps its instance; the newest will be the active last.
  EXPECT_EQ(held.Hold(3, three), two);
  EXPECT_EQ(held.Hold(4, four), three);
  EXPECT_EQ(held.held(), 2u);
  EXPECT_EQ(held.given_up(), 2u);
  EXPECT_EQ(held.Take(1), one);
  EXPECT_EQ(held.Take(2), nullptr);  // Its block settles without publishing.
  EXPECT_EQ(held.Take(3), nullptr);
  EXPECT_EQ(held.Take(4), four);
}

TEST(UnsettledInstancesTest, WithCapacityOneOnlyTheNewestKeepsItsInstance) {
  testing::LeaseMaker leases;
  UnsettledInstances held(0);  // Raised to 1.
  Lease one = leases.Make(1);
  Lease two = leases.Make(2);
  EXPECT_EQ(held.Hold(5, one), nullptr);
  EXPECT_EQ(held.Hold(6, two), one);
  EXPECT_EQ(held.Take(5), nullptr);
  EXPECT_EQ(held.Take(6), two);
}

TEST(UnsettledInstancesTest, BlocksOnOneInstanceCountItOnce) {
  testing::LeaseMaker leases;
  UnsettledInstances held(8);
  Lease active = leases.Make(1);
  for (uint32_t height = 1; height <= 5; ++height) EXPECT_EQ(held.Hold(height, active), nullptr);
  EXPECT_EQ(held.held(), 1u);
  EXPECT_EQ(held.Take(1), active);
  EXPECT_EQ(held.held(), 1u);
}

TEST(UnsettledInstancesTest, TakingABlockMakesRoomForTheNextWithoutGivingUp) {
  testing::LeaseMaker leases;
  UnsettledInstances held(2);
  EXPECT_EQ(held.Hold(1, leases.Make(1)), nullptr);
  EXPECT_EQ(held.Hold(2, leases.Make(2)), nullptr);
  EXPECT_NE(held.Take(1), nullptr);
  EXPECT_EQ(held.Hold(3, leases.Make(3)), nullptr);
  EXPECT_EQ(held.given_up(), 0u);
}

}  // namespace
}  // namespace tandem::proxy
