#include "server/event_hub.h"

#include "absl/strings/str_cat.h"

namespace tandem::server {

std::string DescribeEvent(const proxy::PairEvent& event) {
  using Kind = proxy::PairEvent::Kind;
  std::string text = absl::StrCat("event ", proxy::PairEventKindName(event.kind));
  switch (event.kind) {
    case Kind::kWarmStarted:
      absl::StrAppend(&text, ": generation ", event.generation);
      break;
    case Kind::kWarmReady:
      absl::StrAppend(&text, ": generation ", event.generation, " in ",
                      absl::FormatDuration(event.duration));
      break;
    case Kind::kWarmFailed:
      absl::StrAppend(&text, ": generation ", event.generation, ": ", event.cause, "; retry in ",
                      absl::FormatDuration(event.retry_in));
      break;
    case Kind::kSwap:
      absl::StrAppend(&text, ": generation ", event.previous_generation, " -> ", event.generation,
                      " (", proxy::SwapReasonName(event.reason), "), pause ",
                      absl::FormatDuration(event.pause));
      break;
    case Kind::kInstanceFailed:
    case Kind::kStandbyDiscarded:
      absl::StrAppend(&text, ": generation ", event.generation, ": ", event.cause);
      break;
    case Kind::kSwapDelayed:
      absl::StrAppend(&text, ": ", event.cause);
      break;
    case Kind::kBlockCommitted:
      absl::StrAppend(&text, ": height ", event.height, " in ",
                      absl::FormatDuration(event.duration));
      break;
    case Kind::kBlockFailed:
      absl::StrAppend(&text, ": height ", event.height, ": ", event.cause);
      break;
    case Kind::kRolledBack:
      absl::StrAppend(&text, ": tip is now ", event.height);
      break;
    case Kind::kInitCall:
    case Kind::kReplayLogReset:
    case Kind::kSnapshotFailed:
      absl::StrAppend(&text, ": ", event.cause);
      break;
    case Kind::kSnapshotTaken:
      absl::StrAppend(&text, ": tip ", event.height, " in ", absl::FormatDuration(event.duration),
                      ": ", event.cause);
      break;
  }
  return text;
}

EventHub::~EventHub() {
  util::MutexLock lock(&mu_);
  // Every subscription must be gone by now (see Subscribe); nothing to free.
}

void EventHub::OnPairEvent(const proxy::PairEvent& event) {
  using Kind = proxy::PairEvent::Kind;
  bool trouble = event.kind == Kind::kWarmFailed || event.kind == Kind::kInstanceFailed ||
                 event.kind == Kind::kBlockFailed || event.kind == Kind::kSwapDelayed ||
                 event.kind == Kind::kReplayLogReset || event.kind == Kind::kSnapshotFailed;
  logger_.Write(trouble ? Logger::Severity::kWarning : Logger::Severity::kInfo,
                DescribeEvent(event));
  uint64_t dropped_now = 0;
  {
    util::MutexLock lock(&mu_);
    for (Subscription* subscriber : subscribers_) {
      if (subscriber->queue_.size() >= queue_limit_) {
        ++dropped_now;
        subscriber->queue_.pop_front();
        uint64_t dropped = subscriber->dropped_counts_.front() + 1;
        subscriber->dropped_counts_.pop_front();
        if (subscriber->dropped_counts_.empty()) {
          subscriber->dropped_pending_ += dropped;
        } else {
          subscriber->dropped_counts_.front() += dropped;
        }
      }
      subscriber->queue_.push_back(event);
      subscriber->dropped_counts_.push_back(subscriber->dropped_pending_);
      subscriber->dropped_pending_ = 0;
    }
  }
  // Outside the lock: the hub never holds it while calling out.
  if (dropped_now > 0 && metrics_ != nullptr) metrics_->RecordDroppedWatchEvents(dropped_now);
}

std::unique_ptr<EventHub::Subscription> EventHub::Subscribe() {
  auto subscription = std::unique_ptr<Subscription>(new Subscription(*this));
  util::MutexLock lock(&mu_);
  if (!closed_) subscribers_.insert(subscription.get());
  return subscription;
}

void EventHub::Close() {
  util::MutexLock lock(&mu_);
  closed_ = true;
}

EventHub::Subscription::~Subscription() {
  util::MutexLock lock(&hub_.mu_);
  hub_.subscribers_.erase(this);
}

EventHub::Subscription::Result EventHub::Subscription::Next(absl::Duration timeout,
                                                            proxy::PairEvent* event,
                                                            uint64_t* dropped_before) {
  util::MutexLock lock(&hub_.mu_);
  auto ready = [this]()
                   ABSL_SHARED_LOCKS_REQUIRED(hub_.mu_) { return !queue_.empty() || hub_.closed_; };
  hub_.mu_.AwaitWithTimeout(ready, timeout);
  if (!queue_.empty()) {
    *event = std::move(queue_.front());
    queue_.pop_front();
    *dropped_before = dropped_counts_.front();
    dropped_counts_.pop_front();
    return Result::kEvent;
  }
  return hub_.closed_ ? Result::kClosed : Result::kTimeout;
}

}  // namespace tandem::server
