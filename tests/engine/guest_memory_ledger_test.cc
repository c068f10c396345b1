// Tests the guest memory ledger alone: exact per-range accounting against a page model, refusals
// at the budget, and the reclaimer being asked (and waited for) before a refusal.
#include "engine/guest_memory_ledger.h"

#include <random>
#include <set>
#include <thread>

#include "gtest/gtest.h"
#include "tests/support/test_seed.h"

namespace tandem::engine {
namespace {

constexpr uintptr_t kBase = uintptr_t{1} << 40;
constexpr size_t kReservation = size_t{10} << 30;
constexpr size_t kPage = 64 << 10;

TEST(GuestMemoryLedgerTest, CountsEachCommittedByteOnceAndGivesBackExactly) {
  GuestMemoryLedger ledger;
  ledger.AddReservation(kBase, kReservation);
  // V8 re-commits the whole prefix on every grow: only the new part counts.
  EXPECT_EQ(ledger.TryCommit(kBase, 2 * kPage, true), GuestMemoryLedger::Commit::kCharged);
  EXPECT_EQ(ledger.TryCommit(kBase, 5 * kPage, true), GuestMemoryLedger::Commit::kCharged);
  EXPECT_EQ(ledger.usage().committed_bytes, 5 * kPage);
  // An uncommit gives back only what was committed in its range.
  ledger.Uncommit(kBase + 4 * kPage, 10 * kPage);
  EXPECT_EQ(ledger.usage().committed_bytes, 4 * kPage);
  ledger.FreeRange(kBase, kReservation);
  EXPECT_EQ(ledger.usage().committed_bytes, 0u);
  EXPECT_EQ(ledger.usage().reservations, 0u);
  EXPECT_EQ(ledger.usage().peak_committed_bytes, 5 * kPage);
}

TEST(GuestMemoryLedgerTest, RangesOutsideGuestReservationsAreNotAccounted) {
  GuestMemoryLedger ledger(/*budget_bytes=*/kPage);
  ledger.AddReservation(kBase, kReservation);
  EXPECT_EQ(ledger.TryCommit(kBase - 4 * kPage, kPage, true), GuestMemoryLedger::Commit::kNotGuest);
  EXPECT_EQ(ledger.TryCommit(kBase + kReservation, 100 * kPage, true),
            GuestMemoryLedger::Commit::kNotGuest);
  EXPECT_EQ(ledger.usage().committed_bytes, 0u);
}

TEST(GuestMemoryLedgerTest, RefusesACommitPastTheBudgetAndChargesNothing) {
  GuestMemoryLedger ledger(/*budget_bytes=*/4 * kPage);
  ledger.AddReservation(kBase, kReservation);
  ledger.AddReservation(kBase + kReservation, kReservation);
  EXPECT_EQ(ledger.TryCommit(kBase, 3 * kPage, true), GuestMemoryLedger::Commit::kCharged);
  EXPECT_EQ(ledger.TryCommit(kBase + kReservation, 2 * kPage, true),
            GuestMemoryLedger::Commit::kRefused);
  EXPECT_EQ(ledger.usage().committed_bytes, 3 * kPage);
  EXPECT_EQ(ledger.usage().refusals, 1u);
  // Exactly at the budget fits; outside a watch (may_refuse false) a commit is never refused.
  EXPECT_EQ(ledger.TryCommit(kBase + kReservation, kPage, true),
            GuestMemoryLedger::Commit::kCharged);
  EXPECT_EQ(ledger.TryCommit(kBase + kReservation, 3 * kPage, false),
            GuestMemoryLedger::Commit::kCharged);
  EXPECT_EQ(ledger.usage().committed_bytes, 6 * kPage);
}

TEST(GuestMemoryLedgerTest, ReportsTheRangesACommitAdded) {
  GuestMemoryLedger ledger;
  ledger.AddReservation(kBase, kReservation);
  ASSERT_EQ(ledger.TryCommit(kBase + kPage, kPage, true), GuestMemoryLedger::Commit::kCharged);
  std::vector<std::pair<uintptr_t, uintptr_t>> added;
  ASSERT_EQ(ledger.TryCommit(kBase, 4 * kPage, true, &added), GuestMemoryLedger::Commit::kCharged);
  const std::vector<std::pair<uintptr_t, uintptr_t>> expected = {
      {kBase, kBase + kPage}, {kBase + 2 * kPage, kBase + 4 * kPage}};
  EXPECT_EQ(added, expected);
  // Undoing what was added (the system refused the commit) leaves the earlier commit alone.
  for (const auto& [from, to] : added) ledger.Uncommit(from, to - from);
  EXPECT_EQ(ledger.usage().committed_bytes, kPage);
}

// Drops a "cached instance" by releasing its range from another thread, as a worker retiring it.
class ReleasingReclaimer : public GuestMemoryReclaimer {
 public:
  ReleasingReclaimer(GuestMemoryLedger& ledger, uintptr_t start, size_t length)
      : ledger_(ledger), start_(start), length_(length) {}
  ~ReleasingReclaimer() override {
    if (releaser_.joinable()) releaser_.join();
  }
  uint64_t ReclaimGuestMemory(uint64_t wanted) override {
    ++calls;
    last_wanted = wanted;
    if (released_) return 0;
    released_ = true;
    releaser_ = std::thread([this] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      ledger_.Uncommit(start_, length_);
    });
    return length_;
  }
  int calls = 0;
  uint64_t last_wanted = 0;

