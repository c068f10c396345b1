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

inline void AppendU32Le(std::string& out, uint32_t value) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}
inline void AppendU64Le(std::string& out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}
inline void AppendCompactSize(std::string& out, uint64_t value) {
  if (value < 0xfd) {
    out.push_back(static_cast<char>(value));
  } else {
    out.push_back(static_cast<char>(0xfd));
    out.push_back(static_cast<char>(value & 0xff));
    out.push_back(static_cast<char>((value >> 8) & 0xff));
  }
}

// Makes syntactically valid Bitcoin blocks (legacy serialization, no proof of work): a coinbase
// plus transactions that spend outputs of earlier generated blocks, so the indexer's reads of
// committed state are exercised. Deterministic for a seed.
class BlockGenerator {
 public:
  explicit BlockGenerator(uint32_t seed) : random_(seed) {}

  std::string Next(uint32_t height) {
    std::vector<std::string> transactions;
    transactions.push_back(Transaction(height, /*coinbase=*/true));
    int spends = static_cast<int>(random_() % 4);
    for (int i = 0; i < spends && !unspent_.empty(); ++i) {
      transactions.push_back(Transaction(height, /*coinbase=*/false));
    }
    std::string block;
    AppendU32Le(block, 0x20000000);
    block.append(previous_id_);
    block.append(32, '\x11');  // Merkle root: not checked by the indexer.
    AppendU32Le(block, 1600000000 + height);
    AppendU32Le(block, 0x1d00ffff);
    AppendU32Le(block, static_cast<uint32_t>(random_()));
    previous_id_ = store::Sha256(store::Sha256(block.substr(0, 80)));
    AppendCompactSize(block, transactions.size());
    for (const std::string& tx : transactions) block.append(tx);
    return block;
  }

 private:
  std::string Transaction(uint32_t height, bool coinbase) {
    std::string tx;
    AppendU32Le(tx, 1);
    AppendCompactSize(tx, 1);
    if (coinbase) {
      tx.append(32, '\0');
      AppendU32Le(tx, 0xffffffff);
      std::string script;
      AppendU32Le(script, height);  // Makes every coinbase txid unique.
      AppendCompactSize(tx, script.size());
      tx.append(script);
    } else {
      size_t pick = random_() % unspent_.size();
      tx.append(unspent_[pick].first);
      AppendU32Le(tx, unspent_[pick].second);
      unspent_.erase(unspent_.begin() + static_cast<long>(pick));
      AppendCompactSize(tx, 0);
    }
    AppendU32Le(tx, 0xffffffff);
    int outputs = 1 + static_cast<int>(random_() % 3);
    AppendCompactSize(tx, outputs);
    for (int i = 0; i < outputs; ++i) {
      AppendU64Le(tx, 1000 + random_() % 100000);
      // One of a few scripts, so per-script totals accumulate across blocks.
      std::string script =
          "\x76\xa9\x14" + std::string(20, static_cast<char>('a' + random_() % 5)) + "\x88\xac";
      AppendCompactSize(tx, script.size());
      tx.append(script);
    }
    AppendU32Le(tx, 0);
    std::string txid = store::Sha256(store::Sha256(tx));
    for (int i = 0; i < outputs; ++i) unspent_.emplace_back(txid, i);
    return tx;
  }

  std::mt19937 random_;
  std::string previous_id_ = std::string(32, '\0');
  std::vector<std::pair<std::string, uint32_t>> unspent_;
};

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
  options.warm_retry_base = absl::Milliseconds(50);
  options.warm_retry_cap = absl::Milliseconds(400);
  options.random_seed = 7;
  return options;
}

inline BlockSubmission Block(uint32_t height, std::string bytes) {
  BlockSubmission submission;
  submission.height = height;
  submission.bytes = std::move(bytes);
  return submission;
}

}  // namespace tandem::proxy::testing
