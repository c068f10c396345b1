// A read-only look into a database folder that writes nothing, not even RocksDB's LOG.
#include "store/inspection.h"

#include <cstdarg>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "rocksdb/env.h"
#include "rocksdb/options.h"
#include "store/rocksdb_status.h"

namespace tandem::store {
namespace {

// A refused database must stay as it was: no LOG file rotated, nothing written.
class SilentLogger : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char* /*format*/, va_list /*ap*/) override {}
};

}  // namespace

absl::StatusOr<std::unique_ptr<rocksdb::DB>> OpenForInspection(const std::filesystem::path& path) {
  std::error_code error;
  if (!std::filesystem::exists(path / "CURRENT", error)) return nullptr;
  rocksdb::Options options;
  options.create_if_missing = false;
  options.info_log = std::make_shared<SilentLogger>();
  // Only `default` holds what is inspected; a read-only open may leave the other families out.
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status s = rocksdb::DB::OpenForReadOnly(options, path.string(), &raw);
  if (s.IsCorruption()) {
    return absl::DataLossError(
        absl::StrCat("database at ", path.string(), " is corrupt: ", s.ToString()));
  }
  // Not a database BlockStore could open either: its Open says why, in its own words.
  if (!s.ok()) return nullptr;
  return std::unique_ptr<rocksdb::DB>(raw);
}

absl::StatusOr<std::optional<std::string>> InspectKey(rocksdb::DB& db, absl::string_view key,
                                                      absl::string_view what) {
  std::string value;
  const rocksdb::Status s =
      db.Get(rocksdb::ReadOptions(), rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return FromRocksDbStatus(s, absl::StrCat("reading the ", what));
  return value;
}

}  // namespace tandem::store
