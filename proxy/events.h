// Events of the instance pair (warm-ups, swaps, failures), for the gRPC and metrics layers.
// Plain data and one observer interface: nothing here knows who listens.
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace tandem::proxy {

enum class SwapPolicy { kBlock, kThreshold, kNone, kSync };

// "block", "threshold", "none", "sync".
absl::string_view SwapPolicyName(SwapPolicy policy);
// Parses a policy name; false when `name` is none of them.
bool ParseSwapPolicy(absl::string_view name, SwapPolicy* policy);

enum class StandbyState { kEmpty = 0, kWarming = 1, kReady = 2, kFailed = 3 };
absl::string_view StandbyStateName(StandbyState state);

// Why the active instance changed.
enum class SwapReason { kBlock, kThreshold, kManual, kFailure, kStartup, kRollback, kSync };
// "block", "threshold", "manual", "failure", "startup", "rollback", "sync".
absl::string_view SwapReasonName(SwapReason reason);

struct PairEvent {
  enum class Kind {
    kWarmStarted,       // generation: the instance being warmed.
    kWarmReady,         // generation, duration: how long the warm took.
    kWarmFailed,        // generation, cause; the warm is retried after `retry_in`.
    kSwap,              // generation: the new active; previous_generation; reason; pause.
    kInstanceFailed,    // generation, cause: a call failed the instance; it is replaced.
    kStandbyDiscarded,  // generation, cause: a standby made stale (init call, rollback).
    kSwapDelayed,       // a swap is due but no standby is READY (cause says why).
    kBlockCommitted,    // height, duration.
    kBlockFailed,       // height, cause.
    kRolledBack,        // height: the new tip.
    kInitCall,          // cause: the export called; replay log size after it.
  };

  Kind kind;
  absl::Time time;
  uint64_t generation = 0;
  uint64_t previous_generation = 0;
  SwapReason reason = SwapReason::kManual;
  uint32_t height = 0;
  // How long no call could start during a swap; how long a warm or block took.
  absl::Duration pause;
  absl::Duration duration;
  absl::Duration retry_in;
  std::string cause;
};

absl::string_view PairEventKindName(PairEvent::Kind kind);

// Receives the pair's events. Called from the pair's threads (callers, the warmer), never with
// the pair's locks held, possibly concurrently: implementations must be thread-safe and quick.
class PairEventSink {
 public:
  virtual ~PairEventSink() = default;
  virtual void OnPairEvent(const PairEvent& event) = 0;
};

}  // namespace tandem::proxy
