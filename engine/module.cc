// A guest module: validated against the host ABI, its memory capped, compiled once per process.
// It never runs guest code and never holds an isolate beyond its own compile.
#include "engine/module.h"

#include <v8.h>

#include <array>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/platform.h"
#include "util/status_macros.h"

namespace tandem::engine {
namespace {

constexpr ValueType kI32 = ValueType::kI32;

struct HostFunction {
  absl::string_view name;
  FunctionSignature signature;
};

const std::array<HostFunction, 7>& HostFunctions() {
  static const auto* functions = new std::array<HostFunction, 7>{{
      {"__host_len", {{}, {kI32}}},
      {"__load_input", {{kI32}, {}}},
      {"__get_len", {{kI32}, {kI32}}},
      {"__get", {{kI32, kI32}, {}}},
      {"__flush", {{kI32}, {}}},
      {"__log", {{kI32}, {}}},
      {"abort", {{kI32, kI32, kI32, kI32}, {}}},
  }};
  return *functions;
}

const char* KindName(ExternalKind kind) {
  switch (kind) {
    case ExternalKind::kFunction:
      return "function";
    case ExternalKind::kTable:
      return "table";
    case ExternalKind::kMemory:
      return "memory";
    case ExternalKind::kGlobal:
      return "global";
  }
  return "?";
}

// Compiles in a short-lived isolate of its own; the CompiledWasmModule outlives it.
absl::StatusOr<std::unique_ptr<v8::CompiledWasmModule>> Compile(absl::string_view bytes) {
  std::unique_ptr<v8::ArrayBuffer::Allocator> allocator(
      v8::ArrayBuffer::Allocator::NewDefaultAllocator());
  v8::Isolate::CreateParams params;
  params.array_buffer_allocator = allocator.get();
  v8::Isolate* isolate = v8::Isolate::New(params);
  absl::StatusOr<std::unique_ptr<v8::CompiledWasmModule>> result;
  {
    v8::Isolate::Scope isolate_scope(isolate);
    v8::HandleScope handle_scope(isolate);
    // WasmModuleObject::Compile crashes without an entered context.
    v8::Local<v8::Context> context = v8::Context::New(isolate);
    v8::Context::Scope context_scope(context);
    v8::TryCatch try_catch(isolate);
    v8::MaybeLocal<v8::WasmModuleObject> module = v8::WasmModuleObject::Compile(
        isolate, v8::MemorySpan<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()),
                                               bytes.size()));
    if (module.IsEmpty()) {
      std::string message = "unknown compile error";
      if (try_catch.HasCaught()) {
        v8::String::Utf8Value text(isolate, try_catch.Exception());
        if (*text != nullptr) message = *text;
      }
      result = absl::InvalidArgumentError(absl::StrCat("module does not compile: ", message));
    } else {
      result =
          std::make_unique<v8::CompiledWasmModule>(module.ToLocalChecked()->GetCompiledModule());
    }
  }
  NotifyIsolateShutdown(isolate);
  isolate->Dispose();
  return result;
}

}  // namespace

const FunctionSignature* HostFunctionSignature(absl::string_view name) {
  for (const HostFunction& function : HostFunctions()) {
    if (function.name == name) return &function.signature;
  }
  return nullptr;
}

