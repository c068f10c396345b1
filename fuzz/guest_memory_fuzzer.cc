// libFuzzer target: length-prefixed reads of guest memory with arbitrary pointers. The first four
// input bytes are the pointer, the rest is the memory. A read must stay inside the memory.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "engine/guest_memory.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  uint32_t pointer;
  std::memcpy(&pointer, data, 4);
  absl::string_view memory(reinterpret_cast<const char*>(data) + 4, size - 4);
  absl::StatusOr<absl::string_view> bytes = tandem::engine::ReadLengthPrefixed(memory, pointer);
  if (bytes.ok() && (bytes->data() < memory.data() ||
                     bytes->data() + bytes->size() > memory.data() + memory.size())) {
    std::abort();
  }
  return 0;
}
