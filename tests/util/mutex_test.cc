// util::Mutex: conditions are evaluated by the releasing thread, and only waiters whose condition
// holds are woken.
#include "util/mutex.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tandem::util {
namespace {

TEST(MutexTest, AwaitReturnsOnceAnotherThreadMakesTheConditionTrue) {
  Mutex mu;
  bool ready = false;
  std::thread setter([&] {
    absl::SleepFor(absl::Milliseconds(20));
    MutexLock lock(&mu);
    ready = true;
  });
  {
    MutexLock lock(&mu);
    mu.Await([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return ready; });
    EXPECT_TRUE(ready);
  }
  setter.join();
}

TEST(MutexTest, AwaitWithDeadlineGivesUpAtTheDeadlineAndSaysWhetherTheConditionHolds) {
  Mutex mu;
  MutexLock lock(&mu);
  const absl::Time start = absl::Now();
  EXPECT_FALSE(mu.AwaitWithTimeout([] { return false; }, absl::Milliseconds(50)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(50));
  EXPECT_TRUE(mu.AwaitWithTimeout([] { return true; }, absl::Milliseconds(50)));
  EXPECT_TRUE(mu.AwaitWithDeadline([] { return true; }, absl::InfinitePast()));
}

// The waiter's own thread evaluates its condition once before sleeping and once per wake-up. A
// hundred releases of the mutex that leave its condition false must not wake it (they are spaced
// out so that a waiter woken by each would get to run between them).
TEST(MutexTest, ReleasesThatLeaveTheConditionFalseDoNotWakeTheWaiter) {
  Mutex mu;
  int value = 0;
  std::atomic<int> checks_on_waiter_thread{0};
  std::atomic<bool> waiting{false};
  std::thread waiter([&] {
    const std::thread::id self = std::this_thread::get_id();
    MutexLock lock(&mu);
    waiting = true;
    mu.Await([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      if (std::this_thread::get_id() == self) ++checks_on_waiter_thread;
      return value == -1;
    });
  });
  while (!waiting) absl::SleepFor(absl::Milliseconds(1));
  for (int i = 0; i < 100; ++i) {
    {
      MutexLock lock(&mu);
      ++value;
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  {
    MutexLock lock(&mu);
    value = -1;
  }
  waiter.join();
  // One check before the first sleep, one after the wake-up that found value == -1.
  EXPECT_EQ(checks_on_waiter_thread.load(), 2);
}

// Threads take turns by ticket: each waits for its own number, so every release wakes exactly the
// thread whose turn it is. Mixes Await and AwaitWithDeadline with deadlines that do not expire.
TEST(MutexTest, ManyWaitersWithDifferentConditionsAllFinish) {
  constexpr int kThreads = 8;
  constexpr int kRounds = 200;
  Mutex mu;
  int turn = 0;
  std::vector<std::thread> threads;
  std::atomic<int> missed_deadlines{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        const int mine = round * kThreads + t;
        MutexLock lock(&mu);
        auto my_turn = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return turn == mine; };
        if (t % 2 == 0) {
          mu.Await(my_turn);
        } else if (!mu.AwaitWithTimeout(my_turn, absl::Seconds(60))) {
          ++missed_deadlines;
          return;
        }
        ++turn;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(missed_deadlines.load(), 0);
  MutexLock lock(&mu);
  EXPECT_EQ(turn, kThreads * kRounds);
}

// A waiter that gave up at its deadline is unlinked: later releases must not touch it (ASan would
// see a use after its stack frame is gone).
TEST(MutexTest, AWaiterThatTimedOutIsForgotten) {
  Mutex mu;
  int value = 0;
  std::thread timed_out([&] {
    MutexLock lock(&mu);
    EXPECT_FALSE(mu.AwaitWithTimeout([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return value == 1; },
                                     absl::Milliseconds(10)));
  });
  timed_out.join();
  MutexLock lock(&mu);
  value = 1;
}

}  // namespace
}  // namespace tandem::util
