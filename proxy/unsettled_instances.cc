// The instances that ran blocks not settled yet, held so that each can be published when its block
// settles, and how many of them may be held at once. Bookkeeping only: it never runs a call.
#include "proxy/unsettled_instances.h"

#include <iterator>
#include <utility>

#include "absl/container/flat_hash_set.h"

namespace tandem::proxy {

Lease UnsettledInstances::Hold(uint32_t height, Lease ran_on) {
  util::MutexLock lock(&mu_);
  by_height_.emplace_hint(by_height_.end(), height, std::move(ran_on));
  if (by_height_.size() <= capacity_) return nullptr;
  // The newest but one: with a capacity of 1 that is the oldest, otherwise one of the middle.
  auto victim = std::prev(by_height_.end(), 2);
  Lease gave_up = std::move(victim->second);
  by_height_.erase(victim);
  ++given_up_;
  return gave_up;
}

Lease UnsettledInstances::Take(uint32_t height) {
  util::MutexLock lock(&mu_);
  auto it = by_height_.find(height);
  if (it == by_height_.end()) return nullptr;
  Lease taken = std::move(it->second);
  by_height_.erase(it);
  return taken;
}

size_t UnsettledInstances::held() const {
  util::MutexLock lock(&mu_);
  // Under `none` and `threshold` consecutive blocks share one instance: counted once.
  absl::flat_hash_set<const ManagedInstance*> distinct;
  for (const auto& [height, lease] : by_height_) distinct.insert(lease.get());
  return distinct.size();
}

uint64_t UnsettledInstances::given_up() const {
  util::MutexLock lock(&mu_);
  return given_up_;
}

}  // namespace tandem::proxy
