// The read side of committed state, as the engine sees it while a guest runs.
// It must never know who implements it: the store implements it, the proxy wires the two together.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem::engine {

// Reads committed values at a fixed height. The engine calls it from the instance's own thread
// while a guest's `__get_len` / `__get` runs.
//
// Threading: an implementation is called from one instance thread at a time per call, but one
// reader may serve several instances in turn; it must be safe to call from any thread.
class StateReader {
 public:
  virtual ~StateReader() = default;

  // Returns the value that `key` held at `height` (the latest write at or below `height`),
  // std::nullopt when the key was never written or was deleted (an empty value is a delete).
  // Errors are the host's (I/O, corruption): the engine fails the call as non-deterministic.
  virtual absl::StatusOr<std::optional<std::string>> Get(absl::string_view key,
                                                         uint32_t height) const = 0;
};

}  // namespace tandem::engine
