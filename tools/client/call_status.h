// How the tools report a gRPC call's outcome: the status code by its canonical name and the
// server's message, as text for people and as JSON for scripts.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"
#include "tools/client/json.h"

namespace tandem::client {

// The canonical name of a status code, e.g. "DEADLINE_EXCEEDED" (absl::StatusCodeToString; gRPC
// and abseil number the codes alike).
std::string StatusCodeName(grpc::StatusCode code);

// The same status as an absl::Status, so the tools decide on codes the way the rest of tandem does.
absl::Status ToAbslStatus(const grpc::Status& status);

// "CODE: message", or "CODE" when the message is empty.
std::string DescribeStatus(const grpc::Status& status);

// {"call": call, "code": "CODE", "message": message}: what --json prints for a failed call.
Json FailedCallJson(absl::string_view call, const grpc::Status& status);

}  // namespace tandem::client
