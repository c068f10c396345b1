// Instances kept for views at heights below the tip, each bound to the one height it has seen.
// It decides only what to keep within its capacity (least recently used goes first); no policy.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <optional>
#include <vector>

#include "proxy/managed_instance.h"

namespace tandem::proxy {

// Guests cache what they read, so an instance that has answered at height h must never answer for
// another height: the cache hands out an instance only for the height it is bound to.
//
// Threading: none of its own; the owning SlotTable guards it with its mutex.
class HeightCache {
 public:
  // `capacity` instances at most (each holds a whole guest memory); 0 keeps none.
  explicit HeightCache(int capacity) : capacity_(capacity) {}
  HeightCache(const HeightCache&) = delete;
  HeightCache& operator=(const HeightCache&) = delete;

  // The instance kept for `height`, now the most recently used; null when there is none.
  Lease Find(uint32_t height);
  // Keeps `lease` for `height`, dropping the least recently used past the capacity. Drops `lease`
  // instead when the capacity is 0 or `height` already has an instance.
  void Keep(uint32_t height, Lease lease);
  // Drops every instance bound above `height`, or all of them when `height` is empty (a rollback
  // below the first block).
  void DropAbove(std::optional<uint32_t> height);
  // Drops `lease` wherever it is kept. Returns whether it was.
  bool Drop(const Lease& lease);
  void Clear();
  // Moves every kept instance out (the caller destroys them outside its lock).
  std::vector<Lease> TakeAll();

  int size() const { return static_cast<int>(by_height_.size()); }
  int capacity() const { return capacity_; }

 private:
  struct Entry {
    Lease lease;
    std::list<uint32_t>::iterator recency;
  };
  void Erase(std::map<uint32_t, Entry>::iterator it);

  const int capacity_;
  std::map<uint32_t, Entry> by_height_;
  std::list<uint32_t> recency_;  // Least recently used first.
};

}  // namespace tandem::proxy
