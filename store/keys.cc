// The store's on-disk layout: how keys and records are laid out in RocksDB's one keyspace.
// Internal to store/: nothing outside it may depend on these bytes except through BlockStore.
#include "store/keys.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "store/state_root.h"

namespace tandem::store::keys {
namespace {

// Splits a u32-length-prefixed field off the front of `*in`.
bool ConsumeLengthPrefixed(std::string_view* in, std::string_view* field) {
  if (in->size() < 4) return false;
  const uint32_t size = ReadU32(*in);
  in->remove_prefix(4);
  if (in->size() < size) return false;
  *field = in->substr(0, size);
  in->remove_prefix(size);
  return true;
}

}  // namespace

void AppendU32(std::string* out, uint32_t value) {
  const char bytes[4] = {static_cast<char>(value >> 24), static_cast<char>(value >> 16),
                         static_cast<char>(value >> 8), static_cast<char>(value)};
  out->append(bytes, 4);
}

void AppendU64(std::string* out, uint64_t value) {
  AppendU32(out, static_cast<uint32_t>(value >> 32));
  AppendU32(out, static_cast<uint32_t>(value));
}

uint32_t ReadU32(std::string_view in) {
  const auto byte = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(in[i])); };
  return (byte(0) << 24) | (byte(1) << 16) | (byte(2) << 8) | byte(3);
}

uint64_t ReadU64(std::string_view in) {
  return (static_cast<uint64_t>(ReadU32(in)) << 32) | ReadU32(in.substr(4));
}

std::string EncodeU32(uint32_t value) {
  std::string out;
  AppendU32(&out, value);
  return out;
}

absl::StatusOr<uint32_t> DecodeU32(std::string_view in, absl::string_view what) {
  if (in.size() != 4) {
    return absl::DataLossError(
        absl::StrCat("malformed ", what, ": ", in.size(), " bytes, expected 4"));
  }
  return ReadU32(in);
}

std::string BlockKey(uint32_t height) {
  std::string key(1, kBlockTag);
  AppendU32(&key, height);
  return key;
}

std::string TouchedKey(uint32_t height) {
  std::string key(1, kTouchedTag);
  AppendU32(&key, height);
  return key;
}

void AppendHistoryPrefix(std::string* out, std::string_view user_key) {
  AppendU32(out, static_cast<uint32_t>(user_key.size()));
  out->append(user_key);
}

std::string HistoryKey(std::string_view user_key, uint32_t height) {
  std::string key;
  key.reserve(user_key.size() + 8);
  AppendHistoryPrefix(&key, user_key);
  AppendU32(&key, ~height);
  return key;
}

absl::StatusOr<HistoryKeyParts> DecodeHistoryKey(std::string_view key) {
  if (key.size() < 8 || key.size() != 8 + static_cast<size_t>(ReadU32(key))) {
    return absl::DataLossError(absl::StrCat("malformed history key of ", key.size(), " bytes"));
  }
  return HistoryKeyParts{key.substr(4, key.size() - 8), ~ReadU32(key.substr(key.size() - 4))};
}

void AppendLatestValue(std::string* out, uint32_t height, std::string_view value) {
  AppendU32(out, height);
  out->append(value);
}

absl::StatusOr<LatestValue> DecodeLatestValue(std::string_view in) {
  if (in.size() < 4) {
    return absl::DataLossError(absl::StrCat("malformed latest value of ", in.size(), " bytes"));
  }
  return LatestValue{ReadU32(in), in.substr(4)};
}

std::string ReplayKey(uint64_t seq) {
  std::string key(1, kReplayTag);
  AppendU64(&key, seq);
  return key;
}

std::string EncodeBlockMeta(const BlockMeta& meta) {
  std::string out;
  out.reserve(2 * kHashSize + 4);
  out.append(meta.hash);
  out.append(meta.state_root);
  AppendU32(&out, meta.write_count);
  return out;
}

absl::StatusOr<BlockMeta> DecodeBlockMeta(std::string_view in) {
  if (in.size() != 2 * kHashSize + 4) {
    return absl::DataLossError(absl::StrCat("malformed block record: ", in.size(),
                                            " bytes, expected ", 2 * kHashSize + 4));
  }
  BlockMeta meta;
  meta.hash = std::string(in.substr(0, kHashSize));
  meta.state_root = std::string(in.substr(kHashSize, kHashSize));
  meta.write_count = ReadU32(in.substr(2 * kHashSize));
  return meta;
}

void AppendTouchedKey(std::string* out, std::string_view user_key) {
  AppendU32(out, static_cast<uint32_t>(user_key.size()));
  out->append(user_key);
}

absl::StatusOr<std::vector<std::string>> DecodeTouchedKeys(std::string_view in) {
  std::vector<std::string> keys;
  while (!in.empty()) {
    std::string_view key;
    if (!ConsumeLengthPrefixed(&in, &key)) {
      return absl::DataLossError("malformed touched-key list: truncated entry");
    }
    keys.emplace_back(key);
  }
  return keys;
}

std::string EncodeReplayEntry(std::string_view export_name, std::string_view payload,
                              std::string_view result_digest) {
  std::string out;
  out.reserve(8 + export_name.size() + payload.size() + result_digest.size());
  AppendU32(&out, static_cast<uint32_t>(export_name.size()));
  out.append(export_name);
  AppendU32(&out, static_cast<uint32_t>(payload.size()));
  out.append(payload);
  out.append(result_digest);
  return out;
}

absl::StatusOr<ReplayEntryView> DecodeReplayEntry(std::string_view in) {
  ReplayEntryView entry;
  if (!ConsumeLengthPrefixed(&in, &entry.export_name) ||
      !ConsumeLengthPrefixed(&in, &entry.payload) || in.size() != kHashSize) {
    return absl::DataLossError("malformed replay-log entry");
  }
  entry.result_digest = in;
  return entry;
}

}  // namespace tandem::store::keys
