// Conversions between the wire messages (tandem.v1) and the pair's and store's structs, with the
// request checks the server makes before calling the pair. Pure functions: no I/O, no pair calls.
#pragma once

#include "absl/status/statusor.h"
#include "proxy/events.h"
#include "proxy/instance_pair.h"
#include "store/block_store.h"
#include "tandem/v1/tandem.pb.h"

namespace tandem::server {

// Checks and converts a block: INVALID_ARGUMENT when `hash` or `prev_hash` is neither empty nor
// 32 bytes. An empty prev_hash means "not checked".
absl::StatusOr<proxy::BlockSubmission> BlockSubmissionFromProto(
    const tandem::v1::SubmitBlockRequest& request);

// The longest export name a View or Initialize call may give. The name is checked first: errors
// quote it, and a status message travels in gRPC's trailing metadata (8 KiB by default), so an
// unchecked 8 KiB name came back as a misleading RESOURCE_EXHAUSTED about metadata.
inline constexpr size_t kMaxExportNameBytes = 1024;

// OK, or INVALID_ARGUMENT when `name` (the export a call names; `what` says which: "view name",
// "init call name") is empty or longer than kMaxExportNameBytes.
absl::Status CheckExportName(absl::string_view what, absl::string_view name);

void ToProto(const store::BlockRecord& record, tandem::v1::BlockRecord* out);
void ToProto(const proxy::BlockOutcome& outcome, tandem::v1::SubmitBlockResponse* out);
void ToProto(const proxy::PairStatus& status, tandem::v1::StatusResponse* out);
void ToProto(const proxy::SwapOutcome& outcome, tandem::v1::SwapResponse* out);
void ToProto(const proxy::PairEvent& event, uint64_t dropped_before, tandem::v1::PairEvent* out);

tandem::v1::SwapPolicy ToProto(proxy::SwapPolicy policy);
tandem::v1::StandbyState ToProto(proxy::StandbyState state);
tandem::v1::SwapReason ToProto(proxy::SwapReason reason);
tandem::v1::PairEvent::Kind ToProto(proxy::PairEvent::Kind kind);

void ToProto(absl::Duration duration, google::protobuf::Duration* out);
// INVALID_ARGUMENT when `duration` is not a valid google.protobuf.Duration (negative fields...).
absl::StatusOr<absl::Duration> FromProto(const google::protobuf::Duration& duration);

}  // namespace tandem::server
