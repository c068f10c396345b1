// Instances kept for views at heights below the tip, each bound to the one height it has seen.
// It decides only what to keep within its capacity (least recently used goes first); no policy.
#include "proxy/height_cache.h"

#include <utility>

namespace tandem::proxy {

Lease HeightCache::Find(uint32_t height) {
  auto it = by_height_.find(height);
  if (it == by_height_.end()) return nullptr;
  recency_.splice(recency_.end(), recency_, it->second.recency);
  return it->second.lease;
}

void HeightCache::Keep(uint32_t height, Lease lease) {
  if (capacity_ <= 0 || by_height_.contains(height)) return;
  recency_.push_back(height);
  by_height_.emplace(height, Entry{std::move(lease), std::prev(recency_.end())});
  while (size() > capacity_) Erase(by_height_.find(recency_.front()));
}

void HeightCache::DropAbove(std::optional<uint32_t> height) {
  auto first = height.has_value() ? by_height_.upper_bound(*height) : by_height_.begin();
  while (first != by_height_.end()) {
    auto next = std::next(first);
    Erase(first);
    first = next;
  }
}

bool HeightCache::Drop(const Lease& lease) {
  for (auto it = by_height_.begin(); it != by_height_.end(); ++it) {
    if (it->second.lease == lease) {
      Erase(it);
      return true;
    }
  }
  return false;
}

void HeightCache::Clear() {
  by_height_.clear();
  recency_.clear();
}

std::vector<Lease> HeightCache::TakeAll() {
  std::vector<Lease> taken;
  taken.reserve(by_height_.size());
  for (auto& [height, entry] : by_height_) taken.push_back(std::move(entry.lease));
  Clear();
  return taken;
}

void HeightCache::Erase(std::map<uint32_t, Entry>::iterator it) {
  recency_.erase(it->second.recency);
  by_height_.erase(it);
}

}  // namespace tandem::proxy
