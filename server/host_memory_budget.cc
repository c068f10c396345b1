// tandemd's host memory budget: the memory cgroup's limit (v1 or v2), else physical memory, less
// measured headroom and RocksDB's configured caches. It reads /proc and /sys, never sets limits.
#include "server/host_memory_budget.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace tandem::server {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

std::optional<std::string> ReadText(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

uint64_t PhysicalMemory(const MemoryLimitSources& sources) {
  if (sources.physical_memory_bytes != 0) return sources.physical_memory_bytes;
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return 0;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size);
}

// A memory cgroup the process is in: its folder and the file that holds its limit.
struct CgroupFolder {
  std::filesystem::path mount_point;  // Where the hierarchy is mounted (its top).
  std::filesystem::path folder;       // The process's cgroup inside it.
  const char* limit_file;
  const char* version;
};

// The process's memory cgroup: the v1 `memory` hierarchy when there is one, else v2.
std::optional<CgroupFolder> FindMemoryCgroup(const MemoryLimitSources& sources) {
  const std::optional<std::string> cgroups = ReadText(sources.proc_self_cgroup);
  const std::optional<std::string> mounts = ReadText(sources.proc_self_mountinfo);
  if (!cgroups.has_value() || !mounts.has_value()) return std::nullopt;
  // /proc/self/cgroup: "hierarchy-id:controllers:path"; v1 lists `memory` among the
  // controllers, v2 has the single line "0::path".
  std::optional<std::string> v1_path;
  std::optional<std::string> v2_path;
  for (absl::string_view line : absl::StrSplit(*cgroups, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (fields.size() != 3) continue;
    if (fields[0] == "0" && fields[1].empty()) v2_path = std::string(fields[2]);
    for (absl::string_view controller : absl::StrSplit(fields[1], ',')) {
      if (controller == "memory") v1_path = std::string(fields[2]);
    }
  }
  // /proc/self/mountinfo: "id parent major:minor root mount-point options... - type source
  // super-options".
  for (absl::string_view line : absl::StrSplit(*mounts, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> halves = absl::StrSplit(line, absl::MaxSplits(" - ", 1));
    if (halves.size() != 2) continue;
    std::vector<absl::string_view> mount = absl::StrSplit(halves[0], ' ');
    std::vector<absl::string_view> filesystem = absl::StrSplit(halves[1], ' ');
    if (mount.size() < 5 || filesystem.size() < 3) continue;
    const absl::string_view root = mount[3];
    const absl::string_view mount_point = mount[4];
    const absl::string_view type = filesystem[0];
    std::optional<std::string> path;
    const char* limit_file = nullptr;
    const char* version = nullptr;
    if (type == "cgroup" && v1_path.has_value()) {
      for (absl::string_view option : absl::StrSplit(filesystem[2], ',')) {
        if (option == "memory") {
          path = v1_path;
          limit_file = "memory.limit_in_bytes";
          version = "v1";
        }
      }
    } else if (type == "cgroup2" && v2_path.has_value() && !v1_path.has_value()) {
      path = v2_path;
      limit_file = "memory.max";
      version = "v2";
    }
    if (!path.has_value()) continue;
    // The cgroup path is relative to the hierarchy's root; the mount shows the part below `root`
    // (a container sees its own cgroup as "/").
    absl::string_view relative = *path;
    if (root != "/" && !absl::ConsumePrefix(&relative, root)) relative = "/";
    relative = absl::StripPrefix(relative, "/");
    return CgroupFolder{std::filesystem::path(std::string(mount_point)),
                        std::filesystem::path(std::string(mount_point)) / std::string(relative),
                        limit_file, version};
  }
  return std::nullopt;
}

// The limit in `file`: a byte count, or "max" (v2) for none.
std::optional<uint64_t> ReadLimit(const std::filesystem::path& file) {
  std::optional<std::string> text = ReadText(file);
  if (!text.has_value()) return std::nullopt;
  uint64_t bytes = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &bytes)) return std::nullopt;
  return bytes;
}

}  // namespace

