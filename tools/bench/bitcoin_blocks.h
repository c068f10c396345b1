// Blocks for the benchmarks: the real fixture blocks (tests/data/bitcoin_blocks.json) and
// synthetic Bitcoin blocks that continue a chain. Header-only, abseil and OpenSSL only, so both
// the in-process benchmarks (benchmarks/) and tandem-bench (a pure gRPC client) can use it.
// It must never depend on tandem's own libraries.
#pragma once

#include <openssl/sha.h>

#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/string_view.h"

namespace tandem::bench {

inline std::string Sha256(absl::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

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
// plus up to `max_spends` transactions that spend outputs of earlier generated blocks, so an
// indexer's reads of committed state are exercised. Deterministic for a seed. With the default
// of 3 spends a block is about 300–700 bytes: the "small blocks" of the benchmarks.
// Not thread-safe.
class SyntheticBlocks {
 public:
  explicit SyntheticBlocks(uint32_t seed, int max_spends = 3)
      : random_(seed), max_spends_(max_spends) {}

  std::string Next(uint32_t height) {
    std::vector<std::string> transactions;
    transactions.push_back(Transaction(height, /*coinbase=*/true));
    int spends = static_cast<int>(random_() % static_cast<uint32_t>(max_spends_ + 1));
    for (int i = 0; i < spends && !unspent_.empty(); ++i) {
      transactions.push_back(Transaction(height, /*coinbase=*/false));
    }
    std::string block;
    AppendU32Le(block, 0x20000000);
    block.append(previous_id_);
    block.append(32, '\x11');  // Merkle root: not checked by the indexers.
    AppendU32Le(block, 1600000000 + height);
    AppendU32Le(block, 0x1d00ffff);
    AppendU32Le(block, static_cast<uint32_t>(random_()));
    previous_id_ = Sha256(Sha256(block.substr(0, 80)));
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
      unspent_[pick] = std::move(unspent_.back());  // O(1): order does not matter.
      unspent_.pop_back();
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
    std::string txid = Sha256(Sha256(tx));
    for (int i = 0; i < outputs; ++i) unspent_.emplace_back(txid, i);
    return tx;
  }

  std::mt19937 random_;
  const int max_spends_;
  std::string previous_id_ = std::string(32, '\0');
  std::vector<std::pair<std::string, uint32_t>> unspent_;
};

// The serialized blocks of tests/data/bitcoin_blocks.json (the "hex" field of each object, in
// file order). Returns an empty vector when the file cannot be read.
inline std::vector<std::string> LoadFixtureBlocks(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in.good()) return {};
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string json = buffer.str();
  std::vector<std::string> blocks;
  const std::string needle = "\"hex\":";
  size_t at = 0;
  while ((at = json.find(needle, at)) != std::string::npos) {
    size_t start = json.find('"', at + needle.size());
    if (start == std::string::npos) break;
    size_t end = json.find('"', start + 1);
    if (end == std::string::npos) break;
    blocks.push_back(
        absl::HexStringToBytes(absl::string_view(json).substr(start + 1, end - start - 1)));
    at = end + 1;
  }
  return blocks;
}

}  // namespace tandem::bench
