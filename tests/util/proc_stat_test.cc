// Tests for reading /proc/<pid>/stat: the parser against a line whose command holds the
// separators, and a read of this process.
#include "util/proc_stat.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace tandem::util {
namespace {

TEST(ProcStatTest, ParsesAStatLineWhoseCommandHoldsSpacesAndParentheses) {
  // Fields 3..24 of proc(5): state ppid pgrp session tty tpgid flags minflt cminflt majflt
  // cmajflt utime stime cutime cstime priority nice num_threads itrealvalue starttime vsize rss.
  const std::string line =
      "1234 (tandem (d) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 7 0 500 "
      "104857600 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
  absl::StatusOr<ProcStat> sample = ParseProcStat(line, 100, 4096, 1.7e9);
  ASSERT_TRUE(sample.ok()) << sample.status();
  EXPECT_DOUBLE_EQ(sample->cpu_seconds, 4.0);
  EXPECT_EQ(sample->threads, 7u);
  EXPECT_DOUBLE_EQ(sample->start_time_seconds, 1.7e9 + 5);
  EXPECT_EQ(sample->virtual_bytes, 104857600u);
  EXPECT_EQ(sample->resident_bytes, 2048u * 4096);

  EXPECT_EQ(ParseProcStat("no parenthesis", 100, 4096, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseProcStat("1 (x) S 1 2 3", 100, 4096, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ProcStatTest, ReadsThisProcessByPidAndAsSelf) {
  absl::StatusOr<ProcStat> self = ReadProcStat("self");
  ASSERT_TRUE(self.ok()) << self.status();
  EXPECT_GT(self->resident_bytes, 1u << 20);
  EXPECT_GE(self->virtual_bytes, self->resident_bytes);
  EXPECT_GE(self->threads, 1u);
  absl::StatusOr<ProcStat> by_pid = ReadProcStat(absl::StrCat(getpid()));
  ASSERT_TRUE(by_pid.ok()) << by_pid.status();
  EXPECT_DOUBLE_EQ(by_pid->start_time_seconds, self->start_time_seconds);
  EXPECT_GE(by_pid->cpu_seconds, self->cpu_seconds);  // CPU time only grows.
}

TEST(ProcStatTest, AProcessThatDoesNotExistIsUnavailable) {
  EXPECT_EQ(ReadProcStat("no-such-process").status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace tandem::util
