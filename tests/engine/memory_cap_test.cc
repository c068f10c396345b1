// Tests that the memory cap is deterministic: the guest sees allocation failure exactly at the
// cap, and a host that cannot give memory below the cap fails the call instead of answering.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include "engine/instance.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/test_support.h"

namespace tandem::engine {
namespace {

using ::testing::HasSubstr;
using testing::LoadGuestOrDie;
using testing::MemoryStateReader;
using testing::U32Le;

constexpr absl::Duration kDeadline = absl::Seconds(30);
constexpr uint64_t kCap = 64ull << 20;

std::string StressPayload(uint32_t count, uint32_t mebibytes) {
  return U32Le(count) + U32Le(mebibytes);
}

TEST(MemoryCapTest, GrowFailsExactlyPastTheCap) {
  auto module = LoadGuestOrDie("grow", 10u << 20);  // 160 pages.
  MemoryStateReader reader;
  for (uint32_t pages : {0u, 1u, 158u, 159u, 160u, 1000u, 65536u}) {
    auto instance = Instance::Create(testing::TestWorkers(), *module, {});
    ASSERT_TRUE(instance.ok()) << instance.status();
    absl::StatusOr<BlockResult> result = (*instance)->RunBlock(1, U32Le(pages), reader, kDeadline);
    ASSERT_TRUE(result.ok()) << result.status();
    // memory.grow returns the old size (1 page) when the new size fits in 160 pages, else -1.
    int32_t expected = 1 + pages <= 160 ? 1 : -1;
    EXPECT_EQ(result->writes.at("grow"), U32Le(static_cast<uint32_t>(expected)))
        << pages << " pages";
    if (expected == 1) {
      EXPECT_EQ(result->memory.linear_memory_bytes, (1 + pages) * kWasmPageBytes);
    }
  }
}

TEST(MemoryCapTest, StressBlocksGiveTheSameAnswerInTwentyFreshInstances) {
  auto module = LoadGuestOrDie("memory_stress", kCap);
  MemoryStateReader reader;
  struct Case {
    std::string payload;
    std::string result;
  };
  const Case cases[] = {
      {StressPayload(1, 128), "ERROR"},   // Needs twice the cap.
      {StressPayload(5, 16), "ERROR"},    // 80 MiB in total: the fourth allocation fails.
      {StressPayload(2, 16), "SUCCESS"},  // 32 MiB fits.
  };
  for (const Case& test_case : cases) {
    std::optional<BlockWrites> first;
    for (int attempt = 0; attempt < 20; ++attempt) {
      auto instance = Instance::Create(testing::TestWorkers(), *module, {});
      ASSERT_TRUE(instance.ok()) << instance.status();
      absl::StatusOr<BlockResult> result =
          (*instance)->RunBlock(1, test_case.payload, reader, kDeadline);
      ASSERT_TRUE(result.ok()) << result.status();
      EXPECT_EQ(result->writes.at("result"), test_case.result);
      EXPECT_LE(result->memory.linear_memory_bytes, kCap);
      if (!first.has_value()) first = result->writes;
      EXPECT_EQ(result->writes, *first) << "attempt " << attempt << " differs";
    }
  }
}

TEST(MemoryCapTest, InjectedHostCommitFailureBelowTheCapIsAHostError) {
  auto module = LoadGuestOrDie("memory_stress", 1ull << 30);
  MemoryStateReader reader;
  auto instance = Instance::Create(testing::TestWorkers(), *module, {});
  ASSERT_TRUE(instance.ok()) << instance.status();
  SetHostMemoryFailureThresholdForTesting(8u << 20);
  absl::Status status = (*instance)->RunBlock(1, StressPayload(1, 16), reader, kDeadline).status();
  SetHostMemoryFailureThresholdForTesting(0);
  // The guest saw memory.grow return -1 and would have stored "ERROR"; the host must not let that
  // answer stand, because another node would store "SUCCESS".
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("could not provide memory below the cap"));
  EXPECT_FALSE((*instance)->health().ok());

  auto fresh = Instance::Create(testing::TestWorkers(), *module, {});
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  absl::StatusOr<BlockResult> result =
      (*fresh)->RunBlock(1, StressPayload(1, 16), reader, kDeadline);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->writes.at("result"), "SUCCESS");
}

// Runs tests/engine/host_memory_child under an address-space limit and returns what it printed.
struct ChildOutcome {
  int exit_code = -1;
  std::string output;
};

ChildOutcome RunChildUnderAddressSpaceLimit(uint64_t limit_bytes, const std::string& payload_args) {
  std::string command = absl::StrCat(TANDEM_HOST_MEMORY_CHILD, " ", TANDEM_GUEST_DIR,
                                     "/memory_stress.wasm ", payload_args);
  int pipe_fds[2];
  EXPECT_EQ(pipe(pipe_fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    dup2(pipe_fds[1], STDOUT_FILENO);
    dup2(pipe_fds[1], STDERR_FILENO);
    close(pipe_fds[0]);
    if (limit_bytes != 0) {
      struct rlimit limit = {limit_bytes, limit_bytes};
      setrlimit(RLIMIT_AS, &limit);
    }
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(pipe_fds[1]);
  ChildOutcome outcome;
  char buffer[4096];
  ssize_t n;
  while ((n = read(pipe_fds[0], buffer, sizeof(buffer))) > 0) outcome.output.append(buffer, n);
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  outcome.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return outcome;
}

TEST(MemoryCapTest, AddressSpaceLimitedHostFailsWithAHostErrorNeverADifferentAnswer) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "sanitizer runtimes reserve terabytes of shadow memory: no RLIMIT_AS fits them";
#endif
  // 4 allocations of 64 MiB under a 1 GiB cap: SUCCESS on any host that has the memory.
  const std::string payload = "4 64";
  ChildOutcome reference = RunChildUnderAddressSpaceLimit(0, payload);
  ASSERT_EQ(reference.exit_code, 0) << reference.output;
  ASSERT_THAT(reference.output, HasSubstr("result=SUCCESS"));

  int host_errors = 0;
  for (uint64_t gib : {1, 2, 4, 8, 12, 16, 24}) {
    ChildOutcome limited = RunChildUnderAddressSpaceLimit(gib << 30, payload);
    SCOPED_TRACE(absl::StrCat("RLIMIT_AS ", gib, " GiB: ", limited.output));
    if (limited.output.find("OK ") != std::string::npos) {
      EXPECT_EQ(limited.output, reference.output);  // Same writes, byte for byte.
    } else {
      // Every other outcome must be a host error: never a guest-visible failure or another answer.
      EXPECT_THAT(limited.output, HasSubstr("UNAVAILABLE"));
      EXPECT_EQ(limited.exit_code, 3);
      ++host_errors;
    }
  }
  EXPECT_GT(host_errors, 0) << "no limit was tight enough to exercise the host-failure path";
}

}  // namespace
}  // namespace tandem::engine
