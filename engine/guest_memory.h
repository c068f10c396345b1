// Bounds-checked reads of a guest's linear memory, as the host ABI's pointers designate it.
// Pure functions over a byte view: no V8, no allocation, and no read outside the view, ever.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem::engine {

// True when [pointer, pointer + length) lies inside `memory`.
inline bool InGuestMemory(absl::string_view memory, uint64_t pointer, uint64_t length) {
  return pointer <= memory.size() && length <= memory.size() - pointer;
}

// Reads the length-prefixed bytes at `pointer`: a u32 LE length at pointer - 4, then the data
// (the AssemblyScript ArrayBuffer layout). The view points into `memory`.
// Returns INVALID_ARGUMENT when the prefix or the data lies outside `memory`.
absl::StatusOr<absl::string_view> ReadLengthPrefixed(absl::string_view memory, uint32_t pointer);

}  // namespace tandem::engine
