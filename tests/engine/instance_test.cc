// Tests for instances: every host ABI function, failure causes, deadlines, concurrency, memory.
#include "engine/instance.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/bitcoin_fixtures.h"
#include "tests/engine/test_support.h"
#include "util/failure_cause.h"
#include "util/mutex.h"

namespace tandem::engine {
namespace {

using ::testing::HasSubstr;
using testing::LoadGuestOrDie;
using testing::MemoryStateReader;
using testing::U32Le;

constexpr absl::Duration kDeadline = absl::Seconds(30);

class RecordingLogSink : public GuestLogSink {
 public:
  void OnGuestLog(absl::string_view instance, absl::string_view text) override {
    util::MutexLock lock(&mu_);
    lines_.push_back(absl::StrCat(instance, ": ", text));
  }
  std::vector<std::string> lines() {
    util::MutexLock lock(&mu_);
    return lines_;
  }

 private:
  util::Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

std::unique_ptr<Instance> NewInstanceOrDie(const Module& module, InstanceOptions options = {}) {
  absl::StatusOr<std::unique_ptr<Instance>> instance =
      Instance::Create(testing::TestWorkers(), module, std::move(options));
  EXPECT_TRUE(instance.ok()) << instance.status();
  return instance.ok() ? *std::move(instance) : nullptr;
}

// The reads_and_writes guest's operations (see guests/README.md).
enum Op : uint8_t { kWrite = 1, kRead = 2, kDelete = 3, kLog = 4 };
std::string Operation(Op op, absl::string_view key, absl::string_view value = "") {
  return absl::StrCat(std::string(1, static_cast<char>(op)), U32Le(key.size()), key,
                      U32Le(value.size()), value);
}

TEST(InstanceTest, MinimalGuestRunsABlockAndAView) {
  auto module = LoadGuestOrDie("minimal");
  auto instance = NewInstanceOrDie(*module);
  MemoryStateReader reader;
  absl::StatusOr<BlockResult> block = instance->RunBlock(1, "", reader, kDeadline);
  ASSERT_TRUE(block.ok()) << block.status();
  EXPECT_TRUE(block->writes.empty());
  EXPECT_EQ(block->memory.linear_memory_bytes, 65536u);
  EXPECT_GT(block->memory.heap_total_bytes, 0u);
  absl::StatusOr<CallResult> view = instance->RunView("answer", 1, "", reader, kDeadline);
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->answer, "ok");
  EXPECT_EQ(instance->calls_completed(), 3u);  // Instantiation, block, view.
}

TEST(InstanceTest, HostLenAndLoadInputDeliverHeightAndPayload) {
  auto module = LoadGuestOrDie("reads_and_writes");
  auto instance = NewInstanceOrDie(*module);
  MemoryStateReader reader;
  absl::StatusOr<CallResult> echo =
      instance->RunView("echo", 77, "payload bytes", reader, kDeadline);
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(echo->answer, "payload bytes");
}

TEST(InstanceTest, WritesReadsAndDeletesFollowTheAbi) {
  auto module = LoadGuestOrDie("reads_and_writes");
  auto instance = NewInstanceOrDie(*module);
  MemoryStateReader reader;
  reader.Put(4, "committed", "old");
  reader.Put(9, "committed", "too new");  // Above height - 1: must not be seen.
  reader.Put(4, "deleted-later", "x");
  std::string block = Operation(kRead, "committed") + Operation(kRead, "missing") +
                      Operation(kWrite, "fresh", "v1") + Operation(kRead, "fresh") +
                      Operation(kWrite, "fresh", "v2") + Operation(kDelete, "deleted-later") +
                      Operation(kRead, "deleted-later");
  absl::StatusOr<BlockResult> result = instance->RunBlock(6, block, reader, kDeadline);
  ASSERT_TRUE(result.ok()) << result.status();
  const BlockWrites expected = {
      {"committed/read", "old"}, {"missing/read", "-"}, {"fresh", "v2"},
      {"fresh/read", "v1"},      {"deleted-later", ""}, {"deleted-later/read", "-"},
  };
  EXPECT_EQ(result->writes, expected);
}

TEST(InstanceTest, BlockAtHeightZeroSeesNothingCommitted) {
  auto module = LoadGuestOrDie("reads_and_writes");
  auto instance = NewInstanceOrDie(*module);
  MemoryStateReader reader;
  reader.Put(0, "k", "v");
  absl::StatusOr<BlockResult> result =
      instance->RunBlock(0, Operation(kRead, "k"), reader, kDeadline);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->writes.at("k/read"), "-");
}

TEST(InstanceTest, ViewsReadAtTheirHeight) {
  auto module = LoadGuestOrDie("caching");
  MemoryStateReader reader;
  reader.Put(3, "key", "three");
  reader.Put(5, "key", "five");
  for (uint32_t height : {3u, 4u, 5u, 9u}) {
    auto instance = NewInstanceOrDie(*module);
    absl::StatusOr<CallResult> view = instance->RunView("get", height, "key", reader, kDeadline);
    ASSERT_TRUE(view.ok()) << view.status();
    EXPECT_EQ(view->answer, height < 5 ? "three" : "five") << "height " << height;
  }
}

TEST(InstanceTest, LogLinesReachTheSinkRateLimited) {
  auto module = LoadGuestOrDie("reads_and_writes");
  RecordingLogSink sink;
  InstanceOptions options;
  options.label = "generation 3";
  options.log_sink = &sink;
  options.max_log_lines_per_call = 2;
  options.max_log_line_bytes = 5;
  auto instance = NewInstanceOrDie(*module, options);
  MemoryStateReader reader;
  std::string block =
      Operation(kLog, "hello world") + Operation(kLog, "second") + Operation(kLog, "dropped");
  ASSERT_TRUE(instance->RunBlock(1, block, reader, kDeadline).ok());
  EXPECT_THAT(sink.lines(), ::testing::ElementsAre("generation 3: hello", "generation 3: secon"));
}

TEST(InstanceTest, OutOfBoundsPointersFailTheCallNamingTheFunction) {
  auto module = LoadGuestOrDie("reads_and_writes");
  MemoryStateReader reader;
  const std::pair<const char*, const char*> cases[] = {
      {"bad_get_pointer", "__get_len"},   {"bad_flush_pointer", "pointer"},
      {"bad_load_input", "__load_input"}, {"bad_get_value_pointer", "__get: destination"},
      {"bad_log_pointer", "__log"},       {"bad_answer_pointer", "returned a bad pointer"},
  };
  for (const auto& [view, expected] : cases) {
    auto instance = NewInstanceOrDie(*module);
    absl::Status status = instance->RunView(view, 1, "", reader, kDeadline).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kAborted) << view << ": " << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(expected)) << view;
    EXPECT_THAT(std::string(status.message()),
                ::testing::ContainsRegex("past the end|no length prefix"))
        << view;
    // Sticky: the instance refuses every later call, which did not run and may run elsewhere.
    // The refusal names the kind of failure but not another call's message.
    absl::Status later = instance->RunView("echo", 1, "", reader, kDeadline).status();
    EXPECT_EQ(later.code(), absl::StatusCode::kUnavailable) << later;
    EXPECT_EQ(util::CauseOf(later), util::FailureCause::kInstanceLost) << later;
    EXPECT_THAT(std::string(later.message()), HasSubstr("guest_abi"));
    EXPECT_THAT(std::string(later.message()), ::testing::Not(HasSubstr(expected)));
    EXPECT_EQ(instance->health().code(), absl::StatusCode::kAborted);
    EXPECT_EQ(util::CauseOf(instance->health()), util::FailureCause::kGuestAbi);
  }
}

