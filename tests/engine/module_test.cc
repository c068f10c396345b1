// Tests for module loading: validation against the host ABI, the memory cap, compile errors; and
// the V8 version the platform reports.
#include "engine/module.h"

#include "engine/platform.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/test_support.h"

namespace tandem::engine {
namespace {

using testing::GuestBytes;
using testing::InitializeV8OrDie;

absl::Status LoadStatus(absl::string_view guest, uint64_t limit = kDefaultMemoryLimitBytes) {
  InitializeV8OrDie();
  return Module::Load(GuestBytes(guest), ModuleOptions{limit}).status();
}

void ExpectRefused(absl::string_view guest, absl::string_view expected_text) {
  absl::Status status = LoadStatus(guest);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << guest << ": " << status;
  EXPECT_NE(status.message().find(expected_text), absl::string_view::npos)
      << guest << ": \"" << status.message() << "\" does not mention \"" << expected_text << "\"";
}

TEST(ModuleTest, LoadsValidGuests) {
  EXPECT_TRUE(LoadStatus("minimal").ok());
  EXPECT_TRUE(LoadStatus("bitcoin_indexer").ok());
}

TEST(ModuleTest, RefusesAnUnknownImportAndNamesIt) {
  ExpectRefused("unknown_import", "env.__bogus_host_function");
}

TEST(ModuleTest, RefusesAWrongImportSignatureAndNamesBoth) {
  ExpectRefused("wrong_signature", "env.__get_len as (i64) -> i32");
  ExpectRefused("wrong_signature", "(i32) -> i32");
}

TEST(ModuleTest, RefusesMissingStartMemoryExportAndImportedMemory) {
  ExpectRefused("no_start", "\"_start\"");
  ExpectRefused("no_memory_export", "\"memory\"");
  ExpectRefused("imported_memory", "env.memory");
}

TEST(ModuleTest, RefusesBytesThatAreNotAModule) {
  InitializeV8OrDie();
  absl::Status status = Module::Load("hello", ModuleOptions{}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("not a WebAssembly module"), absl::string_view::npos);
}

TEST(ModuleTest, RefusesCodeThatDoesNotCompile) {
  InitializeV8OrDie();
  // A valid header and sections, then a code section whose body is garbage.
  std::string bytes = GuestBytes("minimal");
  bytes.append("\x0a\x04\x01\x02\xff\xff", 6);
  absl::Status status = Module::Load(bytes, ModuleOptions{}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
}

TEST(ModuleTest, CapsTheMemoryAndRefusesAnInitialSizeAboveIt) {
  InitializeV8OrDie();
  // 10 MiB + 1 byte rounds down to 160 pages.
  absl::StatusOr<std::unique_ptr<Module>> module =
      Module::Load(GuestBytes("grow"), ModuleOptions{(10u << 20) + 1});
  ASSERT_TRUE(module.ok()) << module.status();
  EXPECT_EQ((*module)->memory_limit_pages(), 160u);
  EXPECT_EQ((*module)->memory_limit_bytes(), 10u << 20);

  absl::Status status = LoadStatus("big_initial_memory", 1u << 20);  // 16 pages < 64.
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("above the memory limit"), absl::string_view::npos) << status;

  // The module's own smaller maximum stands (1000 pages < 4 GiB).
  module = Module::Load(GuestBytes("big_initial_memory"), ModuleOptions{});
  ASSERT_TRUE(module.ok()) << module.status();
  EXPECT_EQ((*module)->memory_limit_pages(), 1000u);
}

TEST(ModuleTest, ChecksCallableExports) {
  std::unique_ptr<Module> module = testing::LoadGuestOrDie("minimal");
  ASSERT_NE(module, nullptr);
  EXPECT_TRUE(module->CheckCallableExport("answer").ok());
  EXPECT_EQ(module->CheckCallableExport("missing").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(module->CheckCallableExport("_start").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(module->CheckCallableExport("memory").code(), absl::StatusCode::kNotFound);
}

// Build identity (tandem_build_info) names the V8 the process runs: "major.minor.build...".
TEST(PlatformTest, ReportsV8Version) {
  EXPECT_THAT(V8Version(), ::testing::MatchesRegex("[0-9]+\\.[0-9]+\\.[0-9]+.*"));
}

}  // namespace
}  // namespace tandem::engine
