// What AssemblyScript's output brings that clang's does not, one feature per test, each on a
// hand-written module (tests/engine/modules/as_*.wat) and, when node and npm built it, on the
// AssemblyScript example indexer itself (guests/assemblyscript): a start section, bulk-memory
// instructions, a memory with no maximum, the runtime's exports (which take parameters and are
// refused as views, naming their signature), and no env.__log import.
#include <set>

#include "engine/instance.h"
#include "engine/wasm_binary.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/test_support.h"
#include "util/failure_cause.h"

namespace tandem::engine {
namespace {

using testing::GuestBytes;
using ::testing::HasSubstr;
using testing::LoadGuestOrDie;
using testing::MemoryStateReader;
using testing::ReadU32Le;
using testing::U32Le;

constexpr absl::Duration kDeadline = absl::Seconds(30);

std::unique_ptr<Instance> NewInstance(const Module& module) {
  absl::StatusOr<std::unique_ptr<Instance>> instance =
      Instance::Create(testing::TestWorkers(), module, {});
  EXPECT_TRUE(instance.ok()) << instance.status();
  return instance.ok() ? *std::move(instance) : nullptr;
}

// The ids of a module's sections, in order (a reader of the binary format's framing only).
std::vector<uint8_t> SectionIds(absl::string_view bytes) {
  std::vector<uint8_t> ids;
  size_t at = 8;  // Magic and version.
  while (at < bytes.size()) {
    const uint8_t id = static_cast<uint8_t>(bytes[at++]);
    uint64_t size = 0;
    for (int shift = 0; at < bytes.size(); shift += 7) {
      const uint8_t byte = static_cast<uint8_t>(bytes[at++]);
      size |= uint64_t{byte & 0x7fu} << shift;
      if ((byte & 0x80) == 0) break;
    }
    ids.push_back(id);
    at += size;
  }
  return ids;
}

constexpr uint8_t kStartSection = 8;
constexpr uint8_t kDataCountSection = 12;

TEST(AssemblyScriptFeaturesTest, AStartSectionRunsOnceAtInstantiationBeforeAnyExport) {
  ASSERT_THAT(SectionIds(GuestBytes("as_start_section")), ::testing::Contains(kStartSection));
  auto module = LoadGuestOrDie("as_start_section");
  ASSERT_NE(module, nullptr);
  MemoryStateReader state;
  auto instance = NewInstance(*module);
  ASSERT_NE(instance, nullptr);
  absl::StatusOr<CallResult> before = instance->RunView("starts", 0, "", state, kDeadline);
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(ReadU32Le(before->answer), 1u);
  absl::StatusOr<BlockResult> block = instance->RunBlock(1, "", state, kDeadline);
  ASSERT_TRUE(block.ok()) << block.status();
  EXPECT_EQ(block->writes.at("starts"), U32Le(1));  // Not again for the call.
  // Each instance runs it once, for itself.
  auto another = NewInstance(*module);
  ASSERT_NE(another, nullptr);
  EXPECT_EQ(ReadU32Le(another->RunView("starts", 0, "", state, kDeadline)->answer), 1u);
}

// A trap in the start section is a deterministic guest failure: ABORTED, naming the trap, and the
// same outcome every time.
TEST(AssemblyScriptFeaturesTest, AStartSectionThatTrapsMakesNoInstanceEveryTime) {
  auto module = LoadGuestOrDie("as_start_traps");  // It loads: the trap is at run time.
  ASSERT_NE(module, nullptr);
  absl::StatusOr<std::unique_ptr<Instance>> first =
      Instance::Create(testing::TestWorkers(), *module, {});
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.status().code(), absl::StatusCode::kAborted) << first.status();
  EXPECT_EQ(util::CauseOf(first.status()), util::FailureCause::kGuestTrap) << first.status();
  EXPECT_THAT(std::string(first.status().message()), ::testing::HasSubstr("unreachable"));
  for (int attempt = 0; attempt < 3; ++attempt) {
    absl::StatusOr<std::unique_ptr<Instance>> again =
        Instance::Create(testing::TestWorkers(), *module, {});
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.status(), first.status());
  }
}

TEST(AssemblyScriptFeaturesTest, BulkMemoryInstructionsRun) {
  ASSERT_THAT(SectionIds(GuestBytes("as_bulk_memory")), ::testing::Contains(kDataCountSection));
  auto module = LoadGuestOrDie("as_bulk_memory");
  ASSERT_NE(module, nullptr);
  MemoryStateReader state;
  auto instance = NewInstance(*module);
  ASSERT_NE(instance, nullptr);
  absl::StatusOr<BlockResult> block = instance->RunBlock(1, "", state, kDeadline);
  ASSERT_TRUE(block.ok()) << block.status();
  EXPECT_EQ(block->writes.at("bulk"), "hello");  // memory.init, memory.copy.
  absl::StatusOr<CallResult> filled = instance->RunView("filled", 1, "", state, kDeadline);
  ASSERT_TRUE(filled.ok()) << filled.status();
  EXPECT_EQ(filled->answer, std::string(16, '\x5a'));  // memory.fill.
}

