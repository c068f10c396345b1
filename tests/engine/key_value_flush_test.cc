// Tests for the KeyValueFlush decoder that reads guests' __flush messages.
#include "engine/key_value_flush.h"

#include <string>

#include "gtest/gtest.h"

namespace tandem::engine {
namespace {

using Pairs = std::vector<std::pair<absl::string_view, absl::string_view>>;

std::string Field(int number, absl::string_view bytes) {
  std::string out;
  out.push_back(static_cast<char>((number << 3) | 2));
  size_t length = bytes.size();
  do {
    uint8_t byte = length & 0x7f;
    length >>= 7;
    if (length != 0) byte |= 0x80;
    out.push_back(static_cast<char>(byte));
  } while (length != 0);
  out.append(bytes.data(), bytes.size());
  return out;
}

TEST(KeyValueFlushTest, DecodesPairsInOrder) {
  std::string message = Field(1, "k0") + Field(1, "v0") + Field(1, "k1") + Field(1, "");
  Pairs pairs;
  ASSERT_TRUE(DecodeKeyValueFlush(message, pairs).ok());
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[0], (std::pair<absl::string_view, absl::string_view>("k0", "v0")));
  EXPECT_EQ(pairs[1].first, "k1");
  EXPECT_TRUE(pairs[1].second.empty());  // An empty value: a delete.
}

TEST(KeyValueFlushTest, EmptyMessageIsAnEmptyList) {
  Pairs pairs;
  EXPECT_TRUE(DecodeKeyValueFlush("", pairs).ok());
  EXPECT_TRUE(pairs.empty());
}

TEST(KeyValueFlushTest, LongValuesUseMultiByteLengths) {
  std::string value(70000, 'x');
  Pairs pairs;
  ASSERT_TRUE(DecodeKeyValueFlush(Field(1, "key") + Field(1, value), pairs).ok());
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_EQ(pairs[0].second.size(), 70000u);
}

TEST(KeyValueFlushTest, SkipsUnknownFieldsAsProtobufDoes) {
  std::string message = Field(1, "k") + std::string("\x10\x96\x01", 3) + Field(7, "ignored") +
                        std::string("\x1d\x01\x02\x03\x04", 5) + Field(1, "v");
  Pairs pairs;
  ASSERT_TRUE(DecodeKeyValueFlush(message, pairs).ok());
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_EQ(pairs[0].second, "v");
}

TEST(KeyValueFlushTest, RefusesMalformedMessagesAndLeavesPairsAlone) {
  const std::string bad[] = {
      Field(1, "k"),  // A key without its value.
      std::string("\x0a\x05"
                  "abc",
                  5),              // Length past the end.
      std::string("\x0a", 1),      // Missing length.
      std::string("\x08\x01", 2),  // Field 1 as a varint.
      std::string("\x0b", 1),      // Wire type 3 (groups): invalid here.
      std::string("\x00\x00", 2),  // Field number 0.
      std::string("\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11),  // Overlong varint.
  };
  for (const std::string& message : bad) {
    Pairs pairs = {{"kept", "kept"}};
    absl::Status status = DecodeKeyValueFlush(message, pairs);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_NE(status.message().find("malformed flush"), absl::string_view::npos);
    EXPECT_EQ(pairs.size(), 1u);
  }
}

}  // namespace
}  // namespace tandem::engine
