#include "server/convert.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

namespace tandem::server {
namespace {

constexpr size_t kHashBytes = 32;

void ToProto(const engine::MemoryReadout& memory, tandem::v1::MemoryReadout* out) {
  out->set_linear_memory_bytes(memory.linear_memory_bytes);
  out->set_heap_used_bytes(memory.heap_used_bytes);
  out->set_heap_total_bytes(memory.heap_total_bytes);
  out->set_heap_limit_bytes(memory.heap_limit_bytes);
  out->set_external_memory_bytes(memory.external_memory_bytes);
  out->set_malloced_memory_bytes(memory.malloced_memory_bytes);
}

void ToProto(const proxy::SlotStatus& slot, tandem::v1::SlotStatus* out) {
  out->set_present(slot.present);
  if (!slot.present) return;
  out->set_generation(slot.generation);
  out->set_memory_bytes(slot.memory_bytes);
  out->set_memory_ratio(slot.memory_ratio);
  out->set_calls_completed(slot.calls_completed);
  ToProto(slot.memory, out->mutable_memory());
}

void ToProto(absl::Time time, google::protobuf::Timestamp* out) {
  *out = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(time));
}

}  // namespace

absl::StatusOr<proxy::BlockSubmission> BlockSubmissionFromProto(
    const tandem::v1::SubmitBlockRequest& request) {
  if (!request.hash().empty() && request.hash().size() != kHashBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("hash must be empty or 32 bytes, got ", request.hash().size(), " bytes"));
  }
  if (!request.prev_hash().empty() && request.prev_hash().size() != kHashBytes) {
    return absl::InvalidArgumentError(absl::StrCat("prev_hash must be empty or 32 bytes, got ",
                                                   request.prev_hash().size(), " bytes"));
  }
  proxy::BlockSubmission block;
  block.height = request.height();
  block.bytes = request.block();
  block.hash = request.hash();
  if (!request.prev_hash().empty()) block.prev_hash = request.prev_hash();
  return block;
}

absl::Status CheckExportName(absl::string_view what, absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " must not be empty"));
  if (name.size() > kMaxExportNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is ", name.size(), " bytes long; at most ", kMaxExportNameBytes));
  }
  return absl::OkStatus();
}

void ToProto(const store::BlockRecord& record, tandem::v1::BlockRecord* out) {
  out->set_height(record.height);
  out->set_hash(record.hash);
  out->set_state_root(record.state_root);
  out->set_write_count(record.write_count);
}

void ToProto(const proxy::BlockOutcome& outcome, tandem::v1::SubmitBlockResponse* out) {
  ToProto(outcome.record, out->mutable_block());
  out->set_already_committed(outcome.already_committed);
  out->set_generation(outcome.generation);
  ToProto(outcome.duration, out->mutable_duration());
}

void ToProto(const proxy::PairStatus& status, tandem::v1::StatusResponse* out) {
  out->set_policy(ToProto(status.policy));
  out->set_warm_at(status.warm_at);
  out->set_swap_at(status.swap_at);
  out->set_memory_limit_bytes(status.memory_limit_bytes);
  if (status.tip.has_value()) out->set_tip_height(*status.tip);
  ToProto(status.active, out->mutable_active());
  ToProto(status.standby, out->mutable_standby());
  out->set_standby_state(ToProto(status.standby_state));
  out->set_standby_failure(status.standby_failure);
  out->set_consecutive_warm_failures(status.consecutive_warm_failures);
  out->set_swap_due(status.swap_due);
  out->set_replay_log_calls(status.replay_log_calls);
  out->set_replay_log_bytes(status.replay_log_bytes);
  out->set_historical_instances(status.historical_instances);
}

void ToProto(const proxy::SwapOutcome& outcome, tandem::v1::SwapResponse* out) {
  out->set_previous_generation(outcome.previous_generation);
  out->set_generation(outcome.generation);
  ToProto(outcome.waited, out->mutable_waited());
  ToProto(outcome.pause, out->mutable_pause());
}

void ToProto(const proxy::PairEvent& event, uint64_t dropped_before, tandem::v1::PairEvent* out) {
  using Kind = proxy::PairEvent::Kind;
  out->set_kind(ToProto(event.kind));
  ToProto(event.time, out->mutable_time());
  out->set_generation(event.generation);
  out->set_previous_generation(event.previous_generation);
  if (event.kind == Kind::kSwap) out->set_reason(ToProto(event.reason));
  out->set_height(event.height);
  if (event.pause != absl::ZeroDuration()) ToProto(event.pause, out->mutable_pause());
  if (event.duration != absl::ZeroDuration()) ToProto(event.duration, out->mutable_duration());
  if (event.retry_in != absl::ZeroDuration()) ToProto(event.retry_in, out->mutable_retry_in());
  out->set_cause(event.cause);
  out->set_dropped_before(dropped_before);
  out->set_replay_log_calls_dropped(event.replay_log_calls_dropped);
  out->set_replay_log_calls(event.replay_log_calls);
}

