// Events of the instance pair (warm-ups, swaps, failures), for the gRPC and metrics layers.
// Plain data and one observer interface: nothing here knows who listens.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "util/failure_cause.h"

namespace tandem::proxy {

enum class SwapPolicy { kBlock, kThreshold, kNone, kSync };

// "block", "threshold", "none", "sync".
absl::string_view SwapPolicyName(SwapPolicy policy);
// Parses a policy name; false when `name` is none of them.
bool ParseSwapPolicy(absl::string_view name, SwapPolicy* policy);

enum class StandbyState { kEmpty = 0, kWarming = 1, kReady = 2, kFailed = 3 };
absl::string_view StandbyStateName(StandbyState state);

// The kind of call that failed an instance.
enum class CallKind { kNone, kBlock, kView, kInit, kWarm };
// "none", "block", "view", "init", "warm".
absl::string_view CallKindName(CallKind kind);

// Why the active instance changed.
enum class SwapReason {
  kBlock,
  kThreshold,
  kManual,
  kFailure,
  kStartup,
  kRollback,
  kSync,
  kReplayLogReset,  // The operator cut the replay log: no instance that replayed more serves.
};
// "block", "threshold", "manual", "failure", "startup", "rollback", "sync", "replay_log_reset".
absl::string_view SwapReasonName(SwapReason reason);

struct PairEvent {
  enum class Kind {
    kWarmStarted,       // generation: the instance being warmed.
    kWarmReady,         // generation, duration: how long the warm took.
    kWarmFailed,        // generation, cause; the warm is retried after `retry_in`.
    kSwap,              // generation: the new active; previous_generation; reason; pause.
    kInstanceFailed,    // generation, call, failure: a call failed the instance; it is replaced.
                        // Once per instance, however many calls notice the failure.
    kStandbyDiscarded,  // generation, cause: a standby made stale (init call, rollback).
    kSwapDelayed,       // a swap is due but no standby is READY (cause says why).
    kBlockCommitted,    // height, duration.
    kBlockFailed,       // height, code, failure, cause.
    kRolledBack,        // height: the new tip.
    kInitCall,          // cause: the export called; replay log size after it.
    kReplayLogReset,    // replay_log_calls_dropped, replay_log_calls (kept); cause says both.
    // Published by the server's snapshotter (server/snapshotter.h), not by the pair: they share
    // the pair's event stream so that the log, Admin.WatchEvents and the metrics see them.
    kSnapshotTaken,   // height: the snapshot's tip (0: none); duration; cause: where, how big.
    kSnapshotFailed,  // code, failure, cause (where and why); duration.
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
  // What failed, typed: the status code the caller saw, the cause, and the kind of call.
  absl::StatusCode code = absl::StatusCode::kOk;
  util::FailureCause failure = util::FailureCause::kUnknown;
  CallKind call = CallKind::kNone;
  // For people: the failure's message, or what the event is about.
  std::string cause;
  // kReplayLogReset: the calls dropped from the replay log, and the calls it keeps.
  uint64_t replay_log_calls_dropped = 0;
  uint64_t replay_log_calls = 0;
};

// Fills `event`'s code, failure and cause from `status`.
void DescribeFailure(const absl::Status& status, PairEvent& event);

absl::string_view PairEventKindName(PairEvent::Kind kind);

// Receives the pair's events. Called from the pair's threads (callers, the warmer), never with
// the pair's locks held, possibly concurrently: implementations must be thread-safe and quick.
class PairEventSink {
 public:
  virtual ~PairEventSink() = default;
  virtual void OnPairEvent(const PairEvent& event) = 0;
};

}  // namespace tandem::proxy
