// The host side of the guest ABI (Metashrew-compatible): the seven `env` functions a guest imports.
// Every pointer a guest passes is bounds-checked against its memory; nothing here touches storage
// except through the StateReader of the current call.
#include "engine/host_abi.h"

#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/guest_memory.h"
#include "engine/key_value_flush.h"
#include "util/failure_cause.h"

namespace tandem::engine {
namespace {

HostAbi* Self(const v8::FunctionCallbackInfo<v8::Value>& info) {
  return static_cast<HostAbi*>(info.Data().As<v8::External>()->Value());
}

// WebAssembly passes i32 arguments as JavaScript numbers; pointers are their unsigned reading.
uint32_t ArgU32(const v8::FunctionCallbackInfo<v8::Value>& info, int index) {
  v8::Local<v8::Value> value = info[index];
  if (value->IsInt32()) return static_cast<uint32_t>(value.As<v8::Int32>()->Value());
  if (value->IsUint32()) return value.As<v8::Uint32>()->Value();
  return static_cast<uint32_t>(
      value->Int32Value(info.GetIsolate()->GetCurrentContext()).FromMaybe(0));
}

absl::string_view CallKindName(CallKind kind) {
  switch (kind) {
    case CallKind::kInitialize:
      return "_initialize";
    case CallKind::kBlock:
      return "block";
    case CallKind::kView:
      return "view";
    case CallKind::kInit:
      return "init call";
  }
  return "call";
}

// An AssemblyScript string (UTF-16LE, byte length at ptr - 4) as printable text, for abort().
std::string DecodeGuestString(absl::string_view memory, uint32_t pointer) {
  if (pointer == 0) return "";
  absl::StatusOr<absl::string_view> bytes = ReadLengthPrefixed(memory, pointer);
  if (!bytes.ok()) return "<unreadable>";
  std::string text;
  constexpr size_t kMaxChars = 512;
  for (size_t i = 0; i + 1 < bytes->size() && text.size() < kMaxChars; i += 2) {
    uint16_t unit =
        static_cast<uint8_t>((*bytes)[i]) | (static_cast<uint8_t>((*bytes)[i + 1]) << 8);
    text.push_back(unit >= 0x20 && unit < 0x7f ? static_cast<char>(unit) : '?');
  }
  return text;
}

}  // namespace

v8::Local<v8::Object> HostAbi::MakeImportObject(v8::Isolate* isolate,
                                                v8::Local<v8::Context> context) {
  v8::EscapableHandleScope scope(isolate);
  v8::Local<v8::Object> env = v8::Object::New(isolate);
  v8::Local<v8::External> self = v8::External::New(isolate, this);
  struct Entry {
    const char* name;
    v8::FunctionCallback callback;
  };
  const Entry entries[] = {
      {"__host_len", &HostAbi::HostLen}, {"__load_input", &HostAbi::LoadInput},
      {"__get_len", &HostAbi::GetLen},   {"__get", &HostAbi::Get},
      {"__flush", &HostAbi::Flush},      {"__log", &HostAbi::Log},
      {"abort", &HostAbi::Abort},
  };
  for (const Entry& entry : entries) {
    v8::Local<v8::Function> function =
        v8::Function::New(context, entry.callback, self).ToLocalChecked();
    env->Set(context, v8::String::NewFromUtf8(isolate, entry.name).ToLocalChecked(), function)
        .Check();
  }
  return scope.Escape(env);
}

void HostAbi::AttachMemory(v8::Isolate* isolate, v8::Local<v8::WasmMemoryObject> memory) {
  memory_.Reset(isolate, memory);
}

absl::string_view HostAbi::MemoryBytes(v8::Isolate* isolate) const {
  if (memory_.IsEmpty()) return {};
  v8::Local<v8::ArrayBuffer> buffer = memory_.Get(isolate)->Buffer();
  return absl::string_view(static_cast<const char*>(buffer->Data()), buffer->ByteLength());
}

void HostAbi::FailCall(v8::Isolate* isolate, absl::Status cause) {
  if (util::CauseOf(cause) == util::FailureCause::kUnknown) {
    // ABORTED from a host function is the guest breaking the ABI; anything else is the host's.
    cause = util::WithCause(std::move(cause), cause.code() == absl::StatusCode::kAborted
                                                  ? util::FailureCause::kGuestAbi
                                                  : util::FailureCause::kHostError);
  }
  if (call_ != nullptr && call_->failure.ok()) call_->failure = std::move(cause);
  // The guest cannot catch this (tandem runs without the exception-handling proposal): it unwinds
  // the whole call, and the instance reports `failure`.
  isolate->ThrowException(
      v8::Exception::Error(v8::String::NewFromUtf8Literal(isolate, "tandem host function failed")));
}

absl::StatusOr<std::optional<std::string>> HostAbi::Lookup(absl::string_view key) {
  if (call_->kind == CallKind::kBlock) {
    auto own = call_->writes.find(key);
    if (own != call_->writes.end()) {
      if (own->second.empty()) return std::nullopt;  // Deleted earlier in this block.
      return own->second;
    }
  }
  if (call_->reader == nullptr) return std::nullopt;
  return call_->reader->Get(key, call_->read_height);
}

void HostAbi::HostLen(const v8::FunctionCallbackInfo<v8::Value>& info) {
  HostAbi* self = Self(info);
  if (self->call_ == nullptr)
    return self->FailCall(info.GetIsolate(), absl::AbortedError("__host_len outside a call"));
  info.GetReturnValue().Set(static_cast<int32_t>(self->call_->input.size()));
}

void HostAbi::LoadInput(const v8::FunctionCallbackInfo<v8::Value>& info) {
  HostAbi* self = Self(info);
  v8::Isolate* isolate = info.GetIsolate();
  if (self->call_ == nullptr)
    return self->FailCall(isolate, absl::AbortedError("__load_input outside a call"));
  uint32_t pointer = ArgU32(info, 0);
  absl::string_view memory = self->MemoryBytes(isolate);
  const std::string& input = self->call_->input;
  if (!InGuestMemory(memory, pointer, input.size())) {
    return self->FailCall(
        isolate, absl::AbortedError(absl::StrCat("__load_input: destination ", pointer, " + ",
                                                 input.size(), " bytes runs past the end of the ",
                                                 memory.size(), "-byte memory")));
  }
  std::memcpy(const_cast<char*>(memory.data()) + pointer, input.data(), input.size());
}

void HostAbi::GetLen(const v8::FunctionCallbackInfo<v8::Value>& info) {
  HostAbi* self = Self(info);
  v8::Isolate* isolate = info.GetIsolate();
  if (self->call_ == nullptr)
    return self->FailCall(isolate, absl::AbortedError("__get_len outside a call"));
  absl::StatusOr<absl::string_view> key =
      ReadLengthPrefixed(self->MemoryBytes(isolate), ArgU32(info, 0));
  if (!key.ok()) {
    return self->FailCall(
        isolate, absl::AbortedError(absl::StrCat("__get_len: key ", key.status().message())));
  }
  absl::StatusOr<std::optional<std::string>> value = self->Lookup(*key);
  if (!value.ok()) {
    return self->FailCall(
        isolate, absl::UnavailableError(absl::StrCat(
                     "__get_len: reading state failed on the host: ", value.status().ToString())));
  }
  self->last_key_.assign(key->data(), key->size());
  self->last_value_ = *std::move(value);
  self->last_valid_ = true;
  info.GetReturnValue().Set(
      static_cast<int32_t>(self->last_value_.has_value() ? self->last_value_->size() : 0));
}

void HostAbi::Get(const v8::FunctionCallbackInfo<v8::Value>& info) {
  HostAbi* self = Self(info);
  v8::Isolate* isolate = info.GetIsolate();
  if (self->call_ == nullptr)
    return self->FailCall(isolate, absl::AbortedError("__get outside a call"));
  absl::string_view memory = self->MemoryBytes(isolate);
  absl::StatusOr<absl::string_view> key = ReadLengthPrefixed(memory, ArgU32(info, 0));
  if (!key.ok()) {
    return self->FailCall(isolate,
                          absl::AbortedError(absl::StrCat("__get: key ", key.status().message())));
  }
  if (!self->last_valid_ || self->last_key_ != *key) {
    absl::StatusOr<std::optional<std::string>> value = self->Lookup(*key);
    if (!value.ok()) {
      return self->FailCall(
          isolate, absl::UnavailableError(absl::StrCat("__get: reading state failed on the host: ",
                                                       value.status().ToString())));
    }
    self->last_key_.assign(key->data(), key->size());
    self->last_value_ = *std::move(value);
    self->last_valid_ = true;
  }
  // An absent value copies nothing, but its destination is checked all the same.
  absl::string_view value =
      self->last_value_.has_value() ? *self->last_value_ : absl::string_view();
  uint32_t destination = ArgU32(info, 1);
  if (!InGuestMemory(memory, destination, value.size())) {
    return self->FailCall(
        isolate, absl::AbortedError(absl::StrCat("__get: destination ", destination, " + ",
                                                 value.size(), " bytes runs past the end of the ",
                                                 memory.size(), "-byte memory")));
  }
  if (!value.empty())
    std::memcpy(const_cast<char*>(memory.data()) + destination, value.data(), value.size());
}

void HostAbi::Flush(const v8::FunctionCallbackInfo<v8::Value>& info) {
  HostAbi* self = Self(info);
  v8::Isolate* isolate = info.GetIsolate();
  HostCallState* call = self->call_;
  if (call == nullptr) return self->FailCall(isolate, absl::AbortedError("__flush outside a call"));
  // The pointer is checked in every kind of call: a bad pointer always fails the call.
  absl::StatusOr<absl::string_view> message =
      ReadLengthPrefixed(self->MemoryBytes(isolate), ArgU32(info, 0));
  if (!message.ok()) {
    return self->FailCall(
        isolate, absl::AbortedError(absl::StrCat("__flush: ", message.status().message())));
  }
  switch (call->kind) {
    case CallKind::kView:
      return;  // A flush in a view is ignored (docs/design.md, "Host ABI").
    case CallKind::kInit:
    case CallKind::kInitialize:
      return self->FailCall(isolate, absl::AbortedError(absl::StrCat(
                                         "__flush in ", CallKindName(call->kind),
                                         ": init calls see an empty store and cannot write")));
    case CallKind::kBlock:
      break;
  }
  std::vector<std::pair<absl::string_view, absl::string_view>> pairs;
  if (absl::Status decoded = DecodeKeyValueFlush(*message, pairs); !decoded.ok()) {
    return self->FailCall(isolate,
                          absl::AbortedError(absl::StrCat("__flush: ", decoded.message())));
  }
  for (const auto& [key, value] : pairs) {
    call->write_bytes += key.size() + value.size();
    if (call->write_bytes > call->limits.max_block_write_bytes) {
      return self->FailCall(isolate, absl::AbortedError(absl::StrCat(
                                         "__flush: the block's writes exceed the limit of ",
                                         call->limits.max_block_write_bytes, " bytes")));
    }
    call->writes.insert_or_assign(std::string(key), std::string(value));
  }
  call->flushed = true;
  self->last_valid_ = false;  // A cached read may now be stale.
}

void HostAbi::Log(const v8::FunctionCallbackInfo<v8::Value>& info) {
  HostAbi* self = Self(info);
  v8::Isolate* isolate = info.GetIsolate();
  HostCallState* call = self->call_;
  if (call == nullptr) return self->FailCall(isolate, absl::AbortedError("__log outside a call"));
  absl::StatusOr<absl::string_view> text =
      ReadLengthPrefixed(self->MemoryBytes(isolate), ArgU32(info, 0));
  if (!text.ok()) {
    return self->FailCall(isolate,
                          absl::AbortedError(absl::StrCat("__log: ", text.status().message())));
  }
  if (call->log_sink == nullptr) return;
  if (call->log_lines >= call->limits.max_log_lines) {
    ++call->dropped_log_lines;
    return;
  }
  ++call->log_lines;
  call->log_sink->OnGuestLog(call->instance_label,
                             text->substr(0, call->limits.max_log_line_bytes));
}

void HostAbi::Abort(const v8::FunctionCallbackInfo<v8::Value>& info) {
  HostAbi* self = Self(info);
  v8::Isolate* isolate = info.GetIsolate();
  absl::string_view memory = self->MemoryBytes(isolate);
  std::string message = DecodeGuestString(memory, ArgU32(info, 0));
  std::string file = DecodeGuestString(memory, ArgU32(info, 1));
  self->FailCall(
      isolate,
      util::CausedError(absl::StatusCode::kAborted, util::FailureCause::kGuestAbort,
                        absl::StrCat("guest aborted: ", message.empty() ? "(no message)" : message,
                                     " at ", file.empty() ? "(unknown file)" : file, ":",
                                     ArgU32(info, 2), ":", ArgU32(info, 3))));
}

}  // namespace tandem::engine
