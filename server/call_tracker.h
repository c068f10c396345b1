// Counts the tandem calls in flight on the gRPC servers, so that shutdown waits for exactly those
// and not for idle connections. It only counts; it never cancels or refuses a call.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "grpcpp/support/server_interceptor.h"
#include "util/mutex.h"

namespace tandem::server {

// Threading: thread-safe. gRPC's threads begin and end calls through the interceptor of
// NewCallTrackerInterceptorFactory; shutdown waits on another thread.
class CallTracker {
 public:
  CallTracker() = default;
  CallTracker(const CallTracker&) = delete;
  CallTracker& operator=(const CallTracker&) = delete;

  void Begin() ABSL_LOCKS_EXCLUDED(mu_);
  void End() ABSL_LOCKS_EXCLUDED(mu_);
  // Calls begun and not ended.
  int64_t in_flight() const ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until no call is in flight or `deadline` passes; returns whether none is.
  bool WaitUntilIdle(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable util::Mutex mu_;
  int64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

// An interceptor factory that counts, in `tracker`, every call of a tandem.v1 service from its
// start until gRPC destroys it (after its status was sent). gRPC's own services (health,
// reflection) are not counted: a health watch stays open for as long as its client likes, and
// shutdown must not wait for it.
// REQUIRES: `tracker` outlives every server built with the factory.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
NewCallTrackerInterceptorFactory(CallTracker& tracker);

}  // namespace tandem::server
