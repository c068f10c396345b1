// The host side of the guest ABI (Metashrew-compatible): the seven `env` functions a guest imports.
// Every pointer a guest passes is bounds-checked against its memory; nothing here touches storage
// except through the StateReader of the current call.
#pragma once

#include <v8.h>

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "engine/call_types.h"
#include "engine/state_reader.h"

namespace tandem::engine {

enum class CallKind {
  kInitialize,  // `_initialize` at instantiation: no input, empty store, no writes.
  kBlock,       // `_start`: reads at height - 1 plus own flushes, writes collected.
  kView,        // a view: reads at the height, flushes ignored.
  kInit,        // an init call: empty store, flushes refused.
};

struct HostCallLimits {
  uint64_t max_block_write_bytes = 1ull << 30;
  int max_log_lines = 100;
  size_t max_log_line_bytes = 4096;
};

// What the host functions need for one guest call, and what they leave behind.
// Threading: lives on the instance thread's stack for the duration of one call.
struct HostCallState {
  CallKind kind = CallKind::kView;
  // `u32 LE height ‖ payload`, as __load_input writes it.
  std::string input;
  // Null when the call sees an empty store (init calls, `_initialize`, a block at height 0).
  const StateReader* reader = nullptr;
  uint32_t read_height = 0;
  HostCallLimits limits;
  GuestLogSink* log_sink = nullptr;
  absl::string_view instance_label;

  // Filled by the host functions.
  BlockWrites writes;  // Blocks only.
  uint64_t write_bytes = 0;
  bool flushed = false;
  int log_lines = 0;
  int dropped_log_lines = 0;
  // The first failure a host function raised; the guest was stopped by an exception because of it.
  absl::Status failure;
};

// The `env` import object of one worker's runtime, serving whichever instance it hosts now. The
// memory is attached after instantiation (imports exist before the memory they will read) and
// detached at retirement; the call state is set for the duration of each call.
//
// Threading: used only on its worker's thread, inside that isolate.
class HostAbi {
 public:
  HostAbi() = default;
  HostAbi(const HostAbi&) = delete;
  HostAbi& operator=(const HostAbi&) = delete;

  // Builds the `env` object whose functions call back into this HostAbi.
  // REQUIRES: `context` is entered; this HostAbi outlives every call into the guest that imports
  // the object (the functions keep a raw pointer to it).
  v8::Local<v8::Object> MakeImportObject(v8::Isolate* isolate, v8::Local<v8::Context> context);

  void AttachMemory(v8::Isolate* isolate, v8::Local<v8::WasmMemoryObject> memory);
  // The guest's memory as it is now (a grow detaches the previous buffer, so never cache it).
  absl::string_view MemoryBytes(v8::Isolate* isolate) const;

  // Sets the state the host functions read and fill; null between calls (host functions then
  // fail the guest).
  void set_call(HostCallState* call) {
    call_ = call;
    last_valid_ = false;
  }

 private:
  static void HostLen(const v8::FunctionCallbackInfo<v8::Value>& info);
  static void LoadInput(const v8::FunctionCallbackInfo<v8::Value>& info);
  static void GetLen(const v8::FunctionCallbackInfo<v8::Value>& info);
  static void Get(const v8::FunctionCallbackInfo<v8::Value>& info);
  static void Flush(const v8::FunctionCallbackInfo<v8::Value>& info);
  static void Log(const v8::FunctionCallbackInfo<v8::Value>& info);
  static void Abort(const v8::FunctionCallbackInfo<v8::Value>& info);

  // Looks `key` up as the current call sees it: own writes first, then the reader.
  absl::StatusOr<std::optional<std::string>> Lookup(absl::string_view key);
  // Records `cause` as the call's failure (the first one wins) and throws to stop the guest.
  void FailCall(v8::Isolate* isolate, absl::Status cause);

  v8::Global<v8::WasmMemoryObject> memory_;
  HostCallState* call_ = nullptr;
  // __get_len followed by __get reads the same key twice; the second read is served from here.
  std::string last_key_;
  std::optional<std::string> last_value_;
  bool last_valid_ = false;
};

}  // namespace tandem::engine
