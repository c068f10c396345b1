// Tests of the pure state-root functions against a rewrite of docs/design.md's formula.
// It must never touch a database: roots are pure functions of their inputs.
#include "store/state_root.h"

#include <random>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "tests/store/test_util.h"

namespace tandem::store {
namespace {

namespace t = testing;

TEST(StateRootTest, Sha256MatchesAKnownVector) {
  EXPECT_EQ(absl::BytesToHexString(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(absl::BytesToHexString(Sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(StateRootTest, ZeroRootIs32ZeroBytes) { EXPECT_EQ(ZeroRoot(), std::string(32, '\0')); }

TEST(StateRootTest, EmptyBlockRootIsSpelledOut) {
  // root(1) over no writes = SHA-256(32 zero bytes ‖ 00 00 00 01 ‖ SHA-256(""))
  std::string input(32, '\0');
  input += std::string("\0\0\0\1", 4);
  input += t::ReferenceSha256("");
  EXPECT_EQ(ComputeStateRoot(ZeroRoot(), 1, {}), t::ReferenceSha256(input));
}

TEST(StateRootTest, OneWriteIsSpelledOut) {
  // One write "k" = "vv" and one delete "d" at height 0x01020304: sorted "d" < "k".
  const std::string body =
      std::string("\0\0\0\1d\0\0\0\0", 9) + std::string("\0\0\0\1k\0\0\0\2vv", 11);
  const std::string prev(32, '\x07');
  const std::string outer = prev + "\x01\x02\x03\x04" + t::ReferenceSha256(body);
  EXPECT_EQ(WritesDigest({{"k", "vv"}, {"d", ""}}), t::ReferenceSha256(body));
  EXPECT_EQ(ComputeStateRoot(prev, 0x01020304, {{"k", "vv"}, {"d", ""}}),
            t::ReferenceSha256(outer));
}

TEST(StateRootTest, RandomChainsMatchTheReference) {
  std::mt19937 rng(42);
  std::string root = ZeroRoot();
  std::string reference = t::ReferenceZeroRoot();
  for (uint32_t h = 100; h < 300; ++h) {
    WriteSet writes;
    const int count = rng() % 30;
    for (int i = 0; i < count; ++i) {
      std::string key(rng() % 6, '\0');
      for (char& c : key) c = static_cast<char>(rng() % 256);  // high bytes sort after low ones
      std::string value(rng() % 3 == 0 ? 0 : 1 + rng() % 20, 'v');
      writes[key] = value;
    }
    root = ComputeStateRoot(root, h, writes);
    reference = t::ReferenceRoot(reference, h, writes);
    ASSERT_EQ(root, reference) << "height " << h;
  }
}

TEST(StateRootTest, DifferentSplitsOfTheSameBytesGiveDifferentRoots) {
  // Length prefixes keep ("ab","c") and ("a","bc") apart.
  EXPECT_NE(WritesDigest({{"ab", "c"}}), WritesDigest({{"a", "bc"}}));
  EXPECT_NE(ComputeStateRoot(ZeroRoot(), 1, {{"k", ""}}), ComputeStateRoot(ZeroRoot(), 1, {}));
  EXPECT_NE(ComputeStateRoot(ZeroRoot(), 1, {}), ComputeStateRoot(ZeroRoot(), 2, {}));
}

}  // namespace
}  // namespace tandem::store
