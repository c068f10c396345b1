// The database bound to what defines its state: a server started on a database with another
// module or memory cap is refused and the database left byte for byte as it was; the same flags
// are accepted; an empty database takes whatever its first block runs with; a database from
// before the binding adopts the flags it is next opened with. GetTip and Status report both.
#include <fstream>
#include <iterator>
#include <map>
#include <string>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/block_store.h"
#include "tests/engine/bitcoin_fixtures.h"
#include "tests/server/test_server.h"
#include "tests/store/test_util.h"
#include "util/failure_cause.h"

namespace tandem::server {
namespace {

using engine::testing::LoadFixtureBlocks;
using testing::BlockRequest;
using testing::Context;
using ::testing::HasSubstr;
using testing::RunningServer;
using testing::StartOrDie;
using testing::TempDir;
using testing::TestConfig;

std::string FileSha256(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return store::testing::ReferenceSha256(
      std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
}

class DatabaseBindingTest : public ::testing::Test {
 protected:
  // Starts a server on `config`, commits the first fixture block at height 1, stops it.
  void IndexOneBlock(const ServerConfig& config) {
    RunningServer s = StartOrDie(config);
    ASSERT_NE(s.server, nullptr);
    tandem::v1::SubmitBlockResponse response;
    grpc::Status status =
        s.indexer->SubmitBlock(Context().get(), BlockRequest(1, blocks_[0].bytes), &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // The refusal of `config`: its status, with the database checked unchanged.
  absl::Status Refused(const ServerConfig& config) {
    const auto before = store::testing::SnapshotDirectory(config.db_path);
    absl::StatusOr<std::unique_ptr<TandemServer>> server =
        TandemServer::Start(config, testing::TestLogger());
    EXPECT_FALSE(server.ok());
    EXPECT_EQ(store::testing::SnapshotDirectory(config.db_path), before)
        << "a refused start changed the database";
    return server.ok() ? absl::OkStatus() : server.status();
  }

  tandem::v1::GetTipResponse Tip(RunningServer& s) {
    tandem::v1::GetTipResponse tip;
    grpc::Status status = s.indexer->GetTip(Context().get(), {}, &tip);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return tip;
  }

  TempDir dir_;
  std::vector<engine::testing::FixtureBlock> blocks_ = LoadFixtureBlocks();
};

TEST_F(DatabaseBindingTest, AnotherModuleOrCapIsRefusedAndTheDatabaseLeftAsItWas) {
  const ServerConfig original = TestConfig(dir_);
  IndexOneBlock(original);
  const std::string indexer_hex = absl::BytesToHexString(FileSha256(original.module_path));

  ServerConfig other_module = TestConfig(dir_, "memory_stress");
  absl::Status module_refused = Refused(other_module);
  EXPECT_EQ(module_refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(util::CauseOf(module_refused), util::FailureCause::kIdentityMismatch);
  EXPECT_THAT(module_refused.message(), HasSubstr(indexer_hex));
  EXPECT_THAT(module_refused.message(),
              HasSubstr(absl::BytesToHexString(FileSha256(other_module.module_path))));
  EXPECT_THAT(module_refused.message(), HasSubstr("--module"));
  EXPECT_THAT(module_refused.message(), HasSubstr("new --db"));

  ServerConfig other_cap = original;
  other_cap.memory_limit_bytes = 64ull << 20;
  absl::Status cap_refused = Refused(other_cap);
  EXPECT_EQ(util::CauseOf(cap_refused), util::FailureCause::kIdentityMismatch);
  EXPECT_THAT(cap_refused.message(), HasSubstr("memory cap 4294967296 bytes (given 67108864"));
  EXPECT_THAT(cap_refused.message(), HasSubstr("--memory_limit=64MiB"));

  // The original flags are accepted, and both values are reported.
  RunningServer s = StartOrDie(original);
  ASSERT_NE(s.server, nullptr);
  tandem::v1::GetTipResponse tip = Tip(s);
  EXPECT_EQ(tip.tip().height(), 1u);
  EXPECT_EQ(tip.module_sha256(), FileSha256(original.module_path));
  EXPECT_EQ(tip.memory_limit_bytes(), 4ull << 30);
  tandem::v1::StatusResponse status;
  ASSERT_TRUE(s.admin->Status(Context().get(), {}, &status).ok());
  EXPECT_EQ(status.module_sha256(), FileSha256(original.module_path));
  EXPECT_EQ(status.memory_limit_bytes(), 4ull << 30);
}

TEST_F(DatabaseBindingTest, AnEmptyDatabaseIsBoundByItsFirstBlock) {
  ServerConfig small = TestConfig(dir_);
  small.memory_limit_bytes = 64ull << 20;
  { StartOrDie(small); }  // No block: nothing is bound yet.
  const ServerConfig large = TestConfig(dir_);
  {
    RunningServer s = StartOrDie(large);
    ASSERT_NE(s.server, nullptr);
    EXPECT_EQ(Tip(s).memory_limit_bytes(), 4ull << 30);
  }
  IndexOneBlock(large);
  EXPECT_EQ(util::CauseOf(Refused(small)), util::FailureCause::kIdentityMismatch);
}

TEST_F(DatabaseBindingTest, ADatabaseFromBeforeTheBindingAdoptsTheFlagsItIsOpenedWith) {
  ServerConfig config = TestConfig(dir_);
  config.memory_limit_bytes = 64ull << 20;
  {
    // What an older tandemd left: blocks and no identity record.
    absl::StatusOr<std::unique_ptr<store::BlockStore>> old =
        store::BlockStore::Open(config.db_path);
    ASSERT_TRUE(old.ok()) << old.status();
    store::BlockCommit commit;
    commit.height = 5;
    commit.block_bytes = "an older node's block";
    ASSERT_TRUE((*old)->CommitBlock(commit).ok());
  }
  {
    RunningServer s = StartOrDie(config);
    ASSERT_NE(s.server, nullptr);
    tandem::v1::GetTipResponse tip = Tip(s);
    EXPECT_EQ(tip.tip().height(), 5u);
    EXPECT_EQ(tip.memory_limit_bytes(), 64ull << 20);
  }
  // Adopted: from now on it refuses anything else.
  absl::Status refused = Refused(TestConfig(dir_));
  EXPECT_EQ(util::CauseOf(refused), util::FailureCause::kIdentityMismatch);
  EXPECT_THAT(refused.message(), HasSubstr("from height 5"));
}

}  // namespace
}  // namespace tandem::server
