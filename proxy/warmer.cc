// The threads that keep the slot table's pool of standbys filled, in parallel.
// They decide nothing: the slot table says when a warm-up is wanted, the factory makes it.
#include "proxy/warmer.h"

#include <memory>
#include <optional>
#include <utility>

#include "util/mutex.h"

namespace tandem::proxy {

Warmer::Warmer(SlotTable& slots, const InstanceFactory& factory, PairEventSink* events, int threads,
               absl::Duration warm_deadline)
    : slots_(slots), factory_(factory), events_(events), warm_deadline_(warm_deadline) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back(&Warmer::Main, this);
}

Warmer::~Warmer() {
  for (std::thread& thread : threads_) thread.join();
}

void Warmer::Emit(const Events& events) const {
  if (events_ == nullptr) return;
  for (const PairEvent& event : events) events_->OnPairEvent(event);
}

// Who delivers a warm-up's outcome to the slot table, exactly once: the worker, as soon as the
// standby is ready (so a block can run on it without waiting for this thread to wake), or the
// warmer thread, once Make returned without that having happened. The worker delivers holding
// `mu`, so once the warmer thread holds it the worker is done with the warmer.
struct Warmer::Delivery {
  util::Mutex mu;
  bool delivered ABSL_GUARDED_BY(mu) = false;
  bool abandoned ABSL_GUARDED_BY(mu) = false;
};

void Warmer::Main() {
  while (true) {
    Events events;
    std::optional<WarmTicket> ticket = slots_.AwaitWarmNeeded(events);
    Emit(events);
    if (!ticket.has_value()) return;
    const absl::Time started = absl::Now();
    auto delivery = std::make_shared<Delivery>();
    absl::StatusOr<Lease> warmed = factory_.Make(
        ticket->generation, warm_deadline_,
        [this, delivery, ticket = *ticket, started](Lease ready) {
          util::MutexLock lock(&delivery->mu);
          if (delivery->abandoned) return;
          delivery->delivered = true;
          Events delivered;
          slots_.DeliverWarmed(ticket, std::move(ready), absl::Now() - started, delivered);
          Emit(delivered);
        });
    {
      util::MutexLock lock(&delivery->mu);
      delivery->abandoned = true;
      // Delivered: should Make still have failed after that (its deadline passed as the job
      // ended), the standby's worker is poisoned and its first call finds it lost and is retried
      // on another instance.
      if (delivery->delivered) continue;
    }
    events.clear();
    slots_.DeliverWarmed(*ticket, std::move(warmed), absl::Now() - started, events);
    Emit(events);
  }
}

}  // namespace tandem::proxy
