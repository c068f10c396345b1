// An engine instance as the pair manages it: its generation and the one height it may answer for.
// Plain bookkeeping: it decides nothing and never runs a call itself.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "engine/instance.h"

namespace tandem::proxy {

// Shared through leases (std::shared_ptr) because a call that started on an instance must be able
// to finish after a swap has unpublished it; the last lease destroys it, which hands its worker
// back to the pool without waiting.
class ManagedInstance {
 public:
  ManagedInstance(std::unique_ptr<engine::Instance> instance, uint64_t generation)
      : instance_(std::move(instance)), generation_(generation) {}
  ManagedInstance(const ManagedInstance&) = delete;
  ManagedInstance& operator=(const ManagedInstance&) = delete;

  engine::Instance& instance() const { return *instance_; }
  uint64_t generation() const { return generation_; }

  // Guarded by the owning SlotTable's mutex (not expressible across classes):
  // The height whose state this instance has seen (ran its block, served a view there, or was
  // published at it); empty while it has seen none.
  std::optional<uint32_t> bound_height;
  // The replay-log epoch it was warmed under (see SlotTable): stale once an init call bumps it.
  uint64_t epoch = 0;
  // Set when the instance's failure was reported: it is reported once, however many calls notice.
  bool failure_reported = false;

 private:
  const std::unique_ptr<engine::Instance> instance_;
  const uint64_t generation_;
};

using Lease = std::shared_ptr<ManagedInstance>;

}  // namespace tandem::proxy
