// Hash byte orders and the parent hash of a serialized block, on a real block (Bitcoin's block
// 170, from the test fixtures' source: its header and the hashes explorers show).
#include "tools/follow/chain_hash.h"

#include <string>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace tandem::follow {
namespace {

// Block 170's header: version 1, parent = block 169, merkle root, time, bits, nonce.
constexpr char kHeader170[] =
    "0100000055bd840a78798ad0da853f68974f3d183e2bd1db6a842c1feecf222a00000000ff104ccb05421ab93e63"
    "f8c3ce5c2c2e9dbb37de2764b3a3175c8166562cac7d51b96a49ffff001d283e9e70";
constexpr char kParent169Display[] =
    "000000002a22cfee1f2c846adbd12b3e183d4f97683f85dad08a79780a84bd55";

TEST(ChainHashTest, DisplayHexRoundTrips) {
  absl::StatusOr<std::string> hash = HashFromDisplayHex(kParent169Display);
  ASSERT_TRUE(hash.ok()) << hash.status();
  ASSERT_EQ(hash->size(), kHashBytes);
  // Internal order is the reverse of the display order: the zero bytes come last.
  EXPECT_EQ(absl::BytesToHexString(hash->substr(28)), "00000000");
  EXPECT_EQ(DisplayHex(*hash), kParent169Display);
}

TEST(ChainHashTest, ParentHashIsReadFromTheHeaderInInternalOrder) {
  const std::string block = absl::HexStringToBytes(kHeader170) + std::string(1, '\0');
  absl::StatusOr<std::string> parent = ParentHash(block);
  ASSERT_TRUE(parent.ok()) << parent.status();
  EXPECT_EQ(DisplayHex(*parent), kParent169Display);
  EXPECT_EQ(*parent, *HashFromDisplayHex(kParent169Display));
}

TEST(ChainHashTest, RefusesWhatIsNotAHashOrABlock) {
  EXPECT_EQ(HashFromDisplayHex("00ff").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HashFromDisplayHex(std::string(64, 'g')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeHex("abc").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*DecodeHex("00FFab"), std::string("\x00\xff\xab", 3));
  EXPECT_EQ(ParentHash(std::string(79, '\0')).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem::follow
