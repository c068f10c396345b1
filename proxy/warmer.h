// The threads that keep the slot table's pool of standbys filled, in parallel.
// They decide nothing: the slot table says when a warm-up is wanted, the factory makes it.
#pragma once

#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "proxy/events.h"
#include "proxy/instance_factory.h"
#include "proxy/slot_table.h"

namespace tandem::proxy {

// A warm-up's standby goes to the table from its worker's thread, at the end of the job that made
// it, not from the warmer thread once that wakes up: a block waiting for a standby then runs one
// thread hand-off sooner. Failures go from the warmer thread.
//
// Threading: constructed and destroyed by one owner; its threads, and the workers' threads while
// they deliver, call only thread-safe methods of the table, the factory and the event sink.
class Warmer {
 public:
  // Starts `threads` warmer threads. REQUIRES: `slots`, `factory` and `events` (may be null)
  // outlive the warmer.
  Warmer(SlotTable& slots, const InstanceFactory& factory, PairEventSink* events, int threads,
         absl::Duration warm_deadline);
  // REQUIRES: slots.Stop() was called. Joins the threads (a warm-up in progress finishes first,
  // bounded by its deadline).
  ~Warmer();
  Warmer(const Warmer&) = delete;
  Warmer& operator=(const Warmer&) = delete;

 private:
  struct Delivery;

  void Main();
  void Emit(const Events& events) const;

  SlotTable& slots_;
  const InstanceFactory& factory_;
  PairEventSink* const events_;
  const absl::Duration warm_deadline_;
  std::vector<std::thread> threads_;
};

}  // namespace tandem::proxy
