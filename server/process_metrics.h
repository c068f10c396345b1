// The standard process_* metrics of Prometheus client libraries, read from /proc/self on demand.
// Linux only; it reads files and never keeps state between reads.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/metric_family.h"
#include "util/proc_stat.h"

namespace tandem::server {

// One reading of the process's resource use: what /proc/self/stat says, and its descriptors.
struct ProcessSample : util::ProcStat {
  uint64_t open_fds = 0;  // Entries of /proc/self/fd.
  uint64_t max_fds = 0;   // RLIMIT_NOFILE's soft limit.
};

// Reads /proc/self/stat with /proc/stat's boot time (util/proc_stat.h), and /proc/self/fd.
// UNAVAILABLE when a file cannot be read (not Linux, no /proc), INVALID_ARGUMENT when one does
// not parse.
absl::StatusOr<ProcessSample> ReadProcessSample();

// A family of one unlabelled sample: a counter or a gauge of `value`.
// REQUIRES: `type` is MetricType::Counter or MetricType::Gauge.
prometheus::MetricFamily SingleSampleFamily(const char* name, const char* help,
                                            prometheus::MetricType type, double value);

// The families client libraries use for `sample`: process_cpu_seconds_total (counter),
// process_resident_memory_bytes, process_virtual_memory_bytes, process_open_fds,
// process_max_fds, process_start_time_seconds, process_threads (gauges).
std::vector<prometheus::MetricFamily> ProcessMetricFamilies(const ProcessSample& sample);

}  // namespace tandem::server
