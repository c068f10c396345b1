// The store's on-disk layout: how keys and records are laid out in RocksDB's one keyspace.
// Internal to store/: nothing outside it may depend on these bytes except through BlockStore.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rocksdb/slice_transform.h"

namespace tandem::store::keys {

// Bump when any encoding below changes; BlockStore migrates kFormatVersionV1 databases and
// refuses every other version.
inline constexpr uint32_t kFormatVersion = 2;
inline constexpr uint32_t kFormatVersionV1 = 1;

// Three column families (the layout, and why, is explained in block_store.cc):
//
// `default`: chain records; every key starts with a tag byte, so the kinds never interleave:
//   'm' ‖ name                        metadata: format version, tip height, start height,
//                                     node identity (node_identity.h)
//   'b' ‖ u32 BE h                    block record of height h (BlockMeta)
//   't' ‖ u32 BE h                    keys height h touched (for rollback)
//   'r' ‖ u64 BE seq                  replay-log entry number seq
// `latest`: the state at the tip, one entry per user key ever written:
//   k                                 u32 BE h ‖ v: the key's last write, at height h; an empty
//                                     v means it was deleted there
// `history`: every version:
//   u32 BE len(k) ‖ k ‖ u32 BE ~h     value of user key k written at height h (empty: a delete)
// The user key is length-prefixed so that one key being a prefix of another can never make their
// versions interleave; the height is stored inverted so that a Seek to (k, ~h) lands on the
// newest version at or below h. Everything but the last 4 bytes is the history's prefix: all
// versions of one key share it (HistoryUserKeyPart).
//
// Format version 1 had no `latest` and kept the history in `default`, as 'v' ‖ (the history key).
inline constexpr char kLatestFamily[] = "latest";
inline constexpr char kHistoryFamily[] = "history";
inline constexpr char kFormatVersionKey[] = "mformat_version";
inline constexpr char kTipKey[] = "mtip";
inline constexpr char kStartKey[] = "mstart";
// The module digest and memory cap the blocks were computed with (EncodeNodeIdentity). Absent in
// databases written before tandem recorded it; no format change: older builds ignore it.
inline constexpr char kNodeIdentityKey[] = "mnode_identity";
inline constexpr char kBlockTag = 'b';
inline constexpr char kTouchedTag = 't';
inline constexpr char kReplayTag = 'r';
inline constexpr char kV1VersionTag = 'v';

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
// u32 BE len(k) ‖ k: every history entry of k, and nothing else, starts with this.
void AppendHistoryPrefix(std::string* out, std::string_view user_key);
std::string HistoryKey(std::string_view user_key, uint32_t height);
// Splits a history key into its user key and height. DATA_LOSS when malformed.
struct HistoryKeyParts {
  std::string_view user_key;
  uint32_t height = 0;
};
absl::StatusOr<HistoryKeyParts> DecodeHistoryKey(std::string_view key);

// A `latest` value: u32 BE height ‖ value.
void AppendLatestValue(std::string* out, uint32_t height, std::string_view value);
struct LatestValue {
  uint32_t height = 0;
  std::string_view value;  // empty: deleted at `height`
};
// DATA_LOSS when shorter than 4 bytes. The view points into `in`.
absl::StatusOr<LatestValue> DecodeLatestValue(std::string_view in);
std::string ReplayKey(uint64_t seq);

// The history's prefix extractor: a history key without its 4-byte height, i.e. the part every
// version of one user key shares. It lets the history's hash memtable and bloom filters find a
// key's versions without ordering the whole keyspace. Its name is stored in the database's
// OPTIONS and table files: never change what it computes without a new name.
class HistoryUserKeyPart final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "tandem.HistoryUserKeyPart"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), key.size() - 4);
  }
  // len(k) and ~h: every well-formed history key has at least 8 bytes.
  bool InDomain(const rocksdb::Slice& key) const override { return key.size() >= 8; }
};

// The latest family's prefix extractor: the whole key, so that its hash memtable keeps one
// bucket per user key (a point lookup is a hash probe) and its bloom filters are whole-key
// filters. The same naming rule as above applies.
class WholeKey final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "tandem.WholeKey"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override { return key; }
  bool InDomain(const rocksdb::Slice& /*key*/) const override { return true; }
};

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
