// The state root and block hash (docs/design.md, "Storage and the state root"), as pure functions.
// It must never touch the database: other nodes and tests recompute roots with exactly this code.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "util/write_set.h"

namespace tandem::store {

// A block's final writes, ordered by key bytewise (std::string compares as unsigned bytes).
// An empty value is a delete. The engine's BlockWrites is the same type, so a block's writes
// reach the store by move.
using WriteSet = util::WriteSet;

// Length of every hash and root: SHA-256.
inline constexpr size_t kHashSize = 32;

// SHA-256 of `data`, as 32 raw bytes. Also the block hash when the client gives none.
std::string Sha256(std::string_view data);

// root(start - 1): 32 zero bytes.
std::string ZeroRoot();

// WritesDigest, fed one write at a time, so that a caller walking the writes for another reason
// (the store, building its batch) hashes them in the same pass.
// Threading: one thread at a time.
class WritesDigester {
 public:
  WritesDigester();
  ~WritesDigester();
  WritesDigester(const WritesDigester&) = delete;
  WritesDigester& operator=(const WritesDigester&) = delete;

  // REQUIRES: keys come in strictly increasing bytewise order.
  void Add(std::string_view key, std::string_view value);
  // The digest of every write added. REQUIRES: called once, last.
  std::string Finish();

 private:
  struct Context;
  std::unique_ptr<Context> context_;
};

// SHA-256 over the writes sorted by key, each as u32 BE len(k) ‖ k ‖ u32 BE len(v) ‖ v (a deleted
// key has an empty v). Streams the writes through one hash context: O(writes), no copy.
std::string WritesDigest(const WriteSet& writes);

// root(h) = SHA-256(root(h-1) ‖ u32 BE h ‖ writes_digest), with writes_digest from WritesDigest.
// REQUIRES: prev_root.size() == kHashSize.
std::string ChainStateRoot(std::string_view prev_root, uint32_t height,
                           std::string_view writes_digest);

// root(h) = SHA-256(root(h-1) ‖ u32 BE h ‖ WritesDigest(writes)).
// REQUIRES: prev_root.size() == kHashSize.
std::string ComputeStateRoot(std::string_view prev_root, uint32_t height, const WriteSet& writes);

}  // namespace tandem::store
