#include "server/auth.h"

#include <openssl/crypto.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

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

namespace {

absl::string_view Authorization(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  auto found = metadata.find("authorization");
  if (found == metadata.end()) return "";
  return absl::string_view(found->second.data(), found->second.size());
}

}  // namespace

grpc::Status CheckBearerToken(const grpc::ServerContextBase& context, absl::string_view expected) {
  if (expected.empty()) return grpc::Status::OK;
  return CheckBearerToken(Authorization(context), expected);
}

grpc::Status CheckReader(absl::string_view authorization, const IndexerAccess& access) {
  if (access.read_token.empty()) return grpc::Status::OK;
  if (!access.ingest_token.empty() && CheckBearerToken(authorization, access.ingest_token).ok()) {
    return grpc::Status::OK;
  }
  return CheckBearerToken(authorization, access.read_token);
}

grpc::Status CheckWriter(absl::string_view authorization, const IndexerAccess& access) {
  if (!access.ingest_token.empty()) {
    if (CheckBearerToken(authorization, access.ingest_token).ok()) return grpc::Status::OK;
    if (!access.read_token.empty() && CheckBearerToken(authorization, access.read_token).ok()) {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          "this token may read, not write: SubmitBlock, StreamBlocks and Rollback "
                          "need the ingest token (tandemd --ingest_token)");
    }
    return grpc::Status(
        grpc::StatusCode::UNAUTHENTICATED,
        absl::StrCat(authorization.empty() ? "missing token" : "wrong token",
                     ": SubmitBlock, StreamBlocks and Rollback need `authorization: Bearer "
                     "<ingest token>` (tandemd --ingest_token)"));
  }
  if (!access.local_listener) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "writes are refused on a listener other hosts can reach unless tandemd "
                        "runs with --ingest_token: SubmitBlock, StreamBlocks and Rollback need "
                        "the writers' own credential");
  }
  return CheckReader(authorization, access);
}

grpc::Status CheckReader(const grpc::ServerContextBase& context, const IndexerAccess& access) {
  return CheckReader(Authorization(context), access);
}

grpc::Status CheckWriter(const grpc::ServerContextBase& context, const IndexerAccess& access) {
  return CheckWriter(Authorization(context), access);
}

bool IsLoopbackAddress(absl::string_view address) {
  if (absl::StartsWith(address, "unix:")) return true;
  const size_t colon = address.rfind(':');
  absl::string_view host = colon == absl::string_view::npos ? address : address.substr(0, colon);
  if (host == "localhost" || host == "[::1]") return true;
  std::vector<absl::string_view> octets = absl::StrSplit(host, '.');
  if (octets.size() != 4) return false;
  for (absl::string_view octet : octets) {
    int value = 0;
    if (!absl::SimpleAtoi(octet, &value) || value < 0 || value > 255) return false;
  }
  return octets[0] == "127";
}

}  // namespace tandem::server