TEST(InstanceTest, FlushInAViewIsIgnoredAndInAnInitCallRefused) {
  auto module = LoadGuestOrDie("reads_and_writes");
  MemoryStateReader reader;
  auto instance = NewInstanceOrDie(*module);
  absl::StatusOr<CallResult> view = instance->RunView("flush_in_view", 1, "", reader, kDeadline);
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->answer, "flushed");
  absl::Status init = instance->RunInit("flush_in_view", "", kDeadline).status();
  EXPECT_EQ(init.code(), absl::StatusCode::kAborted) << init;
  EXPECT_THAT(std::string(init.message()), HasSubstr("cannot write"));
}

TEST(InstanceTest, ReaderFailureIsAHostError) {
  auto module = LoadGuestOrDie("reads_and_writes");
  auto instance = NewInstanceOrDie(*module);
  MemoryStateReader reader;
  reader.FailReadsWith(absl::DataLossError("disk on fire"));
  absl::Status status = instance->RunBlock(2, Operation(kRead, "k"), reader, kDeadline).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("disk on fire"));
}

TEST(InstanceTest, MissingViewIsNotFoundAndLeavesTheInstanceHealthy) {
  auto module = LoadGuestOrDie("reads_and_writes");
  auto instance = NewInstanceOrDie(*module);
  MemoryStateReader reader;
  EXPECT_EQ(instance->RunView("no_such_view", 1, "", reader, kDeadline).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(instance->health().ok());
  EXPECT_TRUE(instance->RunView("echo", 1, "", reader, kDeadline).ok());
}

struct FailureCase {
  const char* guest;
  absl::StatusCode code;
  util::FailureCause typed_cause;
  const char* cause;
};

class GuestFailureTest : public ::testing::TestWithParam<FailureCase> {};

TEST_P(GuestFailureTest, FailsWithItsOwnCause) {
  const FailureCase& failure = GetParam();
  auto module = LoadGuestOrDie(failure.guest);
  auto instance = NewInstanceOrDie(*module);
  MemoryStateReader reader;
  absl::Status status = instance->RunBlock(1, "", reader, kDeadline).status();
  EXPECT_EQ(status.code(), failure.code) << status;
  EXPECT_EQ(util::CauseOf(status), failure.typed_cause) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(failure.cause));
  EXPECT_FALSE(instance->health().ok());
  // A fresh instance of the same module is unaffected.
  auto fresh = NewInstanceOrDie(*module);
  EXPECT_TRUE(fresh->health().ok());
}

