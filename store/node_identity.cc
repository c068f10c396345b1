// What a database's state depends on besides its blocks, and the rule that binds a database to
// them. It must never know what a module is: digests only.
#include "store/node_identity.h"

#include <cstdarg>
#include <memory>
#include <system_error>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/options.h"
#include "store/keys.h"
#include "store/rocksdb_status.h"
#include "store/state_root.h"
#include "util/failure_cause.h"

namespace tandem::store {
namespace {

namespace fs = std::filesystem;

constexpr size_t kEncodedSize = kHashSize + 8;

// A refused database must stay as it was: no LOG file rotated, nothing written.
class SilentLogger : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char* /*format*/, va_list /*ap*/) override {}
};

std::string Hex(std::string_view bytes) {
  return absl::BytesToHexString(absl::string_view(bytes.data(), bytes.size()));
}

absl::StatusOr<std::optional<std::string>> ReadMeta(rocksdb::DB& db, const char* key,
                                                    absl::string_view what) {
  std::string value;
  const rocksdb::Status s = db.Get(rocksdb::ReadOptions(), key, &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return FromRocksDbStatus(s, absl::StrCat("reading the ", what));
  return value;
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
  std::error_code error;
  if (!fs::exists(path / "CURRENT", error)) return StoredIdentity{};
  rocksdb::Options options;
  options.create_if_missing = false;
  options.info_log = std::make_shared<SilentLogger>();
  // Only `default` holds what is read here; a read-only open may leave the other families out.
  rocksdb::DB* raw = nullptr;
  if (const rocksdb::Status s = rocksdb::DB::OpenForReadOnly(options, path.string(), &raw);
      !s.ok()) {
    // Not a database BlockStore could open either: let its Open say why, with its own words.
    if (s.IsCorruption()) {
      return absl::DataLossError(
          absl::StrCat("database at ", path.string(), " is corrupt: ", s.ToString()));
    }
    return StoredIdentity{};
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  StoredIdentity stored;
  absl::StatusOr<std::optional<std::string>> record =
      ReadMeta(*db, keys::kNodeIdentityKey, "node identity");
  if (!record.ok()) return record.status();
  if (record->has_value()) {
    absl::StatusOr<NodeIdentity> identity = DecodeNodeIdentity(**record);
    if (!identity.ok()) return identity.status();
    stored.bound = *std::move(identity);
  }
  absl::StatusOr<std::optional<std::string>> start = ReadMeta(*db, keys::kStartKey, "start height");
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
