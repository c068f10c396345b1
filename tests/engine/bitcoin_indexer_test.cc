// The example Bitcoin indexers on real blocks, the C one and (when node and npm built it) its
// AssemblyScript twin: their views must give the fixtures' independently computed figures, and
// both must write the same keys and values for every block. Each block runs on a fresh instance
// over the writes of the blocks before it.
#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
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

// The guests under test, by file name (guests/README.md).
std::vector<std::string> Indexers() {
  std::vector<std::string> guests = {"bitcoin_indexer"};
#ifdef TANDEM_HAVE_ASSEMBLYSCRIPT_GUEST
  guests.push_back("bitcoin_indexer_as");
#endif
  return guests;
}

class BitcoinIndexerTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    module_ = testing::LoadGuestOrDie(GetParam());
    ASSERT_NE(module_, nullptr);
    blocks_ = LoadFixtureBlocks();
    ASSERT_EQ(blocks_.size(), 20u);
  }

  // Indexes every fixture block in file order at heights 1, 2, ..., committing each block's writes
  // to `state_` at its height, as the store would.
  void IndexAll() {
    for (size_t i = 0; i < blocks_.size(); ++i) {
      auto instance = Instance::Create(testing::TestWorkers(), *module_, {});
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
    auto instance = Instance::Create(testing::TestWorkers(), *module_, {});
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

TEST_P(BitcoinIndexerTest, BlockSummariesMatchTheFixtures) {
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

TEST_P(BitcoinIndexerTest, ViewsSeeOnlyTheirHeight) {
  IndexAll();
  // Before block 5 was indexed, its summary does not exist.
  EXPECT_EQ(View("block_summary", 4, U32Le(5)), "");
  EXPECT_EQ(View("block_summary", 5, U32Le(5)).size(), 48u);
  // An empty request means the view's own height.
  EXPECT_EQ(View("block_summary", 5, ""), View("block_summary", 5, U32Le(5)));
}

TEST_P(BitcoinIndexerTest, CoinbaseOutpointAndScriptTotalsOfSingleTransactionBlocks) {
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

TEST_P(BitcoinIndexerTest, MalformedBlockAbortsWithItsCause) {
  auto instance = Instance::Create(testing::TestWorkers(), *module_, {});
  ASSERT_TRUE(instance.ok());
  std::string truncated = blocks_[0].bytes.substr(0, 100);
  absl::Status status = (*instance)->RunBlock(1, truncated, state_, kDeadline).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted) << status;
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("malformed block"));
}

INSTANTIATE_TEST_SUITE_P(Guests, BitcoinIndexerTest, ::testing::ValuesIn(Indexers()),
                         [](const auto& info) { return info.param; });

TEST(BitcoinIndexerAbortTest, NamesItsSourceFileNotTheBuildMachinesFolders) {
  auto module = testing::LoadGuestOrDie("bitcoin_indexer");
  ASSERT_NE(module, nullptr);
  auto instance = Instance::Create(testing::TestWorkers(), *module, {});
  ASSERT_TRUE(instance.ok()) << instance.status();
  MemoryStateReader state;
  absl::Status status = (*instance)->RunView("outpoint", 1, "abc", state, kDeadline).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted) << status;
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr(" at bitcoin_indexer.c:"));
  // Nor do the module's bytes hold the source folder (TANDEM_TEST_DATA_DIR is <source>/tests/data).
  const std::string source_dir(TANDEM_TEST_DATA_DIR, sizeof(TANDEM_TEST_DATA_DIR) - 1 - 11);
  EXPECT_EQ(testing::GuestBytes("bitcoin_indexer").find(source_dir), std::string::npos)
      << "the module carries " << source_dir;
}

#ifdef TANDEM_HAVE_ASSEMBLYSCRIPT_GUEST
// "malformed block: <what> at byte <N>" out of an abort message, or "" when there is none.
std::string MalformedCause(absl::string_view message) {
  const size_t start = message.find("malformed block: ");
  const size_t at_byte = message.find(" at byte ", start);
  if (start == absl::string_view::npos || at_byte == absl::string_view::npos) return "";
  size_t end = at_byte + 9;
  while (end < message.size() && absl::ascii_isdigit(message[end])) ++end;
  return std::string(message.substr(start, end - start));
}

// Block by block over the same committed state, the AssemblyScript indexer writes exactly what
// the C one writes (so both nodes' state roots agree), and refuses a malformed block alike.
TEST(BitcoinIndexersTest, AssemblyScriptWritesWhatCWrites) {
  auto c = testing::LoadGuestOrDie("bitcoin_indexer");
  auto as = testing::LoadGuestOrDie("bitcoin_indexer_as");
  ASSERT_NE(c, nullptr);
  ASSERT_NE(as, nullptr);
  std::vector<FixtureBlock> blocks = LoadFixtureBlocks();
  MemoryStateReader state;
  size_t writes = 0;
  for (size_t i = 0; i < blocks.size(); ++i) {
    SCOPED_TRACE(absl::StrCat(blocks[i].network, " block ", blocks[i].height));
    const uint32_t height = static_cast<uint32_t>(i + 1);
    auto c_instance = Instance::Create(testing::TestWorkers(), *c, {});
    auto as_instance = Instance::Create(testing::TestWorkers(), *as, {});
    ASSERT_TRUE(c_instance.ok() && as_instance.ok());
    auto c_result = (*c_instance)->RunBlock(height, blocks[i].bytes, state, kDeadline);
    auto as_result = (*as_instance)->RunBlock(height, blocks[i].bytes, state, kDeadline);
    ASSERT_TRUE(c_result.ok()) << c_result.status();
    ASSERT_TRUE(as_result.ok()) << as_result.status();
    std::map<std::string, std::string> c_writes(c_result->writes.begin(), c_result->writes.end());
    std::map<std::string, std::string> as_writes(as_result->writes.begin(),
                                                 as_result->writes.end());
    ASSERT_EQ(as_writes.size(), c_writes.size());
    for (const auto& [key, value] : c_writes) {
      auto found = as_writes.find(key);
      ASSERT_NE(found, as_writes.end()) << "AssemblyScript lacks " << absl::BytesToHexString(key);
      ASSERT_EQ(absl::BytesToHexString(found->second), absl::BytesToHexString(value))
          << absl::BytesToHexString(key);
    }
    writes += c_writes.size();
    for (const auto& [key, value] : c_writes) state.Put(height, key, value);
  }
  EXPECT_GT(writes, 1000u);

  for (size_t cut : {size_t{0}, size_t{50}, size_t{100}, blocks[2].bytes.size() - 1}) {
    SCOPED_TRACE(cut);
    std::string truncated = blocks[2].bytes.substr(0, cut);
    auto c_status = (*Instance::Create(testing::TestWorkers(), *c, {}))
                        ->RunBlock(1, truncated, state, kDeadline)
                        .status();
    auto as_status = (*Instance::Create(testing::TestWorkers(), *as, {}))
                         ->RunBlock(1, truncated, state, kDeadline)
                         .status();
    EXPECT_EQ(c_status.code(), absl::StatusCode::kAborted);
    EXPECT_EQ(as_status.code(), absl::StatusCode::kAborted);
    // The same cause at the same byte; only the source file named after it differs.
    EXPECT_EQ(MalformedCause(as_status.message()), MalformedCause(c_status.message()));
    EXPECT_THAT(MalformedCause(c_status.message()), ::testing::StartsWith("malformed block: "));
  }
}
#endif  // TANDEM_HAVE_ASSEMBLYSCRIPT_GUEST

}  // namespace
}  // namespace tandem::engine
