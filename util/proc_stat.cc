#include "util/proc_stat.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace tandem::util {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::UnavailableError(absl::StrCat("cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The `btime` line of /proc/stat: boot time in seconds since the epoch.
absl::StatusOr<double> ParseBootTime(const std::string& proc_stat) {
  for (absl::string_view line : absl::StrSplit(proc_stat, '\n')) {
    if (!absl::ConsumePrefix(&line, "btime ")) continue;
    double seconds = 0;
    if (absl::SimpleAtod(line, &seconds)) return seconds;
  }
  return absl::InvalidArgumentError("/proc/stat has no btime line");
}

}  // namespace

absl::StatusOr<ProcStat> ParseProcStat(const std::string& stat_text, long clock_ticks_per_second,
                                       long page_bytes, double boot_time_seconds) {
  // The command (field 2) is in parentheses and may itself hold spaces and parentheses: the
  // fields after it start after the last ')'.
  size_t close = stat_text.rfind(')');
  if (close == std::string::npos) {
    return absl::InvalidArgumentError("process stat line has no command in parentheses");
  }
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(stat_text).substr(close + 1), ' ', absl::SkipEmpty());
  // fields[0] is field 3 (state); field N of proc(5) is fields[N - 3].
  auto field = [&](int n, uint64_t* value) {
    return static_cast<size_t>(n - 3) < fields.size() &&
           absl::SimpleAtoi(absl::StripAsciiWhitespace(fields[n - 3]), value);
  };
  uint64_t utime = 0, stime = 0, threads = 0, start_ticks = 0, vsize = 0, rss_pages = 0;
  if (!field(14, &utime) || !field(15, &stime) || !field(20, &threads) ||
      !field(22, &start_ticks) || !field(23, &vsize) || !field(24, &rss_pages)) {
    return absl::InvalidArgumentError("process stat line lacks fields 14..24");
  }
  if (clock_ticks_per_second <= 0 || page_bytes <= 0) {
    return absl::InvalidArgumentError("clock ticks and page size must be positive");
  }
  ProcStat stat;
  const double ticks = static_cast<double>(clock_ticks_per_second);
  stat.cpu_seconds = static_cast<double>(utime + stime) / ticks;
  stat.threads = threads;
  stat.start_time_seconds = boot_time_seconds + static_cast<double>(start_ticks) / ticks;
  stat.virtual_bytes = vsize;
  stat.resident_bytes = rss_pages * static_cast<uint64_t>(page_bytes);
  return stat;
}

absl::StatusOr<ProcStat> ReadProcStat(absl::string_view pid) {
  absl::StatusOr<std::string> stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat.ok()) return stat.status();
  absl::StatusOr<std::string> system_stat = ReadFile("/proc/stat");
  if (!system_stat.ok()) return system_stat.status();
  absl::StatusOr<double> boot_time = ParseBootTime(*system_stat);
  if (!boot_time.ok()) return boot_time.status();
  return ParseProcStat(*stat, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE), *boot_time);
}

}  // namespace tandem::util
