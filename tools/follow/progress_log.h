// tandem-follow's progress lines for operators: one line per event, with a UTC timestamp, on an
// ostream (stderr in production, so journald and pipes keep them in order). Header-only.
#pragma once

#include <ostream>

#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "util/mutex.h"

namespace tandem::follow {

// Threading: thread-safe; lines from several threads never interleave.
class ProgressLog {
 public:
  explicit ProgressLog(std::ostream& out) : out_(out) {}

  void Line(absl::string_view text) ABSL_LOCKS_EXCLUDED(mu_) {
    util::MutexLock lock(&mu_);
    out_ << absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone())
         << " tandem-follow: " << text << std::endl;  // Flushed: a line is read as it happens.
  }

 private:
  util::Mutex mu_;
  std::ostream& out_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem::follow
