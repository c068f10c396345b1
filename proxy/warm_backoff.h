// When to try a failed warm-up again: exponential backoff with jitter, as a pure function.
// No clock, no randomness of its own: callers pass both, so tests need no sleeping.
#pragma once

#include "absl/time/time.h"

namespace tandem::proxy {

struct WarmBackoff {
  absl::Duration base = absl::Seconds(1);
  absl::Duration cap = absl::Seconds(30);
};

// The wait before the next attempt after `consecutive_failures` (>= 1) failed warm-ups in a row:
// base * 2^(failures - 1), capped, then scaled by a jitter factor of 0.75 + 0.5 * `unit` (so
// +-25%), where `unit` is a uniform draw from [0, 1) supplied by the caller. The jitter keeps the
// nodes of a fleet that failed together from retrying in lockstep.
absl::Duration WarmRetryDelay(const WarmBackoff& backoff, int consecutive_failures, double unit);

}  // namespace tandem::proxy
