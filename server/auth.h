// Bearer-token checks for the gRPC services. It only compares metadata; it never logs a token.
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/status.h"

namespace tandem::server {

// Returns OK when `expected` is empty (no token required) or `authorization` is exactly
// `Bearer <expected>`; otherwise UNAUTHENTICATED ("missing token" / "wrong token"). The comparison
// takes the same time wherever the tokens differ.
grpc::Status CheckBearerToken(absl::string_view authorization, absl::string_view expected);

// The same, reading the call's `authorization` metadata (absent counts as empty).
grpc::Status CheckBearerToken(const grpc::ServerContextBase& context, absl::string_view expected);

}  // namespace tandem::server
