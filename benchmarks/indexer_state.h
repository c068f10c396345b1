// Synthetic indexer-like state for the store benchmarks: keys of a short prefix and a 32-byte
// hash, values of 8-80 bytes, blocks that write new keys and rewrite old ones. Benchmark-only;
// deterministic for (key index, height), so nothing has to be kept in memory to re-derive a key.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/write_set.h"

namespace tandem::bench {

// splitmix64: a cheap, well-mixed 64-bit sequence (the keys only need to look like hashes).
inline uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Key number `i`: one of three prefixes (as the example indexer's `outpoint/`, `script/`,
// `spend/`) followed by 32 bytes that look like a hash.
inline std::string IndexerKey(uint64_t i) {
  static const char* const kPrefixes[] = {"outpoint/", "script/", "spend/"};
  std::string key = kPrefixes[i % 3];
  for (int word = 0; word < 4; ++word) {
    uint64_t bits = Mix64(i * 4 + static_cast<uint64_t>(word));
    for (int b = 0; b < 8; ++b) key.push_back(static_cast<char>(bits >> (8 * b)));
  }
  return key;
}

// A value of 8 to 80 bytes derived from (i, height).
inline std::string IndexerValue(uint64_t i, uint32_t height) {
  uint64_t bits = Mix64(i ^ (static_cast<uint64_t>(height) << 40));
  std::string value(8 + bits % 73, '\0');
  for (size_t b = 0; b < value.size(); ++b) {
    if (b % 8 == 0) bits = Mix64(bits);
    value[b] = static_cast<char>(bits >> (8 * (b % 8)));
  }
  return value;
}

// Blocks over a growing key space: block h writes `fresh` keys never written before (numbered
// in order) and `rewrites` keys drawn uniformly from those written earlier, one in twenty of the
// rewrites a delete. Everything follows from (h, fresh, rewrites, keys before h).
struct IndexerBlocks {
  uint64_t fresh = 0;
  uint64_t rewrites = 0;

  // Keys written by blocks start..h-1 when every block writes `fresh` new ones.
  uint64_t KeysBefore(uint32_t start, uint32_t height) const {
    return static_cast<uint64_t>(height - start) * fresh;
  }

  util::WriteSet Block(uint32_t start, uint32_t height) const {
    util::WriteSet writes;
    const uint64_t first = KeysBefore(start, height);
    for (uint64_t i = first; i < first + fresh; ++i) {
      writes.insert_or_assign(IndexerKey(i), IndexerValue(i, height));
    }
    uint64_t bits = Mix64(0xb10c0000ull + height);
    for (uint64_t r = 0; r < rewrites && first > 0; ++r) {
      bits = Mix64(bits);
      const uint64_t i = bits % first;
      writes.insert_or_assign(IndexerKey(i),
                              bits % 20 == 0 ? std::string() : IndexerValue(i, height));
    }
    return writes;
  }
};

}  // namespace tandem::bench
