// What Linux's /proc/<pid>/stat says of a process: its CPU time, memory, start time and threads.
// tandemd's process_* metrics read it for itself; tandem-bench reads it for the tandemd it runs.
// Linux only; nothing is cached between reads.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem::util {

struct ProcStat {
  double cpu_seconds = 0;         // User + system CPU time.
  uint64_t resident_bytes = 0;    // Resident set size.
  uint64_t virtual_bytes = 0;     // Virtual memory size.
  double start_time_seconds = 0;  // Since the Unix epoch.
  uint64_t threads = 0;           // Threads of the process.
};

// Parses the text of /proc/<pid>/stat (everything after the command's closing parenthesis is
// space-separated). `clock_ticks_per_second` and `page_bytes` convert the kernel's units;
// `boot_time_seconds` (the `btime` of /proc/stat) anchors the start time. INVALID_ARGUMENT when
// the text does not have the fields of a stat line.
absl::StatusOr<ProcStat> ParseProcStat(const std::string& stat_text, long clock_ticks_per_second,
                                       long page_bytes, double boot_time_seconds);

// Reads /proc/<pid>/stat (`pid` "self" for this process) and /proc/stat's boot time, in this
// machine's units. UNAVAILABLE when a file cannot be read (no such process, not Linux),
// INVALID_ARGUMENT when one does not parse.
absl::StatusOr<ProcStat> ReadProcStat(absl::string_view pid);

}  // namespace tandem::util
