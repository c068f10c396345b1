// The instances that ran blocks not settled yet, held so that each can be published when its block
// settles, and how many of them may be held at once. Bookkeeping only: it never runs a call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>

#include "absl/base/thread_annotations.h"
#include "proxy/managed_instance.h"
#include "util/mutex.h"

namespace tandem::proxy {

// Under `block` every block runs on an instance of its own, and that instance becomes the active
// (the one that answers views at the new tip) when the block settles. A block in flight therefore
// holds a whole guest memory and a worker (a thread and its V8 isolate) until it is durable. When
// the guest runs ahead of the disk (a large block's commit takes as long as many small blocks'
// runs), those add up, and either the guest waits for the disk or more workers live, each with
// its share of collections. Past `capacity`, the newest block but one gives its instance up: its
// block settles without publishing (views at its height take a fresh instance, as below the tip),
// and the newest block, whose instance is the active once the backlog settles, always keeps its
// own. The oldest, which settle first, keep theirs. Measured on real blocks over a stream
// (benchmarks/README.md, "Blocks in flight give their instances up"): with 2 held instead of a
// stream waiting whenever 8 were, `block` went from 144 to 166 blocks/s (median of nine rounds).
//
// Threading: thread-safe. mu_ guards the held leases; a lease given up is handed back to the
// caller, which drops it (destroying the instance if it was the last lease) with mu_ released.
class UnsettledInstances {
 public:
  // `capacity` instances held at most (at least 1).
  explicit UnsettledInstances(size_t capacity) : capacity_(capacity < 1 ? 1 : capacity) {}
  UnsettledInstances(const UnsettledInstances&) = delete;
  UnsettledInstances& operator=(const UnsettledInstances&) = delete;

  // Holds `ran_on` for the block at `height` until Take(height). Returns the lease that gave its
  // instance up to stay within the capacity (null when none did).
  // REQUIRES: heights are held in increasing order, each at most once until taken.
  Lease Hold(uint32_t height, Lease ran_on) ABSL_LOCKS_EXCLUDED(mu_);
  // The lease held for `height`, no longer held; null when it gave its instance up (or was never
  // held).
  Lease Take(uint32_t height) ABSL_LOCKS_EXCLUDED(mu_);

  // The distinct instances held.
  size_t held() const ABSL_LOCKS_EXCLUDED(mu_);
  // Instances given up since construction.
  uint64_t given_up() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const size_t capacity_;
  mutable util::Mutex mu_;
  std::map<uint32_t, Lease> by_height_ ABSL_GUARDED_BY(mu_);
  uint64_t given_up_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tandem::proxy