tandem::v1::SwapPolicy ToProto(proxy::SwapPolicy policy) {
  switch (policy) {
    case proxy::SwapPolicy::kBlock:
      return tandem::v1::SWAP_POLICY_BLOCK;
    case proxy::SwapPolicy::kThreshold:
      return tandem::v1::SWAP_POLICY_THRESHOLD;
    case proxy::SwapPolicy::kNone:
      return tandem::v1::SWAP_POLICY_NONE;
    case proxy::SwapPolicy::kSync:
      return tandem::v1::SWAP_POLICY_SYNC;
  }
  return tandem::v1::SWAP_POLICY_UNSPECIFIED;
}

tandem::v1::StandbyState ToProto(proxy::StandbyState state) {
  switch (state) {
    case proxy::StandbyState::kEmpty:
      return tandem::v1::STANDBY_STATE_EMPTY;
    case proxy::StandbyState::kWarming:
      return tandem::v1::STANDBY_STATE_WARMING;
    case proxy::StandbyState::kReady:
      return tandem::v1::STANDBY_STATE_READY;
    case proxy::StandbyState::kFailed:
      return tandem::v1::STANDBY_STATE_FAILED;
  }
  return tandem::v1::STANDBY_STATE_UNSPECIFIED;
}

tandem::v1::SwapReason ToProto(proxy::SwapReason reason) {
  switch (reason) {
    case proxy::SwapReason::kBlock:
      return tandem::v1::SWAP_REASON_BLOCK;
    case proxy::SwapReason::kThreshold:
      return tandem::v1::SWAP_REASON_THRESHOLD;
    case proxy::SwapReason::kManual:
      return tandem::v1::SWAP_REASON_MANUAL;
    case proxy::SwapReason::kFailure:
      return tandem::v1::SWAP_REASON_FAILURE;
    case proxy::SwapReason::kStartup:
      return tandem::v1::SWAP_REASON_STARTUP;
    case proxy::SwapReason::kRollback:
      return tandem::v1::SWAP_REASON_ROLLBACK;
    case proxy::SwapReason::kSync:
      return tandem::v1::SWAP_REASON_SYNC;
    case proxy::SwapReason::kReplayLogReset:
      return tandem::v1::SWAP_REASON_REPLAY_LOG_RESET;
  }
  return tandem::v1::SWAP_REASON_UNSPECIFIED;
}

tandem::v1::PairEvent::Kind ToProto(proxy::PairEvent::Kind kind) {
  using Kind = proxy::PairEvent::Kind;
  using V1 = tandem::v1::PairEvent;
  switch (kind) {
    case Kind::kWarmStarted:
      return V1::KIND_WARM_STARTED;
    case Kind::kWarmReady:
      return V1::KIND_WARM_READY;
    case Kind::kWarmFailed:
      return V1::KIND_WARM_FAILED;
    case Kind::kSwap:
      return V1::KIND_SWAP;
    case Kind::kInstanceFailed:
      return V1::KIND_INSTANCE_FAILED;
    case Kind::kStandbyDiscarded:
      return V1::KIND_STANDBY_DISCARDED;
    case Kind::kSwapDelayed:
      return V1::KIND_SWAP_DELAYED;
    case Kind::kBlockCommitted:
      return V1::KIND_BLOCK_COMMITTED;
    case Kind::kBlockFailed:
      return V1::KIND_BLOCK_FAILED;
    case Kind::kRolledBack:
      return V1::KIND_ROLLED_BACK;
    case Kind::kInitCall:
      return V1::KIND_INIT_CALL;
    case Kind::kReplayLogReset:
      return V1::KIND_REPLAY_LOG_RESET;
    case Kind::kSnapshotTaken:
      return V1::KIND_SNAPSHOT_TAKEN;
    case Kind::kSnapshotFailed:
      return V1::KIND_SNAPSHOT_FAILED;
  }
  return V1::KIND_UNSPECIFIED;
}

void ToProto(absl::Duration duration, google::protobuf::Duration* out) {
  *out =
      google::protobuf::util::TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(duration));
}

absl::StatusOr<absl::Duration> FromProto(const google::protobuf::Duration& duration) {
  if (duration.nanos() <= -1000000000 || duration.nanos() >= 1000000000 ||
      (duration.seconds() > 0 && duration.nanos() < 0) ||
      (duration.seconds() < 0 && duration.nanos() > 0)) {
    return absl::InvalidArgumentError("malformed duration");
  }
  return absl::Seconds(duration.seconds()) + absl::Nanoseconds(duration.nanos());
}

}  // namespace tandem::server
