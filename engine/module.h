// A guest module: validated against the host ABI, its memory capped, compiled once per process.
// It never runs guest code and never holds an isolate beyond its own compile.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/wasm_binary.h"

namespace v8 {
class CompiledWasmModule;
}  // namespace v8

namespace tandem::engine {

inline constexpr uint64_t kWasmPageBytes = 64 * 1024;
inline constexpr uint64_t kDefaultMemoryLimitBytes = 4ull << 30;

struct ModuleOptions {
  // The guest's memory cap in bytes, rounded down to whole 64 KiB pages. `memory.grow` answers -1
  // exactly when the memory would pass it, on every node alike.
  uint64_t memory_limit_bytes = kDefaultMemoryLimitBytes;
};

// The ABI functions a guest may import from module "env", and their signatures.
// Returns nullptr when `name` is not one of them.
const FunctionSignature* HostFunctionSignature(absl::string_view name);

// A compiled guest module, shared by every instance of the process.
//
// Threading: immutable after Load; any thread may read it and hand it to new isolates
// concurrently (V8's CompiledWasmModule is shareable across isolates).
class Module {
 public:
  // Validates `wasm_bytes`, rewrites the memory maximum to the cap, and compiles the result.
  // Returns INVALID_ARGUMENT naming the offending part when the bytes are not a module, an import
  // is not an ABI function (or has the wrong signature), `memory` or `_start` is not exported,
  // the memory is shared or 64-bit, or its initial size exceeds the cap; and V8's own compile
  // error for anything else invalid. REQUIRES: InitializeV8() succeeded.
  static absl::StatusOr<std::unique_ptr<Module>> Load(absl::string_view wasm_bytes,
                                                      const ModuleOptions& options);

  ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The compiled code, for WasmModuleObject::FromCompiledModule in an instance's isolate.
  const v8::CompiledWasmModule& compiled() const { return *compiled_; }
  // What the validator read from the module (imports, exports and their signatures).
  const WasmModuleInfo& info() const { return info_; }
  uint32_t memory_limit_pages() const { return memory_limit_pages_; }
  uint64_t memory_limit_bytes() const { return uint64_t{memory_limit_pages_} * kWasmPageBytes; }
  // True when the module exports `_initialize` (the WASI reactor convention).
  bool has_initialize() const { return info_.FindExport("_initialize") != nullptr; }
  size_t wire_bytes_size() const { return wire_bytes_size_; }

  // Checks that `name` is a function export callable as a view or init call: `() -> i32`.
  // Returns NOT_FOUND when there is no such function export, INVALID_ARGUMENT when its signature
  // differs.
  absl::Status CheckCallableExport(absl::string_view name) const;

 private:
  Module(std::unique_ptr<v8::CompiledWasmModule> compiled, WasmModuleInfo info,
         uint32_t memory_limit_pages, size_t wire_bytes_size);

  const std::unique_ptr<v8::CompiledWasmModule> compiled_;
  const WasmModuleInfo info_;
  const uint32_t memory_limit_pages_;
  const size_t wire_bytes_size_;
};

// Validates a parsed module against the host ABI (see Module::Load). Exposed for tests and tools.
absl::Status ValidateAgainstHostAbi(const WasmModuleInfo& info);

}  // namespace tandem::engine
