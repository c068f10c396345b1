// Fans the instance pair's events out to the log and to every Admin.WatchEvents stream.
// It only relays: it never calls back into the pair.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <set>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "proxy/events.h"
#include "server/logger.h"
#include "server/metrics.h"
#include "util/mutex.h"

namespace tandem::server {

// A one-line description of `event` for the log ("swap generation 3 -> 4 (block), pause 12us").
std::string DescribeEvent(const proxy::PairEvent& event);

// Receives the pair's events, logs each one, and queues it for every subscriber.
//
// Threading: every method is thread-safe. OnPairEvent never blocks on a subscriber: each has a
// bounded queue, and when a watcher reads too slowly its oldest events are dropped and counted
// (for the watcher, and in tandem_watch_events_dropped_total).
class EventHub final : public proxy::PairEventSink {
 public:
  class Subscription;

  // REQUIRES: `logger` and `metrics` (may be null: drops are then not exported) outlive the hub.
  // `queue_limit` bounds each subscriber's queue.
  explicit EventHub(Logger& logger, size_t queue_limit = 1024, Metrics* metrics = nullptr)
      : logger_(logger), queue_limit_(queue_limit), metrics_(metrics) {}
  ~EventHub() override;
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  void OnPairEvent(const proxy::PairEvent& event) override ABSL_LOCKS_EXCLUDED(mu_);

  // A new subscriber that sees every event published after this call. The subscription must be
  // destroyed before the hub.
  std::unique_ptr<Subscription> Subscribe() ABSL_LOCKS_EXCLUDED(mu_);

  // Ends every subscription (Next returns kClosed once its queue is empty) and refuses new ones
  // (they start closed). Called at shutdown so watch streams end instead of holding it up.
  void Close() ABSL_LOCKS_EXCLUDED(mu_);

  class Subscription {
   public:
    enum class Result { kEvent, kTimeout, kClosed };
    ~Subscription() ABSL_LOCKS_EXCLUDED(hub_.mu_);
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;

    // Waits at most `timeout` for the next event. kEvent fills `event` and `dropped_before`
    // (events dropped just before it because this subscriber was slow).
    Result Next(absl::Duration timeout, proxy::PairEvent* event, uint64_t* dropped_before)
        ABSL_LOCKS_EXCLUDED(hub_.mu_);

   private:
    friend class EventHub;
    explicit Subscription(EventHub& hub) : hub_(hub) {}

    EventHub& hub_;
    // Protected by hub_.mu_.
    std::deque<proxy::PairEvent> queue_;
    std::deque<uint64_t> dropped_counts_;  // Parallel to queue_.
    uint64_t dropped_pending_ = 0;         // Dropped since the last queued event was taken.
  };

 private:
  // Constant after construction.
  Logger& logger_;
  const size_t queue_limit_;
  Metrics* const metrics_;

  util::Mutex mu_;
  std::set<Subscription*> subscribers_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tandem::server
