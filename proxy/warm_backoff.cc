// When to try a failed warm-up again: exponential backoff with jitter, as a pure function.
// No clock, no randomness of its own: callers pass both, so tests need no sleeping.
#include "proxy/warm_backoff.h"

#include <algorithm>
#include <cmath>

namespace tandem::proxy {

absl::Duration WarmRetryDelay(const WarmBackoff& backoff, int consecutive_failures, double unit) {
  const int doublings = std::clamp(consecutive_failures - 1, 0, 30);
  const double seconds = std::min(absl::ToDoubleSeconds(backoff.base) * std::ldexp(1.0, doublings),
                                  absl::ToDoubleSeconds(backoff.cap));
  const double jitter = 0.75 + 0.5 * std::clamp(unit, 0.0, 1.0);
  return absl::Seconds(seconds * jitter);
}

}  // namespace tandem::proxy
