// Reads the parts of a WebAssembly binary that tandem checks at load, and rewrites its memory
// limit. Pure byte manipulation: it never touches V8 and never trusts a length it has not
// bounds-checked.
#include "engine/wasm_binary.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "util/status_macros.h"

namespace tandem::engine {
namespace {

constexpr uint8_t kSectionType = 1;
constexpr uint8_t kSectionImport = 2;
constexpr uint8_t kSectionFunction = 3;
constexpr uint8_t kSectionMemory = 5;
constexpr uint8_t kSectionExport = 7;
constexpr char kMagicAndVersion[] = {0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00};

const char* ValueTypeName(ValueType type) {
  switch (type) {
    case ValueType::kI32:
      return "i32";
    case ValueType::kI64:
      return "i64";
    case ValueType::kF32:
      return "f32";
    case ValueType::kF64:
      return "f64";
    case ValueType::kV128:
      return "v128";
    case ValueType::kFuncRef:
      return "funcref";
    case ValueType::kExternRef:
      return "externref";
  }
  return "?";
}

// A cursor over untrusted bytes. Every read checks the remaining length first.
class Reader {
 public:
  explicit Reader(absl::string_view bytes) : bytes_(bytes) {}

  size_t position() const { return position_; }
  bool AtEnd() const { return position_ == bytes_.size(); }

  absl::StatusOr<uint8_t> Byte(absl::string_view what) {
    if (position_ >= bytes_.size()) return Truncated(what);
    return static_cast<uint8_t>(bytes_[position_++]);
  }

  // Unsigned LEB128 of at most 32 bits, as the binary format requires.
  absl::StatusOr<uint32_t> U32(absl::string_view what) {
    uint64_t value = 0;
    for (int shift = 0; shift < 35; shift += 7) {
      absl::StatusOr<uint8_t> byte = Byte(what);
      if (!byte.ok()) return byte.status();
      value |= static_cast<uint64_t>(*byte & 0x7f) << shift;
      if ((*byte & 0x80) == 0) {
        if (value > UINT32_MAX) break;
        return static_cast<uint32_t>(value);
      }
    }
    return absl::InvalidArgumentError(
        absl::StrCat("malformed LEB128 integer in ", what, " at byte ", position_));
  }

  absl::StatusOr<absl::string_view> Bytes(size_t length, absl::string_view what) {
    if (length > bytes_.size() - position_) return Truncated(what);
    absl::string_view out = bytes_.substr(position_, length);
    position_ += length;
    return out;
  }

  absl::StatusOr<std::string> Name(absl::string_view what) {
    absl::StatusOr<uint32_t> length = U32(what);
    if (!length.ok()) return length.status();
    absl::StatusOr<absl::string_view> bytes = Bytes(*length, what);
    if (!bytes.ok()) return bytes.status();
    return std::string(*bytes);
  }

 private:
  absl::Status Truncated(absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("module is truncated in ", what, " at byte ", position_));
  }

  absl::string_view bytes_;
  size_t position_ = 0;
};

absl::StatusOr<ValueType> ReadValueType(Reader& reader) {
  TANDEM_ASSIGN_OR_RETURN(auto byte, reader.Byte("a value type"));
  switch (byte) {
    case 0x7f:
    case 0x7e:
    case 0x7d:
    case 0x7c:
    case 0x7b:
    case 0x70:
    case 0x6f:
      return static_cast<ValueType>(byte);
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown value type 0x", absl::Hex(byte)));
  }
}

absl::StatusOr<MemoryLimits> ReadLimits(Reader& reader) {
  TANDEM_ASSIGN_OR_RETURN(auto flags, reader.Byte("memory limits"));
  if (flags > 0x07) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown memory limits flags 0x", absl::Hex(flags)));
  }
  MemoryLimits limits;
  limits.shared = (flags & 0x02) != 0;
  limits.is_64 = (flags & 0x04) != 0;
  if (limits.is_64) {
    return absl::InvalidArgumentError("64-bit memories (memory64) are not supported");
  }
  TANDEM_ASSIGN_OR_RETURN(auto initial, reader.U32("memory initial size"));
  limits.initial_pages = initial;
  if (flags & 0x01) {
    TANDEM_ASSIGN_OR_RETURN(auto maximum, reader.U32("memory maximum size"));
    limits.maximum_pages = maximum;
  }
  return limits;
}

absl::Status ReadTableType(Reader& reader) {
  TANDEM_ASSIGN_OR_RETURN(auto type, ReadValueType(reader));
  (void)type;
  TANDEM_ASSIGN_OR_RETURN(auto limits_flags, reader.Byte("table limits"));
  TANDEM_ASSIGN_OR_RETURN(auto initial, reader.U32("table initial size"));
  (void)initial;
  if (limits_flags & 0x01) {
    TANDEM_ASSIGN_OR_RETURN(auto maximum, reader.U32("table maximum size"));
    (void)maximum;
  }
  return absl::OkStatus();
}

struct Sections {
  std::vector<FunctionSignature> types;
  std::vector<uint32_t> function_type_indices;  // Imported functions first, then defined ones.
};

