// Loads tests/data/bitcoin_blocks.json: real Bitcoin blocks with independently computed figures.
// Test-only. The file is a flat JSON array of flat objects, which this reader handles and no more.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tests/engine/test_support.h"

namespace tandem::engine::testing {

struct FixtureBlock {
  std::string network;
  uint32_t height = 0;
  std::string id;  // As explorers show it (byte-reversed double SHA-256 of the header).
  uint32_t tx_count = 0;
  uint32_t output_count = 0;
  uint64_t output_sum_sat = 0;
  bool has_witness = false;
  std::string bytes;  // The serialized block.
};

// Returns the value text of `"field": ...` inside `object` (strings without their quotes).
inline std::string JsonField(absl::string_view object, absl::string_view field) {
  std::string needle = absl::StrCat("\"", field, "\":");
  size_t at = object.find(needle);
  if (at == absl::string_view::npos) return "";
  size_t start = at + needle.size();
  while (start < object.size() && object[start] == ' ') ++start;
  if (object[start] == '"') {
    size_t end = object.find('"', start + 1);
    return std::string(object.substr(start + 1, end - start - 1));
  }
  size_t end = object.find_first_of(",}", start);
  return std::string(object.substr(start, end - start));
}

inline std::vector<FixtureBlock> LoadFixtureBlocks() {
  std::string json = ReadFileOrDie(std::string(TANDEM_TEST_DATA_DIR) + "/bitcoin_blocks.json");
  std::vector<FixtureBlock> blocks;
  size_t position = 0;
  while ((position = json.find('{', position)) != std::string::npos) {
    size_t end = json.find('}', position);
    absl::string_view object(json.data() + position, end - position + 1);
    FixtureBlock block;
    block.network = JsonField(object, "network");
    EXPECT_TRUE(absl::SimpleAtoi(JsonField(object, "height"), &block.height));
    block.id = JsonField(object, "id");
    EXPECT_TRUE(absl::SimpleAtoi(JsonField(object, "tx_count"), &block.tx_count));
    EXPECT_TRUE(absl::SimpleAtoi(JsonField(object, "output_count"), &block.output_count));
    EXPECT_TRUE(absl::SimpleAtoi(JsonField(object, "output_sum_sat"), &block.output_sum_sat));
    block.has_witness = JsonField(object, "has_witness") == "true";
    block.bytes = absl::HexStringToBytes(JsonField(object, "hex"));
    blocks.push_back(std::move(block));
    position = end + 1;
  }
  return blocks;
}

}  // namespace tandem::engine::testing
