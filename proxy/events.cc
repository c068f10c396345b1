// Names of the pair's enums, as they appear in logs, events, metrics labels and the gRPC facade.
// Pure functions: no state.
#include "proxy/events.h"

namespace tandem::proxy {

absl::string_view SwapPolicyName(SwapPolicy policy) {
  switch (policy) {
    case SwapPolicy::kBlock:
      return "block";
    case SwapPolicy::kThreshold:
      return "threshold";
    case SwapPolicy::kNone:
      return "none";
    case SwapPolicy::kSync:
      return "sync";
  }
  return "unknown";
}

bool ParseSwapPolicy(absl::string_view name, SwapPolicy* policy) {
  for (SwapPolicy candidate :
       {SwapPolicy::kBlock, SwapPolicy::kThreshold, SwapPolicy::kNone, SwapPolicy::kSync}) {
    if (SwapPolicyName(candidate) == name) {
      *policy = candidate;
      return true;
    }
  }
  return false;
}

absl::string_view StandbyStateName(StandbyState state) {
  switch (state) {
    case StandbyState::kEmpty:
      return "EMPTY";
    case StandbyState::kWarming:
      return "WARMING";
    case StandbyState::kReady:
      return "READY";
    case StandbyState::kFailed:
      return "FAILED";
  }
  return "UNKNOWN";
}

absl::string_view SwapReasonName(SwapReason reason) {
  switch (reason) {
    case SwapReason::kBlock:
      return "block";
    case SwapReason::kThreshold:
      return "threshold";
    case SwapReason::kManual:
      return "manual";
    case SwapReason::kFailure:
      return "failure";
    case SwapReason::kStartup:
      return "startup";
    case SwapReason::kRollback:
      return "rollback";
    case SwapReason::kReplayLogReset:
      return "replay_log_reset";
    case SwapReason::kSync:
      return "sync";
  }
  return "unknown";
}

absl::string_view PairEventKindName(PairEvent::Kind kind) {
  switch (kind) {
    case PairEvent::Kind::kWarmStarted:
      return "warm_started";
    case PairEvent::Kind::kWarmReady:
      return "warm_ready";
    case PairEvent::Kind::kWarmFailed:
      return "warm_failed";
    case PairEvent::Kind::kSwap:
      return "swap";
    case PairEvent::Kind::kInstanceFailed:
      return "instance_failed";
    case PairEvent::Kind::kStandbyDiscarded:
      return "standby_discarded";
    case PairEvent::Kind::kSwapDelayed:
      return "swap_delayed";
    case PairEvent::Kind::kBlockCommitted:
      return "block_committed";
    case PairEvent::Kind::kBlockFailed:
      return "block_failed";
    case PairEvent::Kind::kRolledBack:
      return "rolled_back";
    case PairEvent::Kind::kInitCall:
      return "init_call";
    case PairEvent::Kind::kReplayLogReset:
      return "replay_log_reset";
    case PairEvent::Kind::kSnapshotTaken:
      return "snapshot_taken";
    case PairEvent::Kind::kSnapshotFailed:
      return "snapshot_failed";
  }
  return "unknown";
}

absl::string_view CallKindName(CallKind kind) {
  switch (kind) {
    case CallKind::kNone:
      return "none";
    case CallKind::kBlock:
      return "block";
    case CallKind::kView:
      return "view";
    case CallKind::kInit:
      return "init";
    case CallKind::kWarm:
      return "warm";
  }
  return "none";
}

void DescribeFailure(const absl::Status& status, PairEvent& event) {
  event.code = status.code();
  event.failure = util::CauseOf(status);
  event.cause = status.ToString(absl::StatusToStringMode::kWithNoExtraData);
}

}  // namespace tandem::proxy