absl::Status ValidateAgainstHostAbi(const WasmModuleInfo& info) {
  for (const WasmImport& import : info.imports) {
    std::string qualified = absl::StrCat(import.module, ".", import.name);
    if (import.kind != ExternalKind::kFunction) {
      return absl::InvalidArgumentError(
          absl::StrCat("module imports ", KindName(import.kind), " ", qualified,
                       "; only host ABI functions may be imported (the memory must be defined "
                       "and exported by the module)"));
    }
    const FunctionSignature* expected =
        import.module == "env" ? HostFunctionSignature(import.name) : nullptr;
    if (expected == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "module imports unknown function ", qualified,
          "; the host ABI offers env.__host_len, env.__load_input, env.__get_len, env.__get, "
          "env.__flush, env.__log and env.abort"));
    }
    if (import.signature != *expected) {
      return absl::InvalidArgumentError(
          absl::StrCat("module imports ", qualified, " as ", import.signature.ToString(),
                       " but the host ABI defines it as ", expected->ToString()));
    }
  }
  if (info.memories.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("module defines ", info.memories.size(),
                                                   " memories; exactly one is required"));
  }
  if (info.memories[0].shared) {
    return absl::InvalidArgumentError("module's memory is shared (threads); not supported");
  }
  const WasmExport* memory = info.FindExport("memory");
  if (memory == nullptr || memory->kind != ExternalKind::kMemory) {
    return absl::InvalidArgumentError("module does not export its memory as \"memory\"");
  }
  const WasmExport* start = info.FindExport("_start");
  if (start == nullptr || start->kind != ExternalKind::kFunction) {
    return absl::InvalidArgumentError("module does not export a \"_start\" function");
  }
  const FunctionSignature no_arguments_no_results;
  if (start->signature != no_arguments_no_results) {
    return absl::InvalidArgumentError(absl::StrCat(
        "module exports \"_start\" as ", start->signature.ToString(), "; it must be () -> ()"));
  }
  if (const WasmExport* initialize = info.FindExport("_initialize"); initialize != nullptr) {
    if (initialize->kind != ExternalKind::kFunction ||
        initialize->signature != no_arguments_no_results) {
      return absl::InvalidArgumentError(
          "module exports \"_initialize\", but not as a () -> () function");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Module>> Module::Load(absl::string_view wasm_bytes,
                                                     const ModuleOptions& options) {
  uint64_t limit_pages = options.memory_limit_bytes / kWasmPageBytes;
  if (limit_pages == 0) {
    return absl::InvalidArgumentError(absl::StrCat("memory limit ", options.memory_limit_bytes,
                                                   " bytes is below one 64 KiB page"));
  }
  if (limit_pages > 65536) limit_pages = 65536;  // 4 GiB: the most a 32-bit memory can address.
  TANDEM_ASSIGN_OR_RETURN(WasmModuleInfo info, ParseWasmBinary(wasm_bytes));
  TANDEM_RETURN_IF_ERROR(ValidateAgainstHostAbi(info));
  uint32_t maximum_pages = static_cast<uint32_t>(limit_pages);
  if (info.memories[0].maximum_pages.has_value() &&
      *info.memories[0].maximum_pages < maximum_pages) {
    maximum_pages = *info.memories[0].maximum_pages;  // The module's own smaller maximum stands.
  }
  if (info.memories[0].initial_pages > maximum_pages) {
    return absl::InvalidArgumentError(
        absl::StrCat("module's memory starts at ", info.memories[0].initial_pages,
                     " pages, above the memory limit of ", maximum_pages, " pages"));
  }
  TANDEM_ASSIGN_OR_RETURN(std::string capped, RewriteMemoryMaximum(wasm_bytes, maximum_pages));
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<v8::CompiledWasmModule> compiled, Compile(capped));
  return std::unique_ptr<Module>(
      new Module(std::move(compiled), std::move(info), maximum_pages, wasm_bytes.size()));
}

Module::Module(std::unique_ptr<v8::CompiledWasmModule> compiled, WasmModuleInfo info,
               uint32_t memory_limit_pages, size_t wire_bytes_size)
    : compiled_(std::move(compiled)),
      info_(std::move(info)),
      memory_limit_pages_(memory_limit_pages),
      wire_bytes_size_(wire_bytes_size) {}

Module::~Module() = default;

absl::Status Module::CheckCallableExport(absl::string_view name) const {
  const WasmExport* entry = info_.FindExport(name);
  if (entry == nullptr || entry->kind != ExternalKind::kFunction) {
    return absl::NotFoundError(absl::StrCat("module has no function export \"", name, "\""));
  }
  const FunctionSignature view_signature{{}, {ValueType::kI32}};
  if (entry->signature != view_signature) {
    return absl::InvalidArgumentError(absl::StrCat("export \"", name, "\" is ",
                                                   entry->signature.ToString(),
                                                   "; a view or init call must be () -> i32"));
  }
  return absl::OkStatus();
}

}  // namespace tandem::engine
