// Shared set-up for the instance pair tests: a real store in a temporary directory, loaded guests,
// an event recorder, and generated Bitcoin blocks that continue after the real fixture blocks.
// Test-only.
#pragma once

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "proxy/instance_pair.h"
#include "store/state_root.h"
#include "tests/engine/bitcoin_fixtures.h"
#include "tests/engine/test_support.h"
#include "tests/store/test_util.h"
#include "tools/bench/bitcoin_blocks.h"
#include "util/mutex.h"

namespace tandem::proxy::testing {

using engine::testing::LoadGuestOrDie;

// Records every event; lets tests count and wait for them.
class EventRecorder : public PairEventSink {
 public:
  void OnPairEvent(const PairEvent& event) override {
    util::MutexLock lock(&mu_);
    events_.push_back(event);
  }
  std::vector<PairEvent> events() const {
    util::MutexLock lock(&mu_);
    return events_;
  }
  int Count(PairEvent::Kind kind) const {
    util::MutexLock lock(&mu_);
    return static_cast<int>(std::count_if(events_.begin(), events_.end(),
                                          [kind](const PairEvent& e) { return e.kind == kind; }));
  }
  int Swaps(SwapReason reason) const {
    util::MutexLock lock(&mu_);
    return static_cast<int>(
        std::count_if(events_.begin(), events_.end(), [reason](const PairEvent& e) {
          return e.kind == PairEvent::Kind::kSwap && e.reason == reason;
        }));
  }
  // Waits up to `timeout` for `count` events of `kind`.
  bool WaitFor(PairEvent::Kind kind, int count, absl::Duration timeout) const {
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (Count(kind) >= count) return true;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return Count(kind) >= count;
  }

 private:
  mutable util::Mutex mu_;
  std::vector<PairEvent> events_ ABSL_GUARDED_BY(mu_);
};

// Syntactically valid synthetic Bitcoin blocks, shared with the benchmarks.
using BlockGenerator = bench::SyntheticBlocks;

// The 20 real fixture blocks, then generated ones, `count` in all.
inline std::vector<std::string> FixtureThenGeneratedBlocks(int count) {
  std::vector<std::string> blocks;
  for (const engine::testing::FixtureBlock& fixture : engine::testing::LoadFixtureBlocks()) {
    if (static_cast<int>(blocks.size()) == count) break;
    blocks.push_back(fixture.bytes);
  }
  BlockGenerator generator(42);
  while (static_cast<int>(blocks.size()) < count) {
    blocks.push_back(generator.Next(static_cast<uint32_t>(blocks.size() + 1)));
  }
  return blocks;
}

inline std::unique_ptr<store::BlockStore> OpenStoreOrDie(const std::filesystem::path& path) {
  store::BlockStoreOptions options;
  options.sync = false;  // Durability is the store's tests' business; these test the pair.
  absl::StatusOr<std::unique_ptr<store::BlockStore>> opened =
      store::BlockStore::Open(path, options);
  EXPECT_TRUE(opened.ok()) << opened.status();
  return opened.ok() ? *std::move(opened) : nullptr;
}

inline PairOptions FastOptions(SwapPolicy policy) {
  PairOptions options;
  options.policy = policy;
  options.warm_backoff.base = absl::Milliseconds(50);
  options.warm_backoff.cap = absl::Milliseconds(400);
  options.random_seed = 7;
  return options;
}

// Waits up to 10 s until `pair` holds at least `count` READY standbys.
inline bool WaitForReadyStandbys(const InstancePair& pair, int count) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (pair.Status().standbys_ready < count) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

inline BlockSubmission Block(uint32_t height, std::string bytes) {
  BlockSubmission submission;
  submission.height = height;
  submission.bytes = std::move(bytes);
  return submission;
}

}  // namespace tandem::proxy::testing
