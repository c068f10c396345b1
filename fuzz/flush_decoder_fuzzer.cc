// libFuzzer target: the KeyValueFlush decoder on arbitrary guest bytes. It must never read out of
// bounds, and every pair it returns must lie inside the message.
#include <cstdint>
#include <cstdlib>

#include "engine/key_value_flush.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view message(reinterpret_cast<const char*>(data), size);
  std::vector<std::pair<absl::string_view, absl::string_view>> pairs;
  absl::Status status = tandem::engine::DecodeKeyValueFlush(message, pairs);
  if (!status.ok() && !pairs.empty()) std::abort();  // A refused message leaves pairs alone.
  for (const auto& [key, value] : pairs) {
    for (absl::string_view part : {key, value}) {
      if (part.data() < message.data() ||
          part.data() + part.size() > message.data() + message.size()) {
        std::abort();
      }
    }
  }
  return 0;
}
