// tandemd's host memory budget: what the process's memory cgroup (v1 or v2) allows, else the
// machine's physical memory, less measured headroom. It reads /proc and /sys; it never sets limits.
#pragma once

#include <cstdint>
#include <string>

namespace tandem::server {

// Memory the process needs besides guest linear memory, measured on tandemd serving the Bitcoin
// indexer and memory_stress (docs/operations.md, "Host memory budget"): the binary and libnode
// (~60 MiB resident), the isolates of the active instance, the standby pool and the kept
// instances (~8 MiB each), gRPC and RocksDB with small working sets.
inline constexpr uint64_t kHostMemoryHeadroomBytes = 160ull << 20;

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
  // The limit it was derived from (0 when --host_memory_budget gave the budget itself).
  uint64_t limit_bytes = 0;
  uint64_t headroom_bytes = 0;
  // "--host_memory_budget", or the limit's source.
  std::string source;
};

// `flag_bytes` (--host_memory_budget) when non-zero; else `limit` less kHostMemoryHeadroomBytes
// (0 when the limit is below the headroom).
HostMemoryBudget ResolveHostMemoryBudget(uint64_t flag_bytes, const MemoryLimit& limit);

// The start-up line: the cap, the budget and its source, and how many instances fit at the full
// cap. `warning` is set when not even one does (blocks needing more fail with UNAVAILABLE).
struct BudgetReport {
  std::string line;
  bool warning = false;
};
BudgetReport DescribeHostMemoryBudget(const HostMemoryBudget& budget, uint64_t memory_cap_bytes);

}  // namespace tandem::server
