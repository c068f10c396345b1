// The one place where the pair's absl::Status becomes a grpc::Status. It must never change a code
// or drop a message: the error contract (docs/design.md) is in absl codes, kept 1:1 on the wire.
#pragma once

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace tandem::server {

// Returns the gRPC status with the same code and message (OK for OK). absl and gRPC share the
// canonical code numbering; a code outside it becomes UNKNOWN.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace tandem::server
