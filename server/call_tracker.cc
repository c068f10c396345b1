#include "server/call_tracker.h"

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace tandem::server {

void CallTracker::Begin() {
  util::MutexLock lock(&mu_);
  ++in_flight_;
}

void CallTracker::End() {
  util::MutexLock lock(&mu_);
  --in_flight_;
}

int64_t CallTracker::in_flight() const {
  util::MutexLock lock(&mu_);
  return in_flight_;
}

bool CallTracker::WaitUntilIdle(absl::Time deadline) {
  util::MutexLock lock(&mu_);
  return mu_.AwaitWithDeadline(
      [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ == 0; }, deadline);
}

namespace {

// Lives as long as its call: gRPC creates it when the call starts and deletes it when the call is
// done.
class TrackedCall final : public grpc::experimental::Interceptor {
 public:
  explicit TrackedCall(CallTracker& tracker) : tracker_(tracker) { tracker_.Begin(); }
  ~TrackedCall() override { tracker_.End(); }
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    methods->Proceed();
  }

 private:
  CallTracker& tracker_;
};

class CallTrackerInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CallTrackerInterceptorFactory(CallTracker& tracker) : tracker_(tracker) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    const absl::string_view method = info->method() != nullptr ? info->method() : "";
    if (!absl::StartsWith(method, "/tandem.")) return nullptr;
    return new TrackedCall(tracker_);
  }

 private:
  CallTracker& tracker_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
NewCallTrackerInterceptorFactory(CallTracker& tracker) {
  return std::make_unique<CallTrackerInterceptorFactory>(tracker);
}

}  // namespace tandem::server
