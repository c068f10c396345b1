// The server's log: one line per event on a stream (stderr in tandemd), each with a UTC timestamp
// and a severity. It also receives the guests' `__log` lines. It never decides anything.
#pragma once

#include <cstdio>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/call_types.h"
#include "util/mutex.h"

namespace tandem::server {

// Writes lines like `2024-05-01T12:00:00.123456Z I listening on 127.0.0.1:50051`.
// Line breaks and other control characters inside a message are escaped, so every event is one
// line whatever a guest logs.
//
// Threading: every method is thread-safe; lines from concurrent callers never interleave.
class Logger final : public engine::GuestLogSink {
 public:
  enum class Severity { kInfo, kWarning, kError };

  // REQUIRES: `out` stays open for the logger's lifetime; it is not closed by the logger.
  explicit Logger(std::FILE* out) : out_(out) {}

  void Info(absl::string_view message) { Write(Severity::kInfo, message); }
  void Warning(absl::string_view message) { Write(Severity::kWarning, message); }
  void Error(absl::string_view message) { Write(Severity::kError, message); }
  void Write(Severity severity, absl::string_view message) ABSL_LOCKS_EXCLUDED(mu_);

  // engine::GuestLogSink: `guest <instance>: <text>` at INFO.
  void OnGuestLog(absl::string_view instance, absl::string_view text) override;

  // The line Write would print at `time`, without the trailing newline. Exposed for tests.
  static std::string FormatLine(absl::Time time, Severity severity, absl::string_view message);

 private:
  util::Mutex mu_;
  std::FILE* const out_ ABSL_PT_GUARDED_BY(mu_);
};

}  // namespace tandem::server
