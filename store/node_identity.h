// What a database's state depends on besides its blocks (the guest module and its memory cap),
// and the rule that binds a database to them. It must never know what a module is: digests only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tandem::store {

// The inputs that, with the blocks, decide every state root: the module's bytes (by digest) and
// the memory cap (it decides where `memory.grow` fails). Two nodes with equal identities and
// equal blocks compute equal roots; a node restarted with another identity would silently not.
struct NodeIdentity {
  std::string module_sha256;  // 32 bytes: SHA-256 of the module file as given.
  uint64_t memory_limit_bytes = 0;

  friend bool operator==(const NodeIdentity&, const NodeIdentity&) = default;
};

// The record's bytes: module_sha256 ‖ u64 BE memory_limit_bytes. REQUIRES: a 32-byte digest.
std::string EncodeNodeIdentity(const NodeIdentity& identity);
// DATA_LOSS when `in` is not 40 bytes.
absl::StatusOr<NodeIdentity> DecodeNodeIdentity(std::string_view in);

// What an existing database says about itself.
struct StoredIdentity {
  // What its blocks were computed with; std::nullopt when never recorded (a new database, or one
  // written before tandem recorded identities).
  std::optional<NodeIdentity> bound;
  // Its first indexed height; std::nullopt while it holds no block.
  std::optional<uint32_t> start_height;
};

// Reads the identity record and the start height of the database at `path` through a read-only
// open that writes nothing (not even RocksDB's LOG), so a refused database stays byte for byte
// as it was. Returns an empty StoredIdentity when `path` does not exist or is not a RocksDB
// database (BlockStore::Open then creates it, or refuses it with its own message).
// Errors: DATA_LOSS (corrupt database or record), UNAVAILABLE (I/O).
absl::StatusOr<StoredIdentity> ReadStoredIdentity(const std::filesystem::path& path);

// What opening a database with an identity must do.
enum class IdentityVerdict {
  kMatches,  // Bound to exactly this identity: nothing to write.
  kBind,     // No block yet: record this identity (it takes hold with the first block; until
             // then a restart with other flags simply records those instead).
  kAdopt,    // Blocks, but no record (a database from before identities were recorded): record
             // this identity, trusting the operator that it is the one the blocks were made with.
};

// Decides whether a database holding `stored` may be used with `wanted`.
// FAILED_PRECONDITION, carrying util::FailureCause::kIdentityMismatch, when the database has
// blocks and is bound to another module digest or cap; the message names both values of each
// that differs (hex digests, caps in bytes) and the start height since which the binding holds.
absl::StatusOr<IdentityVerdict> CheckNodeIdentity(const StoredIdentity& stored,
                                                  const NodeIdentity& wanted);

}  // namespace tandem::store
