// What a database's state depends on besides its blocks, and the rule that binds a database to
// them. It must never know what a module is: digests only.
#include "store/node_identity.h"

#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "store/inspection.h"
#include "store/keys.h"
#include "store/state_root.h"
#include "util/failure_cause.h"

namespace tandem::store {
namespace {

namespace fs = std::filesystem;

constexpr size_t kEncodedSize = kHashSize + 8;

std::string Hex(std::string_view bytes) {
  return absl::BytesToHexString(absl::string_view(bytes.data(), bytes.size()));
}

}  // namespace

std::string EncodeNodeIdentity(const NodeIdentity& identity) {
  std::string out = identity.module_sha256;
  keys::AppendU64(&out, identity.memory_limit_bytes);
  return out;
}

absl::StatusOr<NodeIdentity> DecodeNodeIdentity(std::string_view in) {
  if (in.size() != kEncodedSize) {
    return absl::DataLossError(absl::StrCat("malformed node identity record: ", in.size(),
                                            " bytes, expected ", kEncodedSize));
  }
  return NodeIdentity{std::string(in.substr(0, kHashSize)), keys::ReadU64(in.substr(kHashSize))};
}

absl::StatusOr<StoredIdentity> ReadStoredIdentity(const fs::path& path) {
  absl::StatusOr<std::unique_ptr<rocksdb::DB>> db = OpenForInspection(path);
  if (!db.ok()) return db.status();
  if (*db == nullptr) return StoredIdentity{};
  StoredIdentity stored;
  absl::StatusOr<std::optional<std::string>> record =
      InspectKey(**db, keys::kNodeIdentityKey, "node identity");
  if (!record.ok()) return record.status();
  if (record->has_value()) {
    absl::StatusOr<NodeIdentity> identity = DecodeNodeIdentity(**record);
    if (!identity.ok()) return identity.status();
    stored.bound = *std::move(identity);
  }
  absl::StatusOr<std::optional<std::string>> start =
      InspectKey(**db, keys::kStartKey, "start height");
  if (!start.ok()) return start.status();
  if (start->has_value()) {
    absl::StatusOr<uint32_t> height = keys::DecodeU32(**start, "start height");
    if (!height.ok()) return height.status();
    stored.start_height = *height;
  }
  return stored;
}

absl::StatusOr<IdentityVerdict> CheckNodeIdentity(const StoredIdentity& stored,
                                                  const NodeIdentity& wanted) {
  // No block has been computed yet: whatever was recorded before binds nothing.
  if (!stored.start_height.has_value()) {
    return stored.bound == wanted ? IdentityVerdict::kMatches : IdentityVerdict::kBind;
  }
  if (!stored.bound.has_value()) return IdentityVerdict::kAdopt;
  const NodeIdentity& bound = *stored.bound;
  if (bound == wanted) return IdentityVerdict::kMatches;
  std::string differences;
  if (bound.module_sha256 != wanted.module_sha256) {
    absl::StrAppend(&differences, "module SHA-256 ", Hex(bound.module_sha256), " (given ",
                    Hex(wanted.module_sha256), ")");
  }
  if (bound.memory_limit_bytes != wanted.memory_limit_bytes) {
    absl::StrAppend(&differences, differences.empty() ? "" : " and ", "memory cap ",
                    bound.memory_limit_bytes, " bytes (given ", wanted.memory_limit_bytes,
                    " bytes)");
  }
  return util::CausedError(
      absl::StatusCode::kFailedPrecondition, util::FailureCause::kIdentityMismatch,
      absl::StrCat("the database's blocks from height ", *stored.start_height,
                   " on were computed with ", differences,
                   ": blocks run with anything else would give other state roots"));
}

}  // namespace tandem::store
