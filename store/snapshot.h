// Snapshots: a consistent copy of a BlockStore's database (a RocksDB checkpoint) with a manifest
// that says what it holds and lets a restore check every byte. It never knows what a guest is.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "store/block_store.h"
#include "store/node_identity.h"

namespace tandem::store {

// The manifest's file name inside a snapshot folder.
inline constexpr char kSnapshotManifestName[] = "TANDEM-SNAPSHOT";
// What a manifest becomes once tandemd has opened the snapshot as its database: a record of where
// the database came from, no longer a promise about its files (they change from then on).
inline constexpr char kRestoredManifestName[] = "TANDEM-SNAPSHOT.restored";

struct SnapshotFile {
  std::string name;  // Relative to the snapshot folder.
  uint64_t size = 0;
  std::string sha256;  // 32 bytes.

  friend bool operator==(const SnapshotFile&, const SnapshotFile&) = default;
};

// What a snapshot holds, read from the snapshot itself (never from the live database, which
// moves on while the checkpoint is taken).
struct SnapshotManifest {
  uint32_t format_version = 0;  // The store's on-disk format (keys.h).
  std::optional<uint32_t> start_height;
  std::optional<BlockRecord> tip;
  std::optional<NodeIdentity> identity;
  std::vector<SnapshotFile> files;  // Every file of the checkpoint, by name.

  uint64_t TotalBytes() const;
  friend bool operator==(const SnapshotManifest&, const SnapshotManifest&) = default;
};

std::string EncodeSnapshotManifest(const SnapshotManifest& manifest);
// DATA_LOSS naming the line when `text` is not a well-formed manifest.
absl::StatusOr<SnapshotManifest> DecodeSnapshotManifest(std::string_view text);

// When a snapshot must give up. The RocksDB checkpoint itself cannot be interrupted (with hard
// links it takes milliseconds; copies take as long as the I/O); both are checked before it, after
// it, and between every 1 MiB read while the files are digested.
struct SnapshotLimits {
  absl::Time deadline = absl::InfiniteFuture();
  // Polled from the snapshotting thread; true abandons the snapshot. May be empty.
  std::function<bool()> cancelled;
};

// Takes a snapshot of `store` into `directory`, which must not exist (its parent must): a RocksDB
// checkpoint (hard links to the immutable table files where the file system allows, copies
// otherwise), then the manifest, written last and fsynced: a folder without one is not a
// snapshot. Safe while blocks are committed (never blocks a commit): the checkpoint holds whole
// blocks only, and the manifest describes the tip the checkpoint holds, read back from the copy.
// On any error the folder is removed again. Every error message names `directory`.
// Errors: ALREADY_EXISTS (the folder exists); FAILED_PRECONDITION (its parent does not exist);
// UNAVAILABLE (I/O: a read-only folder...); RESOURCE_EXHAUSTED (no space); DEADLINE_EXCEEDED /
// CANCELLED (`limits`); the store's errors.
absl::StatusOr<SnapshotManifest> CreateSnapshot(const BlockStore& store,
                                                const std::filesystem::path& directory,
                                                const SnapshotLimits& limits = {});

// The manifest of the snapshot in `directory`; std::nullopt when it holds none (a plain database
// or a snapshot already restored). DATA_LOSS when the manifest is unreadable or malformed.
absl::StatusOr<std::optional<SnapshotManifest>> ReadSnapshotManifest(
    const std::filesystem::path& directory);

// Checks, without writing a byte, that `directory` holds exactly what `manifest` promises: every
// file listed with its size and SHA-256, no other file, and a database whose start, tip (height,
// hash, state root) and identity are the manifest's. DATA_LOSS naming the first difference (a
// tampered or truncated snapshot must be refused, never half-used); UNAVAILABLE on I/O errors.
absl::Status VerifySnapshot(const std::filesystem::path& directory,
                            const SnapshotManifest& manifest);

// Marks the snapshot in `directory` as restored (renames its manifest to kRestoredManifestName),
// so that the folder is a plain database from then on. Done after VerifySnapshot and before the
// database is opened for writing: a crash in between leaves a verified, untouched database, never
// a manifest that no longer matches its files. UNAVAILABLE on I/O errors.
absl::Status MarkSnapshotRestored(const std::filesystem::path& directory);

}  // namespace tandem::store
