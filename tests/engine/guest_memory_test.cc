// Tests for bounds-checked reads of guest memory at the edges: pointers near 0 and near 2^32.
#include "engine/guest_memory.h"

#include <string>

#include "gtest/gtest.h"

namespace tandem::engine {
namespace {

std::string MemoryWithPrefix(size_t size, uint32_t at, uint32_t length) {
  std::string memory(size, '\0');
  for (int i = 0; i < 4; ++i) memory[at - 4 + i] = static_cast<char>((length >> (8 * i)) & 0xff);
  return memory;
}

TEST(GuestMemoryTest, ReadsDataAfterItsLengthPrefix) {
  std::string memory = MemoryWithPrefix(64, 8, 3);
  memory.replace(8, 3, "abc");
  absl::StatusOr<absl::string_view> bytes = ReadLengthPrefixed(memory, 8);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, "abc");
  EXPECT_EQ(bytes->data(), memory.data() + 8);
}

TEST(GuestMemoryTest, DataEndingExactlyAtTheEndIsInBounds) {
  std::string memory = MemoryWithPrefix(16, 12, 4);
  EXPECT_TRUE(ReadLengthPrefixed(memory, 12).ok());
  memory = MemoryWithPrefix(16, 12, 5);
  EXPECT_FALSE(ReadLengthPrefixed(memory, 12).ok());
}

TEST(GuestMemoryTest, RefusesPointersWithoutRoomForThePrefix) {
  std::string memory(64, '\0');
  for (uint32_t pointer : {0u, 1u, 3u, 65u, 0xfffffffcu, 0xffffffffu}) {
    EXPECT_FALSE(ReadLengthPrefixed(memory, pointer).ok()) << pointer;
  }
  EXPECT_TRUE(ReadLengthPrefixed(memory, 4).ok());   // Prefix at 0, length 0.
  EXPECT_TRUE(ReadLengthPrefixed(memory, 64).ok());  // Empty data right at the end.
}

TEST(GuestMemoryTest, HugeLengthsDoNotWrapAround) {
  std::string memory = MemoryWithPrefix(64, 8, 0xffffffffu);
  absl::Status status = ReadLengthPrefixed(memory, 8).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("runs past the end"), absl::string_view::npos) << status;
  EXPECT_FALSE(InGuestMemory(memory, 0xffffffffull, 2));
  EXPECT_TRUE(InGuestMemory(memory, 64, 0));
  EXPECT_FALSE(InGuestMemory(memory, 65, 0));
}

}  // namespace
}  // namespace tandem::engine
