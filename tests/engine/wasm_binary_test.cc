// Tests for the WebAssembly binary reader and the memory-maximum rewrite.
#include "engine/wasm_binary.h"

#include <set>

#include "gtest/gtest.h"
#include "tests/engine/test_support.h"

namespace tandem::engine {
namespace {

using testing::GuestBytes;

TEST(WasmBinaryTest, ReadsImportsExportsAndSignatures) {
  absl::StatusOr<WasmModuleInfo> info = ParseWasmBinary(GuestBytes("grow"));
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_EQ(info->imports.size(), 3u);
  EXPECT_EQ(info->imports[0].module, "env");
  EXPECT_EQ(info->imports[0].name, "__host_len");
  EXPECT_EQ(info->imports[0].signature.ToString(), "() -> i32");
  EXPECT_EQ(info->imports[1].signature.ToString(), "(i32) -> ()");
  const WasmExport* pages = info->FindExport("pages");
  ASSERT_NE(pages, nullptr);
  EXPECT_EQ(pages->kind, ExternalKind::kFunction);
  EXPECT_EQ(pages->signature.ToString(), "() -> i32");
  ASSERT_EQ(info->memories.size(), 1u);
  EXPECT_EQ(info->memories[0].initial_pages, 1u);
  EXPECT_FALSE(info->memories[0].maximum_pages.has_value());
}

TEST(WasmBinaryTest, RewritesTheMemoryMaximum) {
  std::string bytes = GuestBytes("big_initial_memory");
  absl::StatusOr<std::string> rewritten = RewriteMemoryMaximum(bytes, 300);
  ASSERT_TRUE(rewritten.ok()) << rewritten.status();
  absl::StatusOr<WasmModuleInfo> info = ParseWasmBinary(*rewritten);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->memories[0].initial_pages, 64u);
  EXPECT_EQ(info->memories[0].maximum_pages, 300u);
  // Everything but the memory section is carried over unchanged.
  EXPECT_EQ(info->exports.size(), ParseWasmBinary(bytes)->exports.size());
  EXPECT_FALSE(RewriteMemoryMaximum(bytes, 63).ok());
}

TEST(WasmBinaryTest, RefusesGarbageAndTruncation) {
  EXPECT_FALSE(ParseWasmBinary("").ok());
  EXPECT_FALSE(ParseWasmBinary("not wasm at all").ok());
  std::string bytes = GuestBytes("grow");
  // Section boundaries: a module cut exactly there is structurally whole (V8 judges the rest).
  std::set<size_t> boundaries;
  for (size_t position = 8; position < bytes.size();) {
    boundaries.insert(position);
    size_t size = 0;
    int shift = 0;
    size_t cursor = position + 1;
    uint8_t byte;
    do {
      byte = static_cast<uint8_t>(bytes[cursor++]);
      size |= size_t{byte & 0x7fu} << shift;
      shift += 7;
    } while (byte & 0x80);
    position = cursor + size;
  }
  // Every other prefix is refused with a clear error, never read past its end.
  for (size_t length = 8; length < bytes.size(); ++length) {
    if (boundaries.count(length) != 0) continue;
    absl::StatusOr<WasmModuleInfo> info =
        ParseWasmBinary(absl::string_view(bytes).substr(0, length));
    EXPECT_FALSE(info.ok()) << "prefix of " << length << " bytes was accepted";
  }
}

TEST(WasmBinaryTest, RefusesOverlongLeb) {
  // Header, then a type section whose size is an LEB128 with six continuation bytes.
  std::string bytes("\0asm\1\0\0\0\1\xff\xff\xff\xff\xff\x01", 15);
  absl::StatusOr<WasmModuleInfo> info = ParseWasmBinary(bytes);
  ASSERT_FALSE(info.ok());
  EXPECT_NE(info.status().message().find("LEB128"), absl::string_view::npos) << info.status();
}

}  // namespace
}  // namespace tandem::engine
