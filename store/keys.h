// The store's on-disk layout: how keys and records are laid out in RocksDB's one keyspace.
// Internal to store/: nothing outside it may depend on these bytes except through BlockStore.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem::store::keys {

// Bump when any encoding below changes; BlockStore refuses a database of another version.
inline constexpr uint32_t kFormatVersion = 1;

// Every key starts with one tag byte, so the kinds never interleave:
//   'm' ‖ name                        metadata: format version, tip height, start height
//   'b' ‖ u32 BE h                    block record of height h (BlockMeta)
//   't' ‖ u32 BE h                    keys height h touched (for rollback)
//   'v' ‖ u32 BE len(k) ‖ k ‖ u32 BE ~h   value of user key k written at height h
//   'r' ‖ u64 BE seq                  replay-log entry number seq
// The user key is length-prefixed so that one key being a prefix of another can never make their
// versions interleave; the height is stored inverted so that a Seek to (k, ~h) lands on the
// newest version at or below h.
inline constexpr char kFormatVersionKey[] = "mformat_version";
inline constexpr char kTipKey[] = "mtip";
inline constexpr char kStartKey[] = "mstart";
inline constexpr char kBlockTag = 'b';
inline constexpr char kTouchedTag = 't';
inline constexpr char kVersionTag = 'v';
inline constexpr char kReplayTag = 'r';

void AppendU32(std::string* out, uint32_t value);
void AppendU64(std::string* out, uint64_t value);
// Reads a big-endian integer at the start of `in`. REQUIRES: in.size() >= 4 (8).
uint32_t ReadU32(std::string_view in);
uint64_t ReadU64(std::string_view in);

std::string EncodeU32(uint32_t value);
// DATA_LOSS naming `what` when `in` is not exactly 4 bytes.
absl::StatusOr<uint32_t> DecodeU32(std::string_view in, absl::string_view what);

std::string BlockKey(uint32_t height);
std::string TouchedKey(uint32_t height);
// 'v' ‖ u32 BE len(k) ‖ k: every version of k, and nothing else, starts with this.
std::string VersionPrefix(std::string_view user_key);
std::string VersionKey(std::string_view user_key, uint32_t height);
std::string ReplayKey(uint64_t seq);

// The per-height block record: hash ‖ state root ‖ u32 BE number of writes.
struct BlockMeta {
  std::string hash;
  std::string state_root;
  uint32_t write_count = 0;
};
std::string EncodeBlockMeta(const BlockMeta& meta);
// DATA_LOSS when `in` is not a well-formed record.
absl::StatusOr<BlockMeta> DecodeBlockMeta(std::string_view in);

// The touched-key list of a height: (u32 BE len(k) ‖ k)*.
void AppendTouchedKey(std::string* out, std::string_view user_key);
// DATA_LOSS when `in` is truncated.
absl::StatusOr<std::vector<std::string>> DecodeTouchedKeys(std::string_view in);

// A replay-log entry: u32 BE len(name) ‖ name ‖ u32 BE len(payload) ‖ payload ‖ digest.
std::string EncodeReplayEntry(std::string_view export_name, std::string_view payload,
                              std::string_view result_digest);
struct ReplayEntryView {
  std::string_view export_name;
  std::string_view payload;
  std::string_view result_digest;
};
// DATA_LOSS when `in` is malformed. The views point into `in`.
absl::StatusOr<ReplayEntryView> DecodeReplayEntry(std::string_view in);

}  // namespace tandem::store::keys
