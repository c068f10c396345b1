// The threads that keep the slot table's pool of standbys filled, in parallel.
// They decide nothing: the slot table says when a warm-up is wanted, the factory makes it.
#include "proxy/warmer.h"

#include <optional>
#include <utility>

namespace tandem::proxy {

Warmer::Warmer(SlotTable& slots, const InstanceFactory& factory, PairEventSink* events, int threads,
               absl::Duration warm_deadline)
    : slots_(slots), factory_(factory), events_(events), warm_deadline_(warm_deadline) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back(&Warmer::Main, this);
}

Warmer::~Warmer() {
  for (std::thread& thread : threads_) thread.join();
}

void Warmer::Main() {
  while (true) {
    Events events;
    std::optional<WarmTicket> ticket = slots_.AwaitWarmNeeded(events);
    if (events_ != nullptr) {
      for (const PairEvent& event : events) events_->OnPairEvent(event);
    }
    if (!ticket.has_value()) return;
    events.clear();
    const absl::Time started = absl::Now();
    absl::StatusOr<Lease> warmed = factory_.Make(ticket->generation, warm_deadline_);
    slots_.DeliverWarmed(*ticket, std::move(warmed), absl::Now() - started, events);
    if (events_ != nullptr) {
      for (const PairEvent& event : events) events_->OnPairEvent(event);
    }
  }
}

}  // namespace tandem::proxy
