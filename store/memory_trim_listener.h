// Hands the memory RocksDB frees after a flush or a compaction back to the operating system.
#pragma once

#include "rocksdb/listener.h"

namespace tandem::store {

// glibc keeps freed memory in its per-thread arenas, and its dynamic mmap threshold soon serves
// even multi-megabyte blocks from them. A flush frees a whole memtable (arena blocks and the hash
// buckets, megabytes), a compaction its buffers; each later allocation that lands above the freed
// space pins it, so without a trim the process's RSS creeps up by megabytes over 100,000 blocks
// though nothing is live (measured with the leaky guest under `block`: mean RSS over the last
// 10,000 of 100,000 blocks 13% above that over blocks 10,001-20,000 without this listener, 3.5%
// with it; see benchmarks/README.md). malloc_trim(0) returns every free page of every arena.
// RocksDB may free a flushed memtable only after notifying its listeners; the next flush or
// compaction's trim returns it then, so what stays pinned is at most one background job's.
//
// Threading: RocksDB calls it on its background threads, one event at a time per job; malloc_trim
// is thread-safe.
class MemoryTrimListener final : public rocksdb::EventListener {
 public:
  void OnFlushCompleted(rocksdb::DB* db, const rocksdb::FlushJobInfo& info) override;
  void OnCompactionCompleted(rocksdb::DB* db, const rocksdb::CompactionJobInfo& info) override;
};

}  // namespace tandem::store