 private:
  GuestMemoryLedger& ledger_;
  const uintptr_t start_;
  const size_t length_;
  bool released_ = false;
  std::thread releaser_;
};

TEST(GuestMemoryLedgerTest, AsksTheReclaimerAndWaitsForWhatItDropped) {
  GuestMemoryLedger ledger(/*budget_bytes=*/4 * kPage, absl::Seconds(10));
  const uintptr_t cached = kBase + kReservation;
  ledger.AddReservation(kBase, kReservation);
  ledger.AddReservation(cached, kReservation);
  ASSERT_EQ(ledger.TryCommit(cached, 3 * kPage, true), GuestMemoryLedger::Commit::kCharged);
  ReleasingReclaimer reclaimer(ledger, cached, 3 * kPage);
  ledger.SetReclaimer(&reclaimer);
  EXPECT_EQ(ledger.TryCommit(kBase, 2 * kPage, true), GuestMemoryLedger::Commit::kCharged);
  EXPECT_EQ(reclaimer.calls, 1);
  EXPECT_EQ(reclaimer.last_wanted, kPage);
  EXPECT_EQ(ledger.usage().committed_bytes, 2 * kPage);
  EXPECT_EQ(ledger.usage().reclaims, 1u);
  // Nothing left to drop: refused at once.
  EXPECT_EQ(ledger.TryCommit(kBase, 5 * kPage, true), GuestMemoryLedger::Commit::kRefused);
  EXPECT_EQ(reclaimer.calls, 2);
  ledger.RemoveReclaimer(&reclaimer);
  EXPECT_EQ(ledger.TryCommit(kBase, 5 * kPage, true), GuestMemoryLedger::Commit::kRefused);
  EXPECT_EQ(reclaimer.calls, 2);
}

// Random commits, uncommits, trims and frees over two reservations, checked page by page against
// a set of committed pages.
TEST(GuestMemoryLedgerTest, MatchesAPageModelOverRandomOperations) {
  const uint32_t seed = testing::TestSeed(17);
  std::mt19937_64 random(seed);
  constexpr int kPages = 64;
  constexpr uintptr_t kSecond = kBase + kPages * kPage;
  const uint64_t budget = 80 * kPage;
  GuestMemoryLedger ledger(budget);
  std::set<uintptr_t> model;  // Committed page addresses.
  std::set<uintptr_t> reserved = {kBase, kSecond};
  ledger.AddReservation(kBase, kPages * kPage);
  ledger.AddReservation(kSecond, kPages * kPage);
  auto in_reservation = [&](uintptr_t page) {
    for (uintptr_t start : reserved) {
      if (page >= start && page < start + kPages * kPage) return true;
    }
    return false;
  };
  for (int step = 0; step < 5000; ++step) {
    const uintptr_t base = random() % 2 == 0 ? kBase : kSecond;
    const uintptr_t first = random() % kPages;
    const uintptr_t count = 1 + random() % (kPages - first);
    const uintptr_t start = base + first * kPage;
    const size_t length = count * kPage;
    switch (random() % 8) {
      case 0:
      case 1:
      case 2: {
        uint64_t added = 0;
        for (uintptr_t page = start; page < start + length; page += kPage) {
          added += model.contains(page) ? 0 : kPage;
        }
        const bool guest = in_reservation(start);
        const GuestMemoryLedger::Commit expected = !guest ? GuestMemoryLedger::Commit::kNotGuest
                                                   : model.size() * kPage + added > budget
                                                       ? GuestMemoryLedger::Commit::kRefused
                                                       : GuestMemoryLedger::Commit::kCharged;
        ASSERT_EQ(ledger.TryCommit(start, length, true), expected) << "step " << step;
        if (expected == GuestMemoryLedger::Commit::kCharged) {
          for (uintptr_t page = start; page < start + length; page += kPage) model.insert(page);
        }
        break;
      }
      case 3:
      case 4:
        ledger.Uncommit(start, length);
        if (in_reservation(start)) {
          for (uintptr_t page = start; page < start + length; page += kPage) model.erase(page);
        }
        break;
      case 5:
        if (reserved.contains(base)) {
          ledger.TrimReservation(base, kPages * kPage, first * kPage);
          for (uintptr_t page = base + first * kPage; page < base + kPages * kPage; page += kPage) {
            model.erase(page);
          }
          ASSERT_EQ(ledger.usage().committed_bytes, model.size() * kPage) << "step " << step;
          // The trimmed tail is no longer the reservation's: start it afresh.
          ledger.FreeRange(base, kPages * kPage);
          for (uintptr_t page = base; page < base + kPages * kPage; page += kPage) {
            model.erase(page);
          }
          ledger.AddReservation(base, kPages * kPage);
        }
        break;
      case 6:
        ledger.FreeRange(base, kPages * kPage);
        reserved.erase(base);
        for (uintptr_t page = base; page < base + kPages * kPage; page += kPage) model.erase(page);
        break;
      case 7:
        if (!reserved.contains(base)) {
          ledger.AddReservation(base, kPages * kPage);
          reserved.insert(base);
        }
        break;
    }
    ASSERT_EQ(ledger.usage().committed_bytes, model.size() * kPage) << "step " << step;
  }
}

}  // namespace
}  // namespace tandem::engine
