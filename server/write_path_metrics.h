// The database's write-path metrics (stalls, WAL syncs), built from the store's figures at each
// scrape. Pure conversion: it reads nothing itself and keeps no state.
#pragma once

#include <vector>

#include "prometheus/metric_family.h"
#include "store/block_store.h"

namespace tandem::server {

// The families for `stats` (store::BlockStore::ReadWritePathStats):
//   tandem_db_write_stall_seconds_total             counter: writers held back by RocksDB.
//   tandem_db_writes_stopped                        gauge: 1 while RocksDB stops writes.
//   tandem_db_delayed_write_rate_bytes_per_second   gauge: the throttled rate; 0 when not delayed.
//   tandem_db_wal_sync_seconds                      summary: WAL fsyncs, _count and _sum, and
//                                                   quantiles 0.5 and 0.99 since the store opened.
std::vector<prometheus::MetricFamily> WritePathMetricFamilies(const store::WritePathStats& stats);

}  // namespace tandem::server
