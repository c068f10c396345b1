// A read-only look into a database folder that writes nothing, not even RocksDB's LOG: what
// node_identity.cc and snapshot.cc read before deciding whether a database may be opened.
// Internal to store/.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rocksdb/db.h"

namespace tandem::store {

// Opens the `default` column family of the database at `path` read-only, so that the folder
// stays byte for byte as it was. std::nullptr when `path` holds no RocksDB database (no CURRENT
// file, or RocksDB cannot read it as one). DATA_LOSS when RocksDB finds it corrupt.
absl::StatusOr<std::unique_ptr<rocksdb::DB>> OpenForInspection(const std::filesystem::path& path);

// The value of `key` in the `default` family; std::nullopt when absent. UNAVAILABLE / DATA_LOSS.
absl::StatusOr<std::optional<std::string>> InspectKey(rocksdb::DB& db, absl::string_view key,
                                                      absl::string_view what);

}  // namespace tandem::store