absl::StatusOr<FunctionSignature> TypeAt(const Sections& sections, uint32_t index) {
  if (index >= sections.types.size()) {
    return absl::InvalidArgumentError(absl::StrCat("type index ", index, " is out of range"));
  }
  return sections.types[index];
}

}  // namespace

std::string FunctionSignature::ToString() const {
  auto names = [](const std::vector<ValueType>& types) {
    std::vector<std::string> parts;
    for (ValueType type : types) parts.emplace_back(ValueTypeName(type));
    return absl::StrJoin(parts, ", ");
  };
  std::string result = absl::StrCat("(", names(params), ") -> ");
  if (results.size() == 1) return absl::StrCat(result, ValueTypeName(results[0]));
  return absl::StrCat(result, "(", names(results), ")");
}

const WasmExport* WasmModuleInfo::FindExport(absl::string_view name) const {
  for (const WasmExport& entry : exports) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

absl::StatusOr<WasmModuleInfo> ParseWasmBinary(absl::string_view bytes) {
  if (bytes.size() < sizeof(kMagicAndVersion) ||
      std::memcmp(bytes.data(), kMagicAndVersion, sizeof(kMagicAndVersion)) != 0) {
    return absl::InvalidArgumentError(
        "not a WebAssembly module (missing the \\0asm magic and version 1 header)");
  }
  Reader reader(bytes.substr(sizeof(kMagicAndVersion)));
  WasmModuleInfo info;
  Sections sections;
  std::vector<size_t> export_function_slots;  // Indices into info.exports of function exports.

  while (!reader.AtEnd()) {
    TANDEM_ASSIGN_OR_RETURN(auto section_id, reader.Byte("a section id"));
    TANDEM_ASSIGN_OR_RETURN(auto section_size, reader.U32("a section size"));
    TANDEM_ASSIGN_OR_RETURN(auto section_bytes, reader.Bytes(section_size, "a section body"));
    Reader section(section_bytes);
    switch (section_id) {
      case kSectionType: {
        TANDEM_ASSIGN_OR_RETURN(auto count, section.U32("the type section"));
        for (uint32_t i = 0; i < count; ++i) {
          TANDEM_ASSIGN_OR_RETURN(auto form, section.Byte("a function type"));
          if (form != 0x60) {
            return absl::InvalidArgumentError(
                absl::StrCat("type ", i, " is not a function type (form 0x", absl::Hex(form), ")"));
          }
          FunctionSignature signature;
          TANDEM_ASSIGN_OR_RETURN(auto param_count, section.U32("a function type"));
          for (uint32_t p = 0; p < param_count; ++p) {
            TANDEM_ASSIGN_OR_RETURN(auto type, ReadValueType(section));
            signature.params.push_back(type);
          }
          TANDEM_ASSIGN_OR_RETURN(auto result_count, section.U32("a function type"));
          for (uint32_t r = 0; r < result_count; ++r) {
            TANDEM_ASSIGN_OR_RETURN(auto type, ReadValueType(section));
            signature.results.push_back(type);
          }
          sections.types.push_back(std::move(signature));
        }
        break;
      }
      case kSectionImport: {
        TANDEM_ASSIGN_OR_RETURN(auto count, section.U32("the import section"));
        for (uint32_t i = 0; i < count; ++i) {
          WasmImport entry;
          TANDEM_ASSIGN_OR_RETURN(auto module, section.Name("an import's module name"));
          TANDEM_ASSIGN_OR_RETURN(auto name, section.Name("an import's name"));
          entry.module = std::move(module);
          entry.name = std::move(name);
          TANDEM_ASSIGN_OR_RETURN(auto kind, section.Byte("an import's kind"));
          switch (kind) {
            case 0: {
              entry.kind = ExternalKind::kFunction;
              TANDEM_ASSIGN_OR_RETURN(auto type_index, section.U32("an imported function's type"));
              TANDEM_ASSIGN_OR_RETURN(auto signature, TypeAt(sections, type_index));
              entry.signature = std::move(signature);
              sections.function_type_indices.push_back(type_index);
              break;
            }
            case 1: {
              entry.kind = ExternalKind::kTable;
              TANDEM_RETURN_IF_ERROR(ReadTableType(section));
              break;
            }
            case 2: {
              entry.kind = ExternalKind::kMemory;
              TANDEM_ASSIGN_OR_RETURN(auto limits, ReadLimits(section));
              (void)limits;
              break;
            }
            case 3: {
              entry.kind = ExternalKind::kGlobal;
              TANDEM_ASSIGN_OR_RETURN(auto type, ReadValueType(section));
              (void)type;
              TANDEM_ASSIGN_OR_RETURN(auto mutability, section.Byte("an imported global"));
              (void)mutability;
              break;
            }
            default:
              return absl::InvalidArgumentError(absl::StrCat(
                  "import ", entry.module, ".", entry.name, " has unknown kind ", kind));
          }
          info.imports.push_back(std::move(entry));
        }
        break;
      }
      case kSectionFunction: {
        TANDEM_ASSIGN_OR_RETURN(auto count, section.U32("the function section"));
        for (uint32_t i = 0; i < count; ++i) {
          TANDEM_ASSIGN_OR_RETURN(auto type_index, section.U32("the function section"));
          if (type_index >= sections.types.size()) {
            return absl::InvalidArgumentError(
                absl::StrCat("function ", i, " has out-of-range type index ", type_index));
          }
          sections.function_type_indices.push_back(type_index);
        }
        break;
      }
      case kSectionMemory: {
        TANDEM_ASSIGN_OR_RETURN(auto count, section.U32("the memory section"));
        for (uint32_t i = 0; i < count; ++i) {
          TANDEM_ASSIGN_OR_RETURN(auto limits, ReadLimits(section));
          info.memories.push_back(limits);
        }
        break;
      }
      case kSectionExport: {
        TANDEM_ASSIGN_OR_RETURN(auto count, section.U32("the export section"));
        for (uint32_t i = 0; i < count; ++i) {
          WasmExport entry;
          TANDEM_ASSIGN_OR_RETURN(auto name, section.Name("an export's name"));
          entry.name = std::move(name);
          TANDEM_ASSIGN_OR_RETURN(auto kind, section.Byte("an export's kind"));
          if (kind > 3) {
            return absl::InvalidArgumentError(
                absl::StrCat("export \"", entry.name, "\" has unknown kind ", kind));
          }
          entry.kind = static_cast<ExternalKind>(kind);
          TANDEM_ASSIGN_OR_RETURN(auto index, section.U32("an export's index"));
          entry.index = index;
          if (entry.kind == ExternalKind::kFunction) {
            export_function_slots.push_back(info.exports.size());
          }
          info.exports.push_back(std::move(entry));
        }
        break;
      }
      default:
        continue;  // Code, data, custom and other sections: V8 validates them.
    }
    if (!section.AtEnd()) {
      return absl::InvalidArgumentError(
          absl::StrCat("section ", static_cast<int>(section_id), " has ",
                       section_bytes.size() - section.position(), " unexpected trailing bytes"));
    }
  }

  for (size_t slot : export_function_slots) {
    WasmExport& entry = info.exports[slot];
    if (entry.index >= sections.function_type_indices.size()) {
      return absl::InvalidArgumentError(absl::StrCat("export \"", entry.name, "\" names function ",
                                                     entry.index, ", which does not exist"));
    }
    entry.signature = sections.types[sections.function_type_indices[entry.index]];
  }
  return info;
}

absl::StatusOr<std::string> RewriteMemoryMaximum(absl::string_view bytes, uint32_t maximum_pages) {
  if (bytes.size() < sizeof(kMagicAndVersion)) {
    return absl::InvalidArgumentError("not a WebAssembly module");
  }
  std::string out(bytes.substr(0, sizeof(kMagicAndVersion)));
  Reader reader(bytes.substr(sizeof(kMagicAndVersion)));
  bool rewritten = false;
  auto append_u32 = [](std::string& to, uint32_t value) {
    do {
      uint8_t byte = value & 0x7f;
      value >>= 7;
      if (value != 0) byte |= 0x80;
      to.push_back(static_cast<char>(byte));
    } while (value != 0);
  };
  while (!reader.AtEnd()) {
    size_t section_start = reader.position();
    TANDEM_ASSIGN_OR_RETURN(auto section_id, reader.Byte("a section id"));
    TANDEM_ASSIGN_OR_RETURN(auto section_size, reader.U32("a section size"));
    TANDEM_ASSIGN_OR_RETURN(auto section_bytes, reader.Bytes(section_size, "a section body"));
    if (section_id != kSectionMemory) {
      absl::string_view whole_section =
          bytes.substr(sizeof(kMagicAndVersion) + section_start, reader.position() - section_start);
      out.append(whole_section.data(), whole_section.size());
      continue;
    }
    Reader section(section_bytes);
    TANDEM_ASSIGN_OR_RETURN(auto count, section.U32("the memory section"));
    if (count != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("module defines ", count, " memories; exactly one is supported"));
    }
    TANDEM_ASSIGN_OR_RETURN(auto limits, ReadLimits(section));
    if (limits.shared) {
      return absl::InvalidArgumentError("shared memories (threads) are not supported");
    }
    if (limits.initial_pages > maximum_pages) {
      return absl::InvalidArgumentError(absl::StrCat("memory starts at ", limits.initial_pages,
                                                     " pages, above the cap of ", maximum_pages,
                                                     " pages"));
    }
    std::string body;
    append_u32(body, 1);
    body.push_back(0x01);  // Limits with a maximum, unshared, 32-bit.
    append_u32(body, limits.initial_pages);
    append_u32(body, maximum_pages);
    out.push_back(static_cast<char>(kSectionMemory));
    append_u32(out, static_cast<uint32_t>(body.size()));
    out.append(body);
    rewritten = true;
  }
  if (!rewritten) {
    return absl::InvalidArgumentError("module defines no memory");
  }
  return out;
}

}  // namespace tandem::engine
