// The database's write-path metrics: store::WritePathStats as Prometheus families.
// Built anew at each scrape, like the process_* families: RocksDB keeps the counts.
#include "server/write_path_metrics.h"

#include <utility>

#include "server/process_metrics.h"

namespace tandem::server {
namespace {

constexpr double kSecondsPerMicro = 1e-6;

}  // namespace

std::vector<prometheus::MetricFamily> WritePathMetricFamilies(const store::WritePathStats& stats) {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> families = {
      SingleSampleFamily(
          "tandem_db_write_stall_seconds_total",
          "Time writers were delayed or stopped by RocksDB's write controller (flushes or "
          "compactions behind).",
          MetricType::Counter, static_cast<double>(stats.stall_micros) * kSecondsPerMicro),
      SingleSampleFamily("tandem_db_writes_stopped", "1 while RocksDB stops every write.",
                         MetricType::Gauge, stats.writes_stopped ? 1 : 0),
      SingleSampleFamily("tandem_db_delayed_write_rate_bytes_per_second",
                         "The rate RocksDB throttles writers to; 0 while writes are not delayed.",
                         MetricType::Gauge, static_cast<double>(stats.delayed_write_rate)),
  };
  prometheus::MetricFamily wal_sync;
  wal_sync.name = "tandem_db_wal_sync_seconds";
  wal_sync.help =
      "fsyncs of the write-ahead log (one per committed block with --fsync): count, total time, "
      "and quantiles since the database was opened.";
  wal_sync.type = MetricType::Summary;
  prometheus::ClientMetric metric;
  metric.summary.sample_count = stats.wal_syncs;
  metric.summary.sample_sum = static_cast<double>(stats.wal_sync_micros) * kSecondsPerMicro;
  metric.summary.quantile = {{0.5, stats.wal_sync_p50_micros * kSecondsPerMicro},
                             {0.99, stats.wal_sync_p99_micros * kSecondsPerMicro}};
  wal_sync.metric.push_back(std::move(metric));
  families.push_back(std::move(wal_sync));
  return families;
}

}  // namespace tandem::server
