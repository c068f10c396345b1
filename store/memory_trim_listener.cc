// Hands the memory RocksDB frees after a flush or a compaction back to the operating system.
#include "store/memory_trim_listener.h"

#include <malloc.h>

namespace tandem::store {

void MemoryTrimListener::OnFlushCompleted(rocksdb::DB* /*db*/,
                                          const rocksdb::FlushJobInfo& /*info*/) {
  malloc_trim(0);
}

void MemoryTrimListener::OnCompactionCompleted(rocksdb::DB* /*db*/,
                                               const rocksdb::CompactionJobInfo& /*info*/) {
  malloc_trim(0);
}

}  // namespace tandem::store