TEST(AssemblyScriptFeaturesTest, AMemoryWithNoMaximumGetsTheCapAsItsMaximum) {
  absl::StatusOr<WasmModuleInfo> info = ParseWasmBinary(GuestBytes("grow"));
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_EQ(info->memories.size(), 1u);
  EXPECT_FALSE(info->memories[0].maximum_pages.has_value());
  auto module = LoadGuestOrDie("grow", 4 * kWasmPageBytes);
  ASSERT_NE(module, nullptr);
  EXPECT_EQ(module->memory_limit_pages(), 4u);
  MemoryStateReader state;
  // From 1 page: 3 more fit under the cap (memory.grow answers the old size), 4 do not (-1).
  for (const auto& [pages, expected] : {std::pair{3u, 1}, std::pair{4u, -1}}) {
    auto instance = NewInstance(*module);
    ASSERT_NE(instance, nullptr);
    absl::StatusOr<BlockResult> block = instance->RunBlock(1, U32Le(pages), state, kDeadline);
    ASSERT_TRUE(block.ok()) << block.status();
    EXPECT_EQ(block->writes.at("grow"), U32Le(static_cast<uint32_t>(expected))) << pages;
  }
}

TEST(AssemblyScriptFeaturesTest, RuntimeExportsLoadAndAreRefusedAsViewsNamingTheirSignature) {
  auto module = LoadGuestOrDie("as_runtime_exports");
  ASSERT_NE(module, nullptr);
  MemoryStateReader state;
  auto instance = NewInstance(*module);
  ASSERT_NE(instance, nullptr);
  for (const auto& [name, signature] :
       {std::pair{"__new", "(i32, i32) -> i32"}, std::pair{"__pin", "(i32) -> i32"},
        std::pair{"__unpin", "(i32) -> ()"}, std::pair{"__collect", "() -> ()"}}) {
    SCOPED_TRACE(name);
    absl::Status view = instance->RunView(name, 0, "", state, kDeadline).status();
    EXPECT_EQ(view.code(), absl::StatusCode::kInvalidArgument) << view;
    EXPECT_THAT(std::string(view.message()), HasSubstr(signature));
    EXPECT_THAT(std::string(view.message()), HasSubstr(name));
    absl::Status init = instance->RunInit(name, "", kDeadline).status();
    EXPECT_EQ(init.code(), absl::StatusCode::kInvalidArgument) << init;
  }
  // A global export is no function at all.
  EXPECT_EQ(instance->RunView("__rtti_base", 0, "", state, kDeadline).status().code(),
            absl::StatusCode::kNotFound);
  // Refusing them leaves the instance healthy.
  EXPECT_TRUE(instance->health().ok());
  absl::StatusOr<CallResult> answer = instance->RunView("answer", 0, "", state, kDeadline);
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->answer, "ok");
}

#ifdef TANDEM_HAVE_ASSEMBLYSCRIPT_GUEST

// The AssemblyScript example indexer has every feature above.
class AssemblyScriptGuestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bytes_ = GuestBytes("bitcoin_indexer_as");
    absl::StatusOr<WasmModuleInfo> info = ParseWasmBinary(bytes_);
    ASSERT_TRUE(info.ok()) << info.status();
    info_ = *std::move(info);
  }
  std::string bytes_;
  WasmModuleInfo info_;
};

TEST_F(AssemblyScriptGuestTest, HasAStartSectionBulkMemoryAndAMemoryWithNoMaximum) {
  std::vector<uint8_t> ids = SectionIds(bytes_);
  EXPECT_THAT(ids, ::testing::Contains(kStartSection));
  EXPECT_THAT(ids, ::testing::Contains(kDataCountSection));
  ASSERT_EQ(info_.memories.size(), 1u);
  EXPECT_FALSE(info_.memories[0].maximum_pages.has_value());
}

TEST_F(AssemblyScriptGuestTest, ImportsNoLogAndExportsItsRuntime) {
  std::set<std::string> imports;
  for (const WasmImport& import : info_.imports) imports.insert(import.module + "." + import.name);
  EXPECT_THAT(imports, ::testing::Not(::testing::Contains("env.__log")));
  EXPECT_THAT(imports, ::testing::Contains("env.abort"));
  for (const char* name : {"__new", "__pin", "__unpin", "__collect", "__rtti_base"}) {
    EXPECT_NE(info_.FindExport(name), nullptr) << name;
  }
  auto module = LoadGuestOrDie("bitcoin_indexer_as");
  ASSERT_NE(module, nullptr);
  absl::Status refused = module->CheckCallableExport("__new");
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("(i32, i32) -> i32"));
  for (const char* view : {"block_summary", "outpoint", "spend", "script_totals"}) {
    EXPECT_TRUE(module->CheckCallableExport(view).ok()) << view;
  }
}

#endif  // TANDEM_HAVE_ASSEMBLYSCRIPT_GUEST

}  // namespace
}  // namespace tandem::engine