INSTANTIATE_TEST_SUITE_P(
    Causes, GuestFailureTest,
    ::testing::Values(FailureCase{"trapping", absl::StatusCode::kAborted,
                                  util::FailureCause::kGuestTrap, "unreachable"},
                      FailureCase{"aborting", absl::StatusCode::kAborted,
                                  util::FailureCause::kGuestAbort,
                                  "guest aborted: guest gave up on purpose at aborting.c:7:3"},
                      FailureCase{"malformed_flush", absl::StatusCode::kAborted,
                                  util::FailureCause::kGuestAbi, "malformed flush"},
                      FailureCase{"no_flush", absl::StatusCode::kAborted,
                                  util::FailureCause::kGuestAbi, "without calling __flush"},
                      FailureCase{"deep_recursion", absl::StatusCode::kUnavailable,
                                  util::FailureCause::kStackOverflow, "native stack"}),
    [](const ::testing::TestParamInfo<FailureCase>& info) {
      return std::string(info.param.guest);
    });

TEST(InstanceTest, RunawayBlockIsTerminatedAtItsDeadline) {
  auto module = LoadGuestOrDie("runaway");
  auto instance = NewInstanceOrDie(*module);
  MemoryStateReader reader;
  const absl::Duration deadline = absl::Milliseconds(300);
  absl::Time start = absl::Now();
  absl::Status status = instance->RunBlock(1, "", reader, deadline).status();
  absl::Duration took = absl::Now() - start;
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_LT(took, deadline + absl::Seconds(1));
  EXPECT_GE(took, deadline);
  EXPECT_EQ(instance->health().code(), absl::StatusCode::kDeadlineExceeded);
  const absl::Status later = instance->RunInit("init_ok", "", kDeadline).status();
  EXPECT_EQ(later.code(), absl::StatusCode::kUnavailable) << later;
  EXPECT_EQ(util::CauseOf(later), util::FailureCause::kInstanceLost) << later;
  // The next instance works.
  auto next = NewInstanceOrDie(*module);
  EXPECT_TRUE(next->RunInit("init_ok", "", kDeadline).ok());
}

