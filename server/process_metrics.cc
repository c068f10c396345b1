// Reads /proc/self for the process_* metrics. Each call opens and parses a handful of small
// files (a few µs); nothing is cached.
#include "server/process_metrics.h"

#include <sys/resource.h>

#include <filesystem>
#include <system_error>

#include "absl/status/status.h"

namespace tandem::server {

absl::StatusOr<ProcessSample> ReadProcessSample() {
  absl::StatusOr<util::ProcStat> stat = util::ReadProcStat("self");
  if (!stat.ok()) return stat.status();
  ProcessSample sample;
  static_cast<util::ProcStat&>(sample) = *stat;

  std::error_code error;
  uint64_t fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", error), end; !error && it != end;
       it.increment(error)) {
    ++fds;
  }
  if (error) return absl::UnavailableError("cannot list /proc/self/fd: " + error.message());
  // The listing holds one descriptor of its own while it runs.
  sample.open_fds = fds > 0 ? fds - 1 : 0;

  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) sample.max_fds = limit.rlim_cur;
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
