// Tests for the warm-up retry delay: doubling, the cap, the jitter band. No clock, no sleeping.
#include "proxy/warm_backoff.h"

#include "gtest/gtest.h"

namespace tandem::proxy {
namespace {

TEST(WarmRetryDelayTest, DoublesFromTheBaseWithNoJitterAtTheMiddleOfTheBand) {
  const WarmBackoff backoff{absl::Seconds(1), absl::Seconds(30)};
  // unit 0.5 is a jitter factor of exactly 1.
  EXPECT_EQ(WarmRetryDelay(backoff, 1, 0.5), absl::Seconds(1));
  EXPECT_EQ(WarmRetryDelay(backoff, 2, 0.5), absl::Seconds(2));
  EXPECT_EQ(WarmRetryDelay(backoff, 3, 0.5), absl::Seconds(4));
  EXPECT_EQ(WarmRetryDelay(backoff, 5, 0.5), absl::Seconds(16));
}

TEST(WarmRetryDelayTest, StopsAtTheCapHoweverManyFailures) {
  const WarmBackoff backoff{absl::Seconds(1), absl::Seconds(30)};
  EXPECT_EQ(WarmRetryDelay(backoff, 6, 0.5), absl::Seconds(30));
  EXPECT_EQ(WarmRetryDelay(backoff, 1000, 0.5), absl::Seconds(30));
}

TEST(WarmRetryDelayTest, JitterStaysWithinAQuarterEitherWay) {
  const WarmBackoff backoff{absl::Milliseconds(400), absl::Seconds(30)};
  EXPECT_EQ(WarmRetryDelay(backoff, 1, 0.0), absl::Milliseconds(300));
  EXPECT_EQ(WarmRetryDelay(backoff, 1, 1.0), absl::Milliseconds(500));
  for (double unit = 0; unit < 1; unit += 0.01) {
    const absl::Duration delay = WarmRetryDelay(backoff, 3, unit);
    EXPECT_GE(delay, absl::Milliseconds(1200)) << unit;
    EXPECT_LE(delay, absl::Milliseconds(2000)) << unit;
  }
}

TEST(WarmRetryDelayTest, NonsenseInputsStayInRange) {
  const WarmBackoff backoff{absl::Seconds(1), absl::Seconds(30)};
  EXPECT_EQ(WarmRetryDelay(backoff, 0, 0.5), absl::Seconds(1));
  EXPECT_EQ(WarmRetryDelay(backoff, 1, -3), absl::Milliseconds(750));
  EXPECT_EQ(WarmRetryDelay(backoff, 1, 7), absl::Milliseconds(1250));
}

}  // namespace
}  // namespace tandem::proxy