// Instantiate in two steps: the ready instance is handed on from its worker's thread with the
// replayed answers, before the caller wakes, and may be called from there at once.
TEST(InstanceTest, AnInstanceIsHandedOnFromItsWorkerOnceInstantiatedAndReplayed) {
  auto module = LoadGuestOrDie("runaway");
  absl::StatusOr<std::unique_ptr<Instance>> acquired =
      Instance::Acquire(testing::TestWorkers(), *module, InstanceOptions{});
  ASSERT_TRUE(acquired.ok()) << acquired.status();
  Instance& instance = **acquired;
  std::thread::id ready_thread;
  MemoryReadout handed_memory;
  std::vector<std::string> handed_answers;
  absl::StatusOr<CallResult> called_from_hand_off = absl::UnknownError("never called");
  std::thread caller;
  const std::vector<InitCall> replay = {{"init_ok", "a"}, {"init_ok", "b"}};
  absl::StatusOr<std::vector<std::string>> answers =
      instance.Instantiate(replay, [&](const std::vector<std::string>& replayed) {
        ready_thread = std::this_thread::get_id();
        // Whoever receives the instance (the slot table, a metrics scrape) reads its memory
        // at once, before Instantiate returns to the caller.
        handed_memory = instance.memory();
        handed_answers = replayed;
        caller =
            std::thread([&] { called_from_hand_off = instance.RunInit("init_ok", "", kDeadline); });
        return absl::OkStatus();
      });
  ASSERT_TRUE(answers.ok()) << answers.status();
  caller.join();
  EXPECT_NE(ready_thread, std::this_thread::get_id());
  EXPECT_EQ(answers->size(), 2u);
  EXPECT_EQ(handed_answers, *answers);
  EXPECT_GT(handed_memory.linear_memory_bytes, 0u);
  EXPECT_GT(handed_memory.heap_used_bytes, 0u);
  EXPECT_TRUE(called_from_hand_off.ok()) << called_from_hand_off.status();
  EXPECT_EQ(instance.calls_completed(), 2u);  // The instantiation with its replay, and the call.
  EXPECT_GT(instance.memory().linear_memory_bytes, 0u);
}

TEST(InstanceTest, AHandOffThatRefusesTheInstanceFailsIt) {
  auto module = LoadGuestOrDie("runaway");
  absl::StatusOr<std::unique_ptr<Instance>> acquired =
      Instance::Acquire(testing::TestWorkers(), *module, InstanceOptions{});
  ASSERT_TRUE(acquired.ok()) << acquired.status();
  absl::StatusOr<std::vector<std::string>> answers =
      (*acquired)->Instantiate({}, [](const std::vector<std::string>&) {
        return util::CausedError(absl::StatusCode::kAborted, util::FailureCause::kReplayDiverged,
                                 "refused");
      });
  EXPECT_EQ(util::CauseOf(answers.status()), util::FailureCause::kReplayDiverged);
  EXPECT_EQ(util::CauseOf((*acquired)->health()), util::FailureCause::kReplayDiverged);
  const absl::Status later = (*acquired)->RunInit("init_ok", "", kDeadline).status();
  EXPECT_EQ(util::CauseOf(later), util::FailureCause::kInstanceLost) << later;
}

TEST(InstanceTest, RunawayInitCallIsTerminatedToo) {
  auto module = LoadGuestOrDie("runaway");
  auto instance = NewInstanceOrDie(*module);
  absl::Time start = absl::Now();
  absl::Status status = instance->RunInit("init_runaway", "", absl::Milliseconds(200)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(200) + absl::Seconds(1));
}

