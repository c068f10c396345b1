// Block hashes as a Bitcoin Core node's RPC shows them (hex in display order, i.e. reversed) and
// as tandem stores them (32 bytes in internal order, as in block headers), and the parent hash
// read from a serialized block. Pure functions: no I/O, no node, no gRPC.
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem::follow {

inline constexpr size_t kHashBytes = 32;
inline constexpr size_t kHeaderBytes = 80;

// Decodes hex of any even length (either case). INVALID_ARGUMENT when `hex` has an odd length or
// a character that is not a hex digit.
absl::StatusOr<std::string> DecodeHex(absl::string_view hex);

// A hash as the RPC shows it (64 hex digits, display order) in internal byte order (32 bytes).
// INVALID_ARGUMENT when it is not 64 hex digits.
absl::StatusOr<std::string> HashFromDisplayHex(absl::string_view hex);

// The display-order hex of a hash in internal order (what the node's RPC and explorers show).
std::string DisplayHex(absl::string_view hash);

// The parent hash of a serialized block: bytes 4..36 of its 80-byte header (internal order).
// INVALID_ARGUMENT when the block is shorter than a header.
absl::StatusOr<std::string> ParentHash(absl::string_view block);

}  // namespace tandem::follow
