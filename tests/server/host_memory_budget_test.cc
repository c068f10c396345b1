// Tests where tandemd's host memory budget comes from: cgroup v1 and v2 files laid out as the
// kernel shows them (in a temporary folder), the explicit flag, and the start-up line.
#include "server/host_memory_budget.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem::server {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kPhysical = 24ull << 30;

class HostMemoryBudgetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            absl::StrCat("tandem-budget-", getpid(), "-",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
    sources_.proc_self_cgroup = (root_ / "cgroup").string();
    sources_.proc_self_mountinfo = (root_ / "mountinfo").string();
    sources_.physical_memory_bytes = kPhysical;
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  void Write(const std::filesystem::path& path, const std::string& text) {
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << text;
  }

  std::filesystem::path root_;
  MemoryLimitSources sources_;
};

TEST_F(HostMemoryBudgetTest, ReadsTheCgroupV1LimitOfTheProcesssOwnCgroup) {
  const std::filesystem::path memory = root_ / "sys/fs/cgroup/memory";
  Write(root_ / "cgroup", "4:memory:/process_api/abc\n3:cpuset:/\n0::/\n");
  Write(root_ / "mountinfo",
        absl::StrCat("35 31 0:32 / ", memory.string(),
                     " rw,relatime - cgroup cgroup rw,memory\n41 31 0:38 / /sys/fs/cgroup/unified "
                     "rw,relatime - cgroup2 cgroup2 rw\n"));
  Write(memory / "memory.limit_in_bytes", "9223372036854771712\n");
  Write(memory / "process_api/memory.limit_in_bytes", "9223372036854771712\n");
  Write(memory / "process_api/abc/memory.limit_in_bytes", "419430400\n");
  const MemoryLimit limit = DiscoverMemoryLimit(sources_);
  EXPECT_EQ(limit.bytes, 400 * kMiB);
  EXPECT_THAT(limit.source, HasSubstr("cgroup v1 memory.limit_in_bytes"));
  EXPECT_THAT(limit.source, HasSubstr("process_api/abc"));
}

TEST_F(HostMemoryBudgetTest, AParentsTighterLimitBindsTheChild) {
  const std::filesystem::path memory = root_ / "memory";
  Write(root_ / "cgroup", "4:memory:/parent/child\n");
  Write(root_ / "mountinfo",
        absl::StrCat("35 31 0:32 / ", memory.string(), " rw - cgroup cgroup rw,memory\n"));
  Write(memory / "parent/memory.limit_in_bytes", "268435456\n");
  Write(memory / "parent/child/memory.limit_in_bytes", "1073741824\n");
  EXPECT_EQ(DiscoverMemoryLimit(sources_).bytes, 256 * kMiB);
}

TEST_F(HostMemoryBudgetTest, ReadsCgroupV2MemoryMaxAndTreatsMaxAsNoLimit) {
  const std::filesystem::path unified = root_ / "unified";
  Write(root_ / "cgroup", "0::/service\n");
  Write(root_ / "mountinfo",
        absl::StrCat("41 31 0:38 / ", unified.string(), " rw - cgroup2 cgroup2 rw\n"));
  Write(unified / "service/memory.max", "536870912\n");
  MemoryLimit limit = DiscoverMemoryLimit(sources_);
  EXPECT_EQ(limit.bytes, 512 * kMiB);
  EXPECT_THAT(limit.source, HasSubstr("cgroup v2 memory.max"));

  Write(unified / "service/memory.max", "max\n");
  limit = DiscoverMemoryLimit(sources_);
  EXPECT_EQ(limit.bytes, kPhysical);
  EXPECT_EQ(limit.source, "physical memory");
}

TEST_F(HostMemoryBudgetTest, AContainerSeesItsOwnCgroupAsTheMountRoot) {
  // With a cgroup namespace, /proc/self/cgroup says "/" and the mount's root is the container's.
  const std::filesystem::path memory = root_ / "memory";
  Write(root_ / "cgroup", "4:memory:/\n");
  Write(root_ / "mountinfo", absl::StrCat("35 31 0:32 /docker/abc ", memory.string(),
                                          " ro - cgroup cgroup rw,memory\n"));
  Write(memory / "memory.limit_in_bytes", "419430400\n");
  EXPECT_EQ(DiscoverMemoryLimit(sources_).bytes, 400 * kMiB);
}

TEST_F(HostMemoryBudgetTest, NoCgroupMeansPhysicalMemory) {
  sources_.proc_self_cgroup = (root_ / "absent").string();
  MemoryLimit limit = DiscoverMemoryLimit(sources_);
  EXPECT_EQ(limit.bytes, kPhysical);
  EXPECT_EQ(limit.source, "physical memory");
  // And the real machine has some physical memory.
  EXPECT_GT(DiscoverMemoryLimit().bytes, 0u);
}