TEST(InstanceTest, QueuedCallPastItsDeadlineNeverStartsAndHarmsNothing) {
  auto module = LoadGuestOrDie("runaway");
  auto instance = NewInstanceOrDie(*module);
  std::thread runaway([&] {
    // Occupies the instance thread for 500 ms, then is terminated.
    EXPECT_EQ(instance->RunInit("init_runaway", "", absl::Milliseconds(500)).status().code(),
              absl::StatusCode::kDeadlineExceeded);
  });
  absl::SleepFor(absl::Milliseconds(100));
  absl::Status queued = instance->RunInit("init_ok", "", absl::Milliseconds(50)).status();
  EXPECT_EQ(queued.code(), absl::StatusCode::kDeadlineExceeded) << queued;
  EXPECT_THAT(std::string(queued.message()), HasSubstr("never started"));
  runaway.join();
}

// A StateReader whose reads wait until `parties` reads have arrived (or `patience` passes). A read
// that saw all parties arrive while it waited counts as met; when every read is met, that many
// guests were inside their `__get_len` at the same moment.
class RendezvousStateReader : public StateReader {
 public:
  RendezvousStateReader(int parties, absl::Duration patience)
      : parties_(parties), patience_(patience) {}

  absl::StatusOr<std::optional<std::string>> Get(absl::string_view /*key*/,
                                                 uint32_t /*height*/) const override {
    util::MutexLock lock(&mu_);
    ++arrived_;
    if (mu_.AwaitWithTimeout(
            [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return arrived_ >= parties_; }, patience_)) {
      ++met_;
    }
    return std::nullopt;
  }

  // Reads that met all the parties.
  int met() const {
    util::MutexLock lock(&mu_);
    return met_;
  }

 private:
  const int parties_;
  const absl::Duration patience_;
  mutable util::Mutex mu_;
  mutable int arrived_ ABSL_GUARDED_BY(mu_) = 0;
  mutable int met_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST(InstanceTest, TwoInstancesOfOneModuleRunConcurrentlyOnTwoThreads) {
  auto module = LoadGuestOrDie("reads_and_writes");
  auto first = NewInstanceOrDie(*module);
  auto second = NewInstanceOrDie(*module);
  // Each view reads a key, and the read returns only when the other guest is reading too: the two
  // meet only if both instances are inside a guest call at the same time. Run one after the other,
  // the first read gives up after the patience without meeting the second. No timing is asserted:
  // the patience only bounds the test when concurrency is missing.
  RendezvousStateReader reader(2, absl::Seconds(10));
  absl::Status results[2];
  std::thread a([&] { results[0] = first->RunView("read", 1, "k", reader, kDeadline).status(); });
  std::thread b([&] { results[1] = second->RunView("read", 1, "k", reader, kDeadline).status(); });
  a.join();
  b.join();
  EXPECT_TRUE(results[0].ok()) << results[0];
  EXPECT_TRUE(results[1].ok()) << results[1];
  EXPECT_EQ(reader.met(), 2) << "the two instances never ran guest code at the same time";
}

TEST(InstanceTest, ConcurrentBlocksOnTwoInstancesGiveIdenticalWrites) {
  auto module = LoadGuestOrDie("bitcoin_indexer");
  MemoryStateReader reader;
  std::string block;
  for (const testing::FixtureBlock& fixture : testing::LoadFixtureBlocks()) {
    if (fixture.height == 702861) block = fixture.bytes;  // 1.38 MB, 2,500 transactions.
  }
  ASSERT_FALSE(block.empty());
  BlockWrites writes[2];
  std::thread threads[2];
  for (int i = 0; i < 2; ++i) {
    threads[i] = std::thread([&, i] {
      auto instance = NewInstanceOrDie(*module);
      for (int round = 0; round < 3; ++round) {
        absl::StatusOr<BlockResult> result = instance->RunBlock(702861, block, reader, kDeadline);
        ASSERT_TRUE(result.ok()) << result.status();
        writes[i] = result->writes;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_FALSE(writes[0].empty());
  EXPECT_EQ(writes[0], writes[1]);
}

}  // namespace
}  // namespace tandem::engine
