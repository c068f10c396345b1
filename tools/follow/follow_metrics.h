// tandem-follow's own Prometheus metrics (prometheus-cpp), served on --metrics_listen: the node's
// height, tandemd's tip, the lag between them, blocks indexed, reorgs and their depth, and failed
// calls to the node and to tandemd. It only records numbers; it decides nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "util/mutex.h"

namespace tandem::follow {

// Threading: thread-safe (prometheus-cpp's metrics are atomic; the heights behind the lag gauge
// are guarded by mu_).
class FollowMetrics {
 public:
  FollowMetrics();

  // Serves /metrics on `address` (host:port). UNAVAILABLE when it cannot bind, INVALID_ARGUMENT
  // when the address is not host:port.
  absl::Status Serve(const std::string& address);

  // The node's best height, and tandemd's tip as the follower last saw it.
  void SetNodeHeight(int64_t height) ABSL_LOCKS_EXCLUDED(mu_);
  void SetTip(int64_t height) ABSL_LOCKS_EXCLUDED(mu_);
  // One block committed by tandemd for this follower (already_committed ones included).
  void BlockIndexed() { blocks_->Increment(); }
  // A reorg of `depth` blocks, rolled back.
  void Reorg(int64_t depth);
  // A failed call: `server` is "node" or "tandemd", `code` the status code's name.
  void CallFailed(absl::string_view server, absl::string_view code);
  // 1 while the follower waits for that server ("node" or "tandemd") to come back, else 0.
  void SetWaiting(absl::string_view server, bool waiting);

 private:
  void UpdateLag() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  prometheus::Gauge* const node_height_;
  prometheus::Gauge* const tip_height_;
  prometheus::Gauge* const lag_;
  prometheus::Counter* const blocks_;
  prometheus::Counter* const reorgs_;
  prometheus::Histogram* const reorg_depth_;
  prometheus::Family<prometheus::Counter>& call_errors_;
  prometheus::Family<prometheus::Gauge>& waiting_;

  util::Mutex mu_;
  int64_t node_height_value_ ABSL_GUARDED_BY(mu_) = -1;
  int64_t tip_value_ ABSL_GUARDED_BY(mu_) = -1;
};

}  // namespace tandem::follow
