// The deterministic blocks the crash test's writer commits, so the checker can recompute them.
// It must never depend on randomness outside (height, variant): both processes derive the same
// bytes.
#pragma once

#include <cstdint>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "store/block_store.h"
#include "store/state_root.h"

namespace tandem::store::testing {

inline constexpr uint32_t kCrashStartHeight = 1000;
inline constexpr int kCrashKeySpace = 400;
// The writer picks one of these variants for every height it commits (a re-commit after a
// rollback may pick another); the checker finds which by the block hash.
inline constexpr int kCrashVariants = 16;

inline std::string CrashKey(int i) { return absl::StrCat("key/", i); }

inline std::string CrashBlockBytes(uint32_t height, int variant) {
  return absl::StrCat("block ", height, " variant ", variant);
}

// Block (height, variant): 50..299 writes over the key space, about a fifth of them deletes,
// values long enough that a large block spans several WAL records.
inline WriteSet CrashBlockWrites(uint32_t height, int variant) {
  std::mt19937 rng(height * 7919u + static_cast<uint32_t>(variant));
  WriteSet writes;
  const int count = 50 + static_cast<int>(rng() % 250);
  for (int i = 0; i < count; ++i) {
    const std::string key = CrashKey(static_cast<int>(rng() % kCrashKeySpace));
    if (rng() % 5 == 0) {
      writes[key] = "";
    } else {
      writes[key] = absl::StrCat("h", height, "v", variant, "i", i, std::string(rng() % 200, 'x'));
    }
  }
  return writes;
}

}  // namespace tandem::store::testing