MemoryLimit DiscoverMemoryLimit(const MemoryLimitSources& sources) {
  MemoryLimit limit{PhysicalMemory(sources), "physical memory"};
  std::optional<CgroupFolder> cgroup = FindMemoryCgroup(sources);
  if (!cgroup.has_value()) return limit;
  // A parent's limit binds its children too: the tightest one on the way up counts.
  std::filesystem::path folder = cgroup->folder;
  while (true) {
    std::optional<uint64_t> bytes = ReadLimit(folder / cgroup->limit_file);
    if (bytes.has_value() && *bytes < limit.bytes) {
      limit.bytes = *bytes;
      limit.source = absl::StrCat("cgroup ", cgroup->version, " ", cgroup->limit_file, " of ",
                                  folder.string());
    }
    if (folder == cgroup->mount_point || !folder.has_relative_path() ||
        folder.parent_path() == folder) {
      break;
    }
    folder = folder.parent_path();
  }
  return limit;
}

HostMemoryBudget ResolveHostMemoryBudget(uint64_t flag_bytes, const MemoryLimit& limit,
                                         const DatabaseMemory& database) {
  HostMemoryBudget budget;
  budget.limit = limit;
  budget.headroom_bytes = kHostMemoryHeadroomBytes;
  budget.database = database;
  const uint64_t reserved = kHostMemoryHeadroomBytes + database.total_bytes();
  budget.derived_bytes = limit.bytes > reserved ? limit.bytes - reserved : 0;
  if (flag_bytes != 0) {
    budget.budget_bytes = flag_bytes;
    budget.source = "--host_memory_budget";
    budget.from_flag = true;
  } else {
    budget.budget_bytes = budget.derived_bytes;
    budget.source = limit.source;
  }
  return budget;
}

BudgetReport DescribeHostMemoryBudget(const HostMemoryBudget& budget, uint64_t memory_cap_bytes) {
  const uint64_t fit = memory_cap_bytes == 0 ? 0 : budget.budget_bytes / memory_cap_bytes;
  // "400 MiB less 128 MiB headroom for V8 and gRPC, less RocksDB's 256 MiB --db_block_cache and
  // 256 MiB --db_write_buffers": every figure the default is made of, and the flags behind them.
  const std::string derivation =
      absl::StrCat(budget.limit.bytes / kMiB, " MiB less ", budget.headroom_bytes / kMiB,
                   " MiB headroom for V8 and gRPC, less RocksDB's ",
                   budget.database.block_cache_bytes / kMiB, " MiB --db_block_cache and ",
                   budget.database.write_buffer_bytes / kMiB, " MiB --db_write_buffers");
  BudgetReport report;
  report.line = absl::StrCat("host memory budget ", budget.budget_bytes / kMiB,
                             " MiB for guest memory (", budget.source);
  if (!budget.from_flag) absl::StrAppend(&report.line, ": ", derivation);
  absl::StrAppend(&report.line, "); memory cap ", memory_cap_bytes / kMiB, " MiB per instance; ",
                  fit, fit == 1 ? " instance fits" : " instances fit", " at the full cap");
  if (budget.from_flag && budget.budget_bytes > budget.derived_bytes) {
    report.warning = true;
    absl::StrAppend(&report.line, ": --host_memory_budget is more than the ",
                    budget.derived_bytes / kMiB, " MiB that ", budget.limit.source, " leaves (",
                    derivation,
                    "); the kernel may kill the process before the budget refuses a commit");
  } else if (budget.budget_bytes == 0) {
    report.warning = true;
    absl::StrAppend(&report.line,
                    ": nothing is left for guest memory, so every instance is refused with "
                    "UNAVAILABLE until RocksDB's caches shrink (--db_block_cache ",
                    budget.database.block_cache_bytes / kMiB, " MiB, --db_write_buffers ",
                    budget.database.write_buffer_bytes / kMiB, " MiB) or the memory limit grows");
  } else if (fit == 0) {
    report.warning = true;
    absl::StrAppend(&report.line,
                    ": not even one instance can grow to the cap; blocks, views and warm-ups that "
                    "need more than the budget fail with UNAVAILABLE (raise the memory limit, "
                    "lower --memory_limit");
    if (!budget.from_flag) {
      absl::StrAppend(&report.line, ", or shrink RocksDB's caches: --db_block_cache ",
                      budget.database.block_cache_bytes / kMiB, " MiB and --db_write_buffers ",
                      budget.database.write_buffer_bytes / kMiB, " MiB");
    }
    absl::StrAppend(&report.line, ")");
  }
  return report;
}

}  // namespace tandem::server
