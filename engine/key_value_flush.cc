// Decodes the protobuf `KeyValueFlush { repeated bytes list = 1; }` that guests pass to __flush.
// It reads untrusted guest bytes: every length is checked, nothing is allocated per field.
#include "engine/key_value_flush.h"

#include <cstdint>
#include <optional>

#include "absl/strings/str_cat.h"

namespace tandem::engine {
namespace {

std::optional<uint64_t> ReadVarint(absl::string_view bytes, size_t& position) {
  uint64_t value = 0;
  for (int shift = 0; shift < 64 && position < bytes.size(); shift += 7) {
    uint8_t byte = static_cast<uint8_t>(bytes[position++]);
    value |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return value;
  }
  return std::nullopt;
}

}  // namespace

absl::Status DecodeKeyValueFlush(
    absl::string_view message,
    std::vector<std::pair<absl::string_view, absl::string_view>>& pairs) {
  std::vector<absl::string_view> list;
  size_t position = 0;
  while (position < message.size()) {
    size_t field_start = position;
    std::optional<uint64_t> tag = ReadVarint(message, position);
    if (!tag.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed flush: truncated tag at byte ", field_start));
    }
    uint64_t field = *tag >> 3;
    uint32_t wire_type = static_cast<uint32_t>(*tag & 0x7);
    if (field == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed flush: field number 0 at byte ", field_start));
    }
    if (field == 1 && wire_type != 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "malformed flush: field 1 (list) has wire type ", wire_type, ", not length-delimited"));
    }
    switch (wire_type) {
      case 0:  // varint
        if (!ReadVarint(message, position).has_value()) {
          return absl::InvalidArgumentError(
              absl::StrCat("malformed flush: truncated varint at byte ", position));
        }
        break;
      case 1:  // 64-bit
      case 5:  // 32-bit
      {
        size_t width = wire_type == 1 ? 8 : 4;
        if (message.size() - position < width) {
          return absl::InvalidArgumentError(
              absl::StrCat("malformed flush: truncated fixed field at byte ", position));
        }
        position += width;
        break;
      }
      case 2: {
        std::optional<uint64_t> length = ReadVarint(message, position);
        if (!length.has_value() || *length > message.size() - position) {
          return absl::InvalidArgumentError(
              absl::StrCat("malformed flush: length-delimited field at byte ", field_start,
                           " runs past the end of the ", message.size(), "-byte message"));
        }
        if (field == 1) list.push_back(message.substr(position, *length));
        position += *length;
        break;
      }
      default:
        return absl::InvalidArgumentError(absl::StrCat("malformed flush: invalid wire type ",
                                                       wire_type, " at byte ", field_start));
    }
  }
  if (list.size() % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("malformed flush: the list has ", list.size(),
                                                   " entries; keys and values must come in pairs"));
  }
  for (size_t i = 0; i < list.size(); i += 2) pairs.emplace_back(list[i], list[i + 1]);
  return absl::OkStatus();
}

}  // namespace tandem::engine
