// Reads the parts of a WebAssembly binary that tandem checks at load, and rewrites its memory
// limit. Pure byte manipulation: it never touches V8 and never trusts a length it has not
// bounds-checked.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem::engine {

// WebAssembly value types, as their binary encodings.
enum class ValueType : uint8_t {
  kI32 = 0x7f,
  kI64 = 0x7e,
  kF32 = 0x7d,
  kF64 = 0x7c,
  kV128 = 0x7b,
  kFuncRef = 0x70,
  kExternRef = 0x6f,
};

struct FunctionSignature {
  std::vector<ValueType> params;
  std::vector<ValueType> results;

  bool operator==(const FunctionSignature&) const = default;
  // "(i32, i32) -> i32", for error messages.
  std::string ToString() const;
};

enum class ExternalKind : uint8_t { kFunction = 0, kTable = 1, kMemory = 2, kGlobal = 3 };

struct WasmImport {
  std::string module;
  std::string name;
  ExternalKind kind;
  FunctionSignature signature;  // Only for kFunction.
};

struct WasmExport {
  std::string name;
  ExternalKind kind;
  uint32_t index;
  FunctionSignature signature;  // Only for kFunction.
};

struct MemoryLimits {
  uint32_t initial_pages = 0;
  std::optional<uint32_t> maximum_pages;
  bool shared = false;
  bool is_64 = false;
};

// The load-relevant structure of a module. Produced by ParseWasmBinary; owns copies of everything.
struct WasmModuleInfo {
  std::vector<WasmImport> imports;
  std::vector<WasmExport> exports;
  std::vector<MemoryLimits> memories;  // Defined (not imported) memories.

  // Returns the export called `name`, or nullptr.
  const WasmExport* FindExport(absl::string_view name) const;
};

// Parses the type, import, function, memory and export sections of `bytes`. Other sections are
// skipped by their declared size. Returns INVALID_ARGUMENT naming the first malformed part; the
// full validation of code is V8's job at compile time.
absl::StatusOr<WasmModuleInfo> ParseWasmBinary(absl::string_view bytes);

// Returns a copy of `bytes` whose single defined memory has maximum `maximum_pages`. The module
// must have been parsed successfully and define exactly one memory, with initial <= maximum_pages.
absl::StatusOr<std::string> RewriteMemoryMaximum(absl::string_view bytes, uint32_t maximum_pages);

}  // namespace tandem::engine
