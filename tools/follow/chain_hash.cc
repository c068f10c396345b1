// Block hashes in display and internal order; the parent hash of a serialized block.
#include "tools/follow/chain_hash.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace tandem::follow {

absl::StatusOr<std::string> DecodeHex(absl::string_view hex) {
  if (hex.size() % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("hex of odd length ", hex.size()));
  }
  for (size_t i = 0; i < hex.size(); ++i) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(hex[i]))) {
      return absl::InvalidArgumentError(absl::StrCat("not a hex digit at offset ", i));
    }
  }
  return absl::HexStringToBytes(hex);
}

absl::StatusOr<std::string> HashFromDisplayHex(absl::string_view hex) {
  if (hex.size() != 2 * kHashBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("a block hash is ", 2 * kHashBytes, " hex digits, got ", hex.size()));
  }
  absl::StatusOr<std::string> bytes = DecodeHex(hex);
  if (!bytes.ok()) return bytes.status();
  std::reverse(bytes->begin(), bytes->end());
  return bytes;
}

std::string DisplayHex(absl::string_view hash) {
  std::string reversed(hash.rbegin(), hash.rend());
  return absl::BytesToHexString(reversed);
}

absl::StatusOr<std::string> ParentHash(absl::string_view block) {
  if (block.size() < kHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("a block of ", block.size(), " bytes is shorter than its 80-byte header"));
  }
  return std::string(block.substr(4, kHashBytes));
}

}  // namespace tandem::follow
