// How many instances each peer may fail with its views: a token bucket per peer.
// It only counts and answers; the gRPC layer decides whom to ask about and what to do with "no".
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "util/mutex.h"

namespace tandem::server {

struct PeerBudgetOptions {
  // Instance failures a peer may cause at once, and how many it regains per second after that.
  double burst = 10;
  double refill_per_second = 1;
  // Peers remembered; the least recently seen is forgotten past this (it starts with a full
  // budget again, which costs at most `burst` failures).
  size_t max_peers = 10'000;
};

// A view that traps or aborts fails the instance it ran on, and a replacement costs a warm-up.
// Honest clients never fail instances, so they never spend from their budget; a client that does
// so repeatedly gets RESOURCE_EXHAUSTED until its budget refills, instead of costing the node a
// warm-up per call.
//
// Threading: thread-safe.
class PeerBudget {
 public:
  explicit PeerBudget(PeerBudgetOptions options) : options_(options) {}
  PeerBudget(const PeerBudget&) = delete;
  PeerBudget& operator=(const PeerBudget&) = delete;

  // OK when `peer` may make a call that could fail an instance; otherwise RESOURCE_EXHAUSTED
  // saying how long until it may, with `*retry_in` set to that.
  absl::Status Admit(absl::string_view peer, absl::Time now, absl::Duration* retry_in)
      ABSL_LOCKS_EXCLUDED(mu_);
  // A call of `peer` failed the instance it ran on.
  void Charge(absl::string_view peer, absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  // Calls refused so far.
  uint64_t refusals() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time updated;
    std::list<std::string>::iterator recency;
  };
  Bucket& Find(absl::string_view peer, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const PeerBudgetOptions options_;
  mutable util::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
  std::list<std::string> recency_ ABSL_GUARDED_BY(mu_);  // Least recently seen first.
  uint64_t refusals_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tandem::server
