// The example Bitcoin indexer on real blocks: its views must give the fixtures' independently
// computed figures. Each block runs on a fresh instance over the writes of the blocks before it.
#include <algorithm>

#include "engine/instance.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/bitcoin_fixtures.h"
#include "tests/engine/test_support.h"

namespace tandem::engine {
namespace {

using testing::FixtureBlock;
using testing::LoadFixtureBlocks;
using testing::MemoryStateReader;
using testing::ReadU32Le;
using testing::ReadU64Le;
using testing::U32Le;

constexpr absl::Duration kDeadline = absl::Seconds(30);

std::string Reversed(std::string bytes) {
  std::reverse(bytes.begin(), bytes.end());
  return bytes;
}

class BitcoinIndexerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    module_ = testing::LoadGuestOrDie("bitcoin_indexer");
    ASSERT_NE(module_, nullptr);
    blocks_ = LoadFixtureBlocks();
    ASSERT_EQ(blocks_.size(), 20u);
  }

  // Indexes every fixture block in file order at heights 1, 2, ..., committing each block's writes
  // to `state_` at its height, as the store would.
  void IndexAll() {
    for (size_t i = 0; i < blocks_.size(); ++i) {
      auto instance = Instance::Create(*module_, {});
      ASSERT_TRUE(instance.ok()) << instance.status();
      uint32_t height = static_cast<uint32_t>(i + 1);
      absl::StatusOr<BlockResult> result =
          (*instance)->RunBlock(height, blocks_[i].bytes, state_, kDeadline);
      ASSERT_TRUE(result.ok()) << blocks_[i].network << " " << blocks_[i].height << ": "
                               << result.status();
      for (const auto& [key, value] : result->writes) state_.Put(height, key, value);
    }
  }

  std::string View(absl::string_view name, uint32_t height, absl::string_view request) {
    auto instance = Instance::Create(*module_, {});
    EXPECT_TRUE(instance.ok()) << instance.status();
    absl::StatusOr<CallResult> result =
        (*instance)->RunView(name, height, request, state_, kDeadline);
    EXPECT_TRUE(result.ok()) << name << ": " << result.status();
    return result.ok() ? result->answer : "";
  }

  std::unique_ptr<Module> module_;
  std::vector<FixtureBlock> blocks_;
  MemoryStateReader state_;
};

TEST_F(BitcoinIndexerTest, BlockSummariesMatchTheFixtures) {
  IndexAll();
  const uint32_t tip = static_cast<uint32_t>(blocks_.size());
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const FixtureBlock& block = blocks_[i];
    SCOPED_TRACE(absl::StrCat(block.network, " block ", block.height));
    std::string summary = View("block_summary", tip, U32Le(static_cast<uint32_t>(i + 1)));
    ASSERT_EQ(summary.size(), 48u);
    EXPECT_EQ(ReadU32Le(summary, 0), block.tx_count);
    EXPECT_EQ(ReadU32Le(summary, 4), block.output_count);
    EXPECT_EQ(ReadU64Le(summary, 8), block.output_sum_sat);
    EXPECT_EQ(absl::BytesToHexString(Reversed(summary.substr(16, 32))), block.id);
  }
}

TEST_F(BitcoinIndexerTest, ViewsSeeOnlyTheirHeight) {
  IndexAll();
  // Before block 5 was indexed, its summary does not exist.
  EXPECT_EQ(View("block_summary", 4, U32Le(5)), "");
  EXPECT_EQ(View("block_summary", 5, U32Le(5)).size(), 48u);
  // An empty request means the view's own height.
  EXPECT_EQ(View("block_summary", 5, ""), View("block_summary", 5, U32Le(5)));
}

TEST_F(BitcoinIndexerTest, CoinbaseOutpointAndScriptTotalsOfSingleTransactionBlocks) {
  IndexAll();
  const uint32_t tip = static_cast<uint32_t>(blocks_.size());
  int checked = 0;
  for (const FixtureBlock& block : blocks_) {
    if (block.tx_count != 1) continue;
    SCOPED_TRACE(absl::StrCat(block.network, " block ", block.height));
    // With one transaction, the merkle root in the header is that transaction's txid.
    std::string txid = block.bytes.substr(36, 32);
    std::string outpoint = View("outpoint", tip, txid + U32Le(0));
    ASSERT_GE(outpoint.size(), 8u);
    if (block.output_count == 1) {
      EXPECT_EQ(ReadU64Le(outpoint), block.output_sum_sat);
    }
    std::string totals = View("script_totals", tip, outpoint.substr(8));
    ASSERT_EQ(totals.size(), 24u);
    EXPECT_GE(ReadU64Le(totals, 0), ReadU64Le(outpoint));  // received_sat
    EXPECT_GE(ReadU64Le(totals, 8), 1u);                   // output_count
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST_F(BitcoinIndexerTest, MalformedBlockAbortsWithItsCause) {
  auto instance = Instance::Create(*module_, {});
  ASSERT_TRUE(instance.ok());
  std::string truncated = blocks_[0].bytes.substr(0, 100);
  absl::Status status = (*instance)->RunBlock(1, truncated, state_, kDeadline).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted) << status;
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("malformed block"));
}

}  // namespace
}  // namespace tandem::engine
