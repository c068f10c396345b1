// How many instances each peer may fail with its views: a token bucket per peer.
// It only counts and answers; the gRPC layer decides whom to ask about and what to do with "no".
#include "server/peer_budget.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace tandem::server {

PeerBudget::Bucket& PeerBudget::Find(absl::string_view peer, absl::Time now) {
  auto it = buckets_.find(peer);
  if (it == buckets_.end()) {
    while (buckets_.size() >= options_.max_peers && !recency_.empty()) {
      buckets_.erase(recency_.front());
      recency_.pop_front();
    }
    recency_.emplace_back(peer);
    it = buckets_.emplace(std::string(peer), Bucket{options_.burst, now, std::prev(recency_.end())})
             .first;
  } else {
    recency_.splice(recency_.end(), recency_, it->second.recency);
  }
  Bucket& bucket = it->second;
  const double elapsed = std::max(0.0, absl::ToDoubleSeconds(now - bucket.updated));
  bucket.tokens = std::min(options_.burst, bucket.tokens + elapsed * options_.refill_per_second);
  bucket.updated = now;
  return bucket;
}

absl::Status PeerBudget::Admit(absl::string_view peer, absl::Time now, absl::Duration* retry_in) {
  util::MutexLock lock(&mu_);
  Bucket& bucket = Find(peer, now);
  if (bucket.tokens >= 1) return absl::OkStatus();
  ++refusals_;
  const absl::Duration wait =
      absl::Seconds((1 - bucket.tokens) / std::max(options_.refill_per_second, 1e-9));
  if (retry_in != nullptr) *retry_in = wait;
  return absl::ResourceExhaustedError(absl::StrCat(
      "this connection's views failed ", options_.burst,
      " guest instances in a short time (each a trap or abort); it may run views again in ",
      absl::FormatDuration(absl::Ceil(wait, absl::Milliseconds(1)))));
}

void PeerBudget::Charge(absl::string_view peer, absl::Time now) {
  util::MutexLock lock(&mu_);
  Bucket& bucket = Find(peer, now);
  bucket.tokens = std::max(bucket.tokens - 1, -options_.burst);
}

uint64_t PeerBudget::refusals() const {
  util::MutexLock lock(&mu_);
  return refusals_;
}

}  // namespace tandem::server
