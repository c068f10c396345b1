// tandem-follow's Prometheus metrics. prometheus-cpp's exceptions (an exposer that cannot bind)
// become absl::Status here.
#include "tools/follow/follow_metrics.h"

#include <exception>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tandem::follow {
namespace {

prometheus::Gauge* NewGauge(prometheus::Registry& registry, const char* name, const char* help) {
  return &prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
}

prometheus::Counter* NewCounter(prometheus::Registry& registry, const char* name,
                                const char* help) {
  return &prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
}

}  // namespace

FollowMetrics::FollowMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      node_height_(NewGauge(*registry_, "tandem_follow_node_height",
                            "Height of the node's best chain, as last read (-1: not yet).")),
      tip_height_(NewGauge(*registry_, "tandem_follow_tip_height",
                           "tandemd's committed tip, as the follower last saw it (-1: empty).")),
      lag_(NewGauge(*registry_, "tandem_follow_lag_blocks",
                    "Blocks the node has that tandemd has not indexed yet (node height - tip).")),
      blocks_(NewCounter(*registry_, "tandem_follow_blocks_total",
                         "Blocks submitted and committed; rate() of it is the blocks per second.")),
      reorgs_(NewCounter(*registry_, "tandem_follow_reorgs_total",
                         "Reorgs handled: tandemd rolled back to the fork point.")),
      reorg_depth_(&prometheus::BuildHistogram()
                        .Name("tandem_follow_reorg_depth_blocks")
                        .Help("Depth of each reorg handled: blocks rolled back.")
                        .Register(*registry_)
                        .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 3, 6, 10, 20, 50,
                                                                         100, 1000})),
      call_errors_(prometheus::BuildCounter()
                       .Name("tandem_follow_rpc_errors_total")
                       .Help("Failed calls, by server (node, tandemd) and status code.")
                       .Register(*registry_)),
      waiting_(prometheus::BuildGauge()
                   .Name("tandem_follow_waiting")
                   .Help("1 while the follower waits for that server (node, tandemd) to answer.")
                   .Register(*registry_)) {
  node_height_->Set(-1);
  tip_height_->Set(-1);
  waiting_.Add({{"server", "node"}});
  waiting_.Add({{"server", "tandemd"}});
}

absl::Status FollowMetrics::Serve(const std::string& address) {
  if (address.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address \"", address, "\" is not host:port"));
  }
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address);
    exposer_->RegisterCollectable(registry_);
  } catch (const std::exception& error) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, " (port in use?): ", error.what()));
  }
  return absl::OkStatus();
}

void FollowMetrics::SetNodeHeight(int64_t height) {
  util::MutexLock lock(&mu_);
  node_height_value_ = height;
  node_height_->Set(static_cast<double>(height));
  UpdateLag();
}

void FollowMetrics::SetTip(int64_t height) {
  util::MutexLock lock(&mu_);
  tip_value_ = height;
  tip_height_->Set(static_cast<double>(height));
  UpdateLag();
}

void FollowMetrics::UpdateLag() {
  if (node_height_value_ < 0) return;
  // An empty tandemd lags by every block from the start height on; the follower sets its tip to
  // start - 1 then, so the difference still counts the blocks to index.
  lag_->Set(static_cast<double>(std::max<int64_t>(0, node_height_value_ - tip_value_)));
}

void FollowMetrics::Reorg(int64_t depth) {
  reorgs_->Increment();
  reorg_depth_->Observe(static_cast<double>(depth));
}

void FollowMetrics::CallFailed(absl::string_view server, absl::string_view code) {
  call_errors_.Add({{"server", std::string(server)}, {"code", std::string(code)}}).Increment();
}

void FollowMetrics::SetWaiting(absl::string_view server, bool waiting) {
  waiting_.Add({{"server", std::string(server)}}).Set(waiting ? 1 : 0);
}

}  // namespace tandem::follow