TEST_F(HostMemoryBudgetTest, TheFlagOverridesTheLimitAndHeadroomIsSubtractedOtherwise) {
  const MemoryLimit limit{400 * kMiB, "cgroup v1 memory.limit_in_bytes of /x"};
  HostMemoryBudget budget = ResolveHostMemoryBudget(300 * kMiB, limit, {});
  EXPECT_EQ(budget.budget_bytes, 300 * kMiB);
  EXPECT_EQ(budget.source, "--host_memory_budget");
  EXPECT_TRUE(budget.from_flag);

  budget = ResolveHostMemoryBudget(0, limit, {});
  EXPECT_EQ(budget.budget_bytes, 400 * kMiB - kHostMemoryHeadroomBytes);
  EXPECT_EQ(budget.limit.bytes, 400 * kMiB);
  EXPECT_EQ(budget.source, limit.source);
  EXPECT_FALSE(budget.from_flag);

  budget = ResolveHostMemoryBudget(0, MemoryLimit{kHostMemoryHeadroomBytes / 2, "tiny"}, {});
  EXPECT_EQ(budget.budget_bytes, 0u);
}

TEST_F(HostMemoryBudgetTest, RocksDbsConfiguredCachesAreSubtractedFromTheDefault) {
  const MemoryLimit limit{400 * kMiB, "cgroup v1 memory.limit_in_bytes of /x"};
  HostMemoryBudget budget = ResolveHostMemoryBudget(0, limit, DatabaseMemory{8 * kMiB, 16 * kMiB});
  EXPECT_EQ(budget.budget_bytes, 400 * kMiB - kHostMemoryHeadroomBytes - 24 * kMiB);
  EXPECT_EQ(budget.database.total_bytes(), 24 * kMiB);

  // The defaults (256 MiB each) do not fit in 400 MiB beside the headroom: nothing is left.
  budget = ResolveHostMemoryBudget(0, limit, DatabaseMemory{256 * kMiB, 256 * kMiB});
  EXPECT_EQ(budget.budget_bytes, 0u);

  // The flag is taken as given: the operator has counted the caches.
  budget = ResolveHostMemoryBudget(64 * kMiB, limit, DatabaseMemory{256 * kMiB, 256 * kMiB});
  EXPECT_EQ(budget.budget_bytes, 64 * kMiB);
}

TEST_F(HostMemoryBudgetTest, TheStartupLineWarnsWhenNotOneInstanceFitsAtTheCap) {
  HostMemoryBudget budget =
      ResolveHostMemoryBudget(0, MemoryLimit{400 * kMiB, "cgroup v1 x"}, {8 * kMiB, 16 * kMiB});
  BudgetReport report = DescribeHostMemoryBudget(budget, 4096 * kMiB);
  EXPECT_TRUE(report.warning);
  EXPECT_THAT(report.line, HasSubstr("0 instances fit at the full cap"));
  EXPECT_THAT(report.line, HasSubstr("cgroup v1 x"));
  EXPECT_THAT(report.line, HasSubstr("UNAVAILABLE"));
  // Every figure the budget is made of, and the flags that leave guests more.
  EXPECT_THAT(report.line,
              HasSubstr(absl::StrCat("(cgroup v1 x: 400 MiB less ", kHostMemoryHeadroomBytes / kMiB,
                                     " MiB headroom for V8 and gRPC, less RocksDB's 8 MiB "
                                     "--db_block_cache and 16 MiB --db_write_buffers)")));
  EXPECT_THAT(report.line, HasSubstr("lower --memory_limit, or shrink RocksDB's caches: "
                                     "--db_block_cache 8 MiB and --db_write_buffers 16 MiB"));

  report = DescribeHostMemoryBudget(ResolveHostMemoryBudget(9 * 1024 * kMiB, {}, {}), 4096 * kMiB);
  EXPECT_THAT(report.line, HasSubstr("2 instances fit at the full cap"));
}

TEST_F(HostMemoryBudgetTest, TheStartupLineSaysWhenTheCachesLeaveNothingForGuests) {
  BudgetReport report =
      DescribeHostMemoryBudget(ResolveHostMemoryBudget(0, MemoryLimit{400 * kMiB, "cgroup v1 x"},
                                                       DatabaseMemory{256 * kMiB, 256 * kMiB}),
                               4096 * kMiB);
  EXPECT_TRUE(report.warning);
  EXPECT_THAT(report.line, HasSubstr("host memory budget 0 MiB"));
  EXPECT_THAT(report.line, HasSubstr("every instance is refused with UNAVAILABLE until RocksDB's "
                                     "caches shrink (--db_block_cache 256 MiB, "
                                     "--db_write_buffers 256 MiB)"));
}

TEST_F(HostMemoryBudgetTest, TheStartupLineWarnsWhenTheFlagPromisesMoreThanTheLimitLeaves) {
  const MemoryLimit limit{8192 * kMiB, "cgroup v2 memory.max of /y"};
  const DatabaseMemory database{256 * kMiB, 256 * kMiB};
  BudgetReport report =
      DescribeHostMemoryBudget(ResolveHostMemoryBudget(8000 * kMiB, limit, database), 1024 * kMiB);
  EXPECT_TRUE(report.warning);
  EXPECT_THAT(report.line, HasSubstr("host memory budget 8000 MiB for guest memory "
                                     "(--host_memory_budget); memory cap 1024 MiB per instance; "
                                     "7 instances fit at the full cap"));
  EXPECT_THAT(report.line, HasSubstr("more than the 7552 MiB that cgroup v2 memory.max of /y "
                                     "leaves"));

  report =
      DescribeHostMemoryBudget(ResolveHostMemoryBudget(7552 * kMiB, limit, database), 1024 * kMiB);
  EXPECT_FALSE(report.warning) << report.line;
}

}  // namespace
}  // namespace tandem::server
