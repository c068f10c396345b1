// Bounds-checked reads of a guest's linear memory, as the host ABI's pointers designate it.
// Pure functions over a byte view: no V8, no allocation, and no read outside the view, ever.
#include "engine/guest_memory.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace tandem::engine {

absl::StatusOr<absl::string_view> ReadLengthPrefixed(absl::string_view memory, uint32_t pointer) {
  if (pointer < 4 || !InGuestMemory(memory, uint64_t{pointer} - 4, 4)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pointer ", pointer, " has no length prefix inside the ", memory.size(), "-byte memory"));
  }
  uint32_t length;
  std::memcpy(&length, memory.data() + pointer - 4, 4);  // WebAssembly memory is little-endian.
  if (!InGuestMemory(memory, pointer, length)) {
    return absl::InvalidArgumentError(absl::StrCat("pointer ", pointer, " with length ", length,
                                                   " runs past the end of the ", memory.size(),
                                                   "-byte memory"));
  }
  return memory.substr(pointer, length);
}

}  // namespace tandem::engine
