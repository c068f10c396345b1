#include "server/auth.h"

#include <openssl/crypto.h>

#include "absl/strings/match.h"

namespace tandem::server {
namespace {

constexpr absl::string_view kBearer = "Bearer ";

// Compares without stopping at the first difference (OpenSSL's CRYPTO_memcmp), so the time taken
// does not tell how much of a guessed token was right. The length is not secret.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

grpc::Status CheckBearerToken(absl::string_view authorization, absl::string_view expected) {
  if (expected.empty()) return grpc::Status::OK;
  if (authorization.empty()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing token: send metadata `authorization: Bearer <token>`");
  }
  if (!absl::StartsWith(authorization, kBearer) ||
      !ConstantTimeEquals(authorization.substr(kBearer.size()), expected)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "wrong token");
  }
  return grpc::Status::OK;
}

grpc::Status CheckBearerToken(const grpc::ServerContextBase& context, absl::string_view expected) {
  if (expected.empty()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  auto found = metadata.find("authorization");
  absl::string_view authorization;
  if (found != metadata.end()) {
    authorization = absl::string_view(found->second.data(), found->second.size());
  }
  return CheckBearerToken(authorization, expected);
}

}  // namespace tandem::server
