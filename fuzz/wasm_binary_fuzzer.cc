// libFuzzer target: the load-time WebAssembly reader and the memory-maximum rewrite on arbitrary
// bytes. Neither may read out of bounds; a rewrite of a parsed module must parse again with the
// new maximum.
#include <cstdint>
#include <cstdlib>

#include "engine/wasm_binary.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<tandem::engine::WasmModuleInfo> info = tandem::engine::ParseWasmBinary(bytes);
  if (!info.ok() || info->memories.size() != 1 || info->memories[0].shared) return 0;
  absl::StatusOr<std::string> rewritten = tandem::engine::RewriteMemoryMaximum(bytes, 65536);
  if (!rewritten.ok()) return 0;
  absl::StatusOr<tandem::engine::WasmModuleInfo> again =
      tandem::engine::ParseWasmBinary(*rewritten);
  if (!again.ok() || again->memories.size() != 1 || again->memories[0].maximum_pages != 65536u ||
      again->imports.size() != info->imports.size() ||
      again->exports.size() != info->exports.size()) {
    std::abort();
  }
  return 0;
}
