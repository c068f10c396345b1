// Reads /proc/self for the process_* metrics. Each call opens and parses a handful of small
// files (a few µs); nothing is cached.
#include "server/process_metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace tandem::server {
namespace {

absl::StatusOr<std::string> ReadFile(const char* path) {
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

absl::StatusOr<ProcessSample> ParseProcStat(const std::string& stat_text,
                                            long clock_ticks_per_second, long page_bytes,
                                            double boot_time_seconds) {
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
  ProcessSample sample;
  const double ticks = static_cast<double>(clock_ticks_per_second);
  sample.cpu_seconds = static_cast<double>(utime + stime) / ticks;
  sample.threads = threads;
  sample.start_time_seconds = boot_time_seconds + static_cast<double>(start_ticks) / ticks;
  sample.virtual_bytes = vsize;
  sample.resident_bytes = rss_pages * static_cast<uint64_t>(page_bytes);
  return sample;
}

absl::StatusOr<ProcessSample> ReadProcessSample() {
  absl::StatusOr<std::string> stat = ReadFile("/proc/self/stat");
  if (!stat.ok()) return stat.status();
  absl::StatusOr<std::string> system_stat = ReadFile("/proc/stat");
  if (!system_stat.ok()) return system_stat.status();
  absl::StatusOr<double> boot_time = ParseBootTime(*system_stat);
  if (!boot_time.ok()) return boot_time.status();
  absl::StatusOr<ProcessSample> sample =
      ParseProcStat(*stat, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE), *boot_time);
  if (!sample.ok()) return sample.status();

  std::error_code error;
  uint64_t fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", error), end; !error && it != end;
       it.increment(error)) {
    ++fds;
  }
  if (error) return absl::UnavailableError("cannot list /proc/self/fd: " + error.message());
  // The listing holds one descriptor of its own while it runs.
  sample->open_fds = fds > 0 ? fds - 1 : 0;

  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) sample->max_fds = limit.rlim_cur;
  return sample;
}

prometheus::MetricFamily SingleSampleFamily(const char* name, const char* help,
                                            prometheus::MetricType type, double value) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(metric);
  return family;
}

std::vector<prometheus::MetricFamily> ProcessMetricFamilies(const ProcessSample& sample) {
  using prometheus::MetricType;
  return {
      SingleSampleFamily("process_cpu_seconds_total",
                         "Total user and system CPU time spent in seconds.", MetricType::Counter,
                         sample.cpu_seconds),
      SingleSampleFamily("process_resident_memory_bytes", "Resident memory size in bytes.",
                         MetricType::Gauge, static_cast<double>(sample.resident_bytes)),
      SingleSampleFamily("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                         MetricType::Gauge, static_cast<double>(sample.virtual_bytes)),
      SingleSampleFamily("process_open_fds", "Number of open file descriptors.", MetricType::Gauge,
                         static_cast<double>(sample.open_fds)),
      SingleSampleFamily("process_max_fds", "Maximum number of open file descriptors.",
                         MetricType::Gauge, static_cast<double>(sample.max_fds)),
      SingleSampleFamily("process_start_time_seconds",
                         "Start time of the process since unix epoch in seconds.",
                         MetricType::Gauge, sample.start_time_seconds),
      SingleSampleFamily("process_threads", "Number of OS threads in the process.",
                         MetricType::Gauge, static_cast<double>(sample.threads)),
  };
}

}  // namespace tandem::server
