// tandemd's host memory budget: the memory cgroup's limit (v1 or v2), else physical memory, less
// measured headroom and RocksDB's configured caches. It reads /proc and /sys, never sets limits.
#pragma once

#include <cstdint>
#include <string>

namespace tandem::server {

// Memory the process needs besides guest linear memory and RocksDB's caches (which are subtracted
// by their configured size, DatabaseMemory): the binary and libnode, V8's isolates and heaps (the
// active, the standby pool, the kept instance), gRPC's buffers, RocksDB outside its caches.
// Measured on tandemd with --db_block_cache=1MiB --db_write_buffers=16MiB (docs/operations.md,
// "Host memory budget"): 60 MiB resident when idle (46 MiB of it the mapped binary and libnode),
// at most 103 MiB while it indexed 32 real Bitcoin blocks of up to 1.4 MB, at most 109 MiB (8 MiB
// of it guest memory) for 20 blocks of 4 MB, Bitcoin's largest. The rest is for concurrent views.
inline constexpr uint64_t kHostMemoryHeadroomBytes = 128ull << 20;

// RocksDB's memory as configured (--db_block_cache, --db_write_buffers): upper bounds that fill
// with use, so the budget leaves room for all of it from the start.
struct DatabaseMemory {
  uint64_t block_cache_bytes = 0;
  uint64_t write_buffer_bytes = 0;
  uint64_t total_bytes() const { return block_cache_bytes + write_buffer_bytes; }
};

// Where the memory limit is read. Tests point these at files of their own.
struct MemoryLimitSources {
  std::string proc_self_cgroup = "/proc/self/cgroup";
  std::string proc_self_mountinfo = "/proc/self/mountinfo";
  // The machine's memory; 0 reads it from sysconf.
  uint64_t physical_memory_bytes = 0;
};

// The memory the process may use, and where that figure came from.
struct MemoryLimit {
  uint64_t bytes = 0;
  // "cgroup v1 memory.limit_in_bytes of /sys/fs/cgroup/memory/x", "cgroup v2 memory.max of
  // /sys/fs/cgroup/x", or "physical memory" (no cgroup limit below it, or no cgroup found).
  std::string source;
};

// The tightest memory cgroup limit on the process's own cgroup and its ancestors (v1
// memory.limit_in_bytes, v2 memory.max), when it is below physical memory; else physical memory.
// Unreadable or absent cgroup files count as no limit.
MemoryLimit DiscoverMemoryLimit(const MemoryLimitSources& sources = {});

struct HostMemoryBudget {
  uint64_t budget_bytes = 0;
  // "--host_memory_budget", or the limit's source.
  std::string source;
  bool from_flag = false;
  // What the default budget is derived from: the limit, less `headroom_bytes`, less `database`.
  // Set also when the flag gave the budget, so that the start-up line can compare the two.
  MemoryLimit limit;
  uint64_t headroom_bytes = 0;
  DatabaseMemory database;
  // What the limit leaves for guests: the budget unless the flag gave it.
  uint64_t derived_bytes = 0;
};

// `flag_bytes` (--host_memory_budget) when non-zero; else `limit` less kHostMemoryHeadroomBytes
// less `database`'s caches (0 when they do not fit in the limit).
HostMemoryBudget ResolveHostMemoryBudget(uint64_t flag_bytes, const MemoryLimit& limit,
                                         const DatabaseMemory& database);

// The start-up line: the cap, the budget and what it was derived from (the limit, the headroom and
// RocksDB's caches with their flags), and how many instances fit at the full cap. `warning` is set
// when not even one does (blocks needing more fail with UNAVAILABLE; the line names the flags that
// leave guests more), or when --host_memory_budget promises more than the limit leaves.
struct BudgetReport {
  std::string line;
  bool warning = false;
};
BudgetReport DescribeHostMemoryBudget(const HostMemoryBudget& budget, uint64_t memory_cap_bytes);

}  // namespace tandem::server
