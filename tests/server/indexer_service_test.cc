// The Indexer service over real loopback gRPC: real RocksDB, the real bitcoin_indexer guest and
// the small test guests. Every RPC, and every error status docs/design.md lists.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "engine/platform.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/bitcoin_fixtures.h"
#include "tests/server/test_server.h"
#include "tests/support/scoped_tmpfs.h"

namespace tandem::server {
namespace {

using engine::testing::FixtureBlock;
using engine::testing::LoadFixtureBlocks;
using engine::testing::ReadU32Le;
using engine::testing::ReadU64Le;
using engine::testing::U32Le;
using ::tandem::testing::ScopedTmpfs;
using testing::BlockRequest;
using testing::Context;
using ::testing::HasSubstr;
using testing::RunningServer;
using testing::StartOrDie;
using testing::TempDir;
using testing::TestConfig;

class IndexerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { blocks_ = LoadFixtureBlocks(); }

  RunningServer Start(ServerConfig config) {
    RunningServer running = StartOrDie(config);
    EXPECT_NE(running.server, nullptr);
    return running;
  }

  grpc::Status Submit(RunningServer& s, const tandem::v1::SubmitBlockRequest& request,
                      tandem::v1::SubmitBlockResponse* response = nullptr) {
    tandem::v1::SubmitBlockResponse ignored;
    return s.indexer->SubmitBlock(Context().get(), request, response ? response : &ignored);
  }

  TempDir dir_;
  std::vector<FixtureBlock> blocks_;
};

TEST_F(IndexerServiceTest, SubmitsRealBlocksAndAnswersViews) {
  RunningServer s = Start(TestConfig(dir_));
  for (uint32_t i = 0; i < 5; ++i) {
    tandem::v1::SubmitBlockResponse response;
    grpc::Status status = Submit(s, BlockRequest(i + 1, blocks_[i].bytes), &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.block().height(), i + 1);
    EXPECT_EQ(response.block().hash().size(), 32u);
    EXPECT_EQ(response.block().state_root().size(), 32u);
    EXPECT_GT(response.block().write_count(), 0u);
    EXPECT_FALSE(response.already_committed());
    EXPECT_GT(response.generation(), 0u);
  }
  // Latest: resolved to the tip, and the response says so.
  tandem::v1::ViewRequest view;
  view.set_name("block_summary");
  view.set_request(U32Le(2));
  tandem::v1::ViewResponse answer;
  ASSERT_TRUE(s.indexer->View(Context().get(), view, &answer).ok());
  EXPECT_EQ(answer.height(), 5u);
  ASSERT_EQ(answer.answer().size(), 48u);
  EXPECT_EQ(ReadU32Le(answer.answer(), 0), blocks_[1].tx_count);
  EXPECT_EQ(ReadU32Le(answer.answer(), 4), blocks_[1].output_count);
  EXPECT_EQ(ReadU64Le(answer.answer(), 8), blocks_[1].output_sum_sat);
  // At a past height: block 4 is unknown at height 3.
  view.set_height(3);
  view.set_request(U32Le(4));
  ASSERT_TRUE(s.indexer->View(Context().get(), view, &answer).ok());
  EXPECT_EQ(answer.height(), 3u);
  EXPECT_EQ(answer.answer(), "");

  tandem::v1::GetTipResponse tip;
  ASSERT_TRUE(s.indexer->GetTip(Context().get(), {}, &tip).ok());
  EXPECT_EQ(tip.tip().height(), 5u);
  EXPECT_EQ(tip.start_height(), 1u);
  tandem::v1::GetBlockRequest get;
  get.set_height(2);
  tandem::v1::GetBlockResponse block;
  ASSERT_TRUE(s.indexer->GetBlock(Context().get(), get, &block).ok());
  EXPECT_EQ(block.block().height(), 2u);

  // Resubmitting a committed height with the same bytes is idempotent.
  tandem::v1::SubmitBlockResponse again;
  ASSERT_TRUE(Submit(s, BlockRequest(2, blocks_[1].bytes), &again).ok());
  EXPECT_TRUE(again.already_committed());
  EXPECT_EQ(again.block().state_root(), block.block().state_root());
}

TEST_F(IndexerServiceTest, GetTipOfAnEmptyStoreHasNoTip) {
  RunningServer s = Start(TestConfig(dir_));
  tandem::v1::GetTipResponse tip;
  ASSERT_TRUE(s.indexer->GetTip(Context().get(), {}, &tip).ok());
  EXPECT_FALSE(tip.has_tip());
  EXPECT_FALSE(tip.has_start_height());
}

TEST_F(IndexerServiceTest, StreamBlocksAnswersEveryBlockInOrderWithTheSameRootsAsUnary) {
  std::string unary_root;
  {
    TempDir other;
    RunningServer s = Start(TestConfig(other));
    for (uint32_t i = 0; i < blocks_.size(); ++i) {
      tandem::v1::SubmitBlockResponse response;
      ASSERT_TRUE(Submit(s, BlockRequest(i + 1, blocks_[i].bytes), &response).ok());
      unary_root = response.block().state_root();
    }
  }
  RunningServer s = Start(TestConfig(dir_));
  auto context = Context();
  auto stream = s.indexer->StreamBlocks(context.get());
  // All blocks are written before any answer is read: the server pipelines.
  std::thread writer([&] {
    for (uint32_t i = 0; i < blocks_.size(); ++i) {
      ASSERT_TRUE(stream->Write(BlockRequest(i + 1, blocks_[i].bytes)));
    }
    stream->WritesDone();
  });
  tandem::v1::SubmitBlockResponse response;
  uint32_t expected = 1;
  while (stream->Read(&response)) {
    EXPECT_EQ(response.block().height(), expected);
    ++expected;
  }
  writer.join();
  grpc::Status status = stream->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(expected, blocks_.size() + 1);
  EXPECT_EQ(response.block().state_root(), unary_root);
}

TEST_F(IndexerServiceTest, StreamBlocksEndsWithTheFirstFailingBlocksStatus) {
  RunningServer s = Start(TestConfig(dir_));
  auto context = Context();
  auto stream = s.indexer->StreamBlocks(context.get());
  ASSERT_TRUE(stream->Write(BlockRequest(1, blocks_[0].bytes)));
  ASSERT_TRUE(stream->Write(BlockRequest(2, blocks_[1].bytes)));
  ASSERT_TRUE(stream->Write(BlockRequest(7, blocks_[2].bytes)));  // Not tip+1.
  // The client keeps its side open: the server must end the stream on its own.
  tandem::v1::SubmitBlockResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.block().height(), 1u);
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.block().height(), 2u);
  EXPECT_FALSE(stream->Read(&response));
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("block at height 7"));

  tandem::v1::GetTipResponse tip;
  ASSERT_TRUE(s.indexer->GetTip(Context().get(), {}, &tip).ok());
  EXPECT_EQ(tip.tip().height(), 2u);
}

TEST_F(IndexerServiceTest, StreamBlocksRefusesAMalformedRequestInOrder) {
  RunningServer s = Start(TestConfig(dir_));
  auto context = Context();
  auto stream = s.indexer->StreamBlocks(context.get());
  auto bad = BlockRequest(2, blocks_[1].bytes);
  bad.set_hash("short");
  ASSERT_TRUE(stream->Write(BlockRequest(1, blocks_[0].bytes)));
  ASSERT_TRUE(stream->Write(bad));
  stream->WritesDone();
  tandem::v1::SubmitBlockResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_FALSE(stream->Read(&response));
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("block at height 2: hash must be"));
}

TEST_F(IndexerServiceTest, InvalidArgument) {
  RunningServer s = Start(TestConfig(dir_));
  auto request = BlockRequest(1, blocks_[0].bytes);
  request.set_hash(std::string(5, 'x'));
  grpc::Status status = Submit(s, request);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("32 bytes"));

  request = BlockRequest(1, blocks_[0].bytes);
  request.set_prev_hash(std::string(31, 'x'));
  EXPECT_EQ(Submit(s, request).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  tandem::v1::ViewRequest view;  // No name.
  tandem::v1::ViewResponse answer;
  EXPECT_EQ(s.indexer->View(Context().get(), view, &answer).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // A name longer than any export: refused as such, before anything quotes it in an error (an
  // unchecked 9000-byte name came back as RESOURCE_EXHAUSTED about the trailers' size).
  view.set_name(std::string(9000, 'v'));
  status = s.indexer->View(Context().get(), view, &answer);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("view name is 9000 bytes long"));
}

TEST_F(IndexerServiceTest, FailedPrecondition) {
  RunningServer s = Start(TestConfig(dir_));
  tandem::v1::SubmitBlockResponse first;
  ASSERT_TRUE(Submit(s, BlockRequest(1, blocks_[0].bytes), &first).ok());

  grpc::Status gap = Submit(s, BlockRequest(3, blocks_[1].bytes));
  EXPECT_EQ(gap.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(gap.error_message(), HasSubstr("tip"));

  auto orphan = BlockRequest(2, blocks_[1].bytes);
  orphan.set_prev_hash(std::string(32, '\x01'));
  grpc::Status mismatch = Submit(s, orphan);
  EXPECT_EQ(mismatch.error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  auto child = BlockRequest(2, blocks_[1].bytes);
  child.set_prev_hash(first.block().hash());
  EXPECT_TRUE(Submit(s, child).ok());

  // Height 2 again, with other bytes: refused until rolled back.
  EXPECT_EQ(Submit(s, BlockRequest(2, blocks_[2].bytes)).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  tandem::v1::RollbackRequest above;
  above.set_height(9);
  tandem::v1::RollbackResponse rolled;
  EXPECT_EQ(s.indexer->Rollback(Context().get(), above, &rolled).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(IndexerServiceTest, RollbackUndoesHeightsAndAcceptsOtherBlocks) {
  RunningServer s = Start(TestConfig(dir_));
  for (uint32_t i = 0; i < 3; ++i)
    ASSERT_TRUE(Submit(s, BlockRequest(i + 1, blocks_[i].bytes)).ok());
  tandem::v1::RollbackRequest request;
  request.set_height(1);
  tandem::v1::RollbackResponse response;
  ASSERT_TRUE(s.indexer->Rollback(Context().get(), request, &response).ok());
  EXPECT_EQ(response.tip().height(), 1u);

  tandem::v1::ViewRequest view;
  view.set_name("block_summary");
  view.set_request(U32Le(2));
  tandem::v1::ViewResponse answer;
  ASSERT_TRUE(s.indexer->View(Context().get(), view, &answer).ok());
  EXPECT_EQ(answer.height(), 1u);
  EXPECT_EQ(answer.answer(), "");  // Block 2 is gone.
  EXPECT_TRUE(Submit(s, BlockRequest(2, blocks_[5].bytes)).ok());
}

TEST_F(IndexerServiceTest, RollbackToEmptyWorksForAChainStartedAtZero) {
  RunningServer s = Start(TestConfig(dir_));
  for (uint32_t i = 0; i < 2; ++i) ASSERT_TRUE(Submit(s, BlockRequest(i, blocks_[i].bytes)).ok());
  tandem::v1::RollbackRequest request;
  tandem::v1::RollbackResponse response;
  request.set_empty(true);
  request.set_height(1);  // Both: which one is meant?
  EXPECT_EQ(s.indexer->Rollback(Context().get(), request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  request.set_height(0);
  grpc::Status status = s.indexer->Rollback(Context().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(response.has_tip());
  tandem::v1::GetTipResponse tip;
  ASSERT_TRUE(s.indexer->GetTip(Context().get(), {}, &tip).ok());
  EXPECT_FALSE(tip.has_tip());
  tandem::v1::GetBlockRequest block;
  block.set_height(0);
  tandem::v1::GetBlockResponse record;
  EXPECT_EQ(s.indexer->GetBlock(Context().get(), block, &record).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(Submit(s, BlockRequest(0, blocks_[5].bytes)).ok());  // A fresh start.
}

TEST_F(IndexerServiceTest, NotFound) {
  RunningServer s = Start(TestConfig(dir_));
  ASSERT_TRUE(Submit(s, BlockRequest(1, blocks_[0].bytes)).ok());
  tandem::v1::ViewRequest view;
  view.set_name("no_such_export");
  tandem::v1::ViewResponse answer;
  grpc::Status status = s.indexer->View(Context().get(), view, &answer);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("no_such_export"));

  view.set_name("block_summary");
  view.set_height(2);  // Not committed.
  EXPECT_EQ(s.indexer->View(Context().get(), view, &answer).error_code(),
            grpc::StatusCode::NOT_FOUND);

  tandem::v1::GetBlockRequest get;
  get.set_height(2);
  tandem::v1::GetBlockResponse block;
  EXPECT_EQ(s.indexer->GetBlock(Context().get(), get, &block).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(IndexerServiceTest, AbortedCarriesTheGuestsMessage) {
  RunningServer s = Start(TestConfig(dir_));
  grpc::Status malformed = Submit(s, BlockRequest(1, "not a block"));
  EXPECT_EQ(malformed.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(malformed.error_message(), HasSubstr("malformed block"));
  // Nothing committed; a good block still goes in at the same height.
  EXPECT_TRUE(Submit(s, BlockRequest(1, blocks_[0].bytes)).ok());
}

TEST_F(IndexerServiceTest, AbortedForATrappingGuest) {
  RunningServer s = Start(TestConfig(dir_, "trapping"));
  grpc::Status status = Submit(s, BlockRequest(1, ""));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ABORTED) << status.error_message();
}

TEST_F(IndexerServiceTest, DeadlineExceededForARunawayGuest) {
  ServerConfig config = TestConfig(dir_, "runaway");
  config.block_deadline = absl::Milliseconds(300);
  RunningServer s = Start(config);
  grpc::Status status = Submit(s, BlockRequest(1, ""));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  tandem::v1::GetTipResponse tip;
  ASSERT_TRUE(s.indexer->GetTip(Context().get(), {}, &tip).ok());
  EXPECT_FALSE(tip.has_tip());
}

TEST_F(IndexerServiceTest, ResourceExhaustedForAMessageTooLarge) {
  ServerConfig config = TestConfig(dir_);
  config.max_message_bytes = 64 * 1024;
  RunningServer s = Start(config);
  // Mainnet 300025 is about 250 KB.
  const FixtureBlock* big = nullptr;
  for (const FixtureBlock& block : blocks_) {
    if (block.bytes.size() > 100 * 1024) big = &block;
  }
  ASSERT_NE(big, nullptr);
  grpc::Status status = Submit(s, BlockRequest(1, big->bytes));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_TRUE(Submit(s, BlockRequest(1, blocks_[0].bytes)).ok());
}

TEST_F(IndexerServiceTest, UnavailableWhenTheHostCannotProvideMemory) {
  ServerConfig config = TestConfig(dir_, "memory_stress");
  config.memory_limit_bytes = 1ull << 30;
  RunningServer s = Start(config);
  engine::SetHostMemoryFailureThresholdForTesting(8u << 20);
  grpc::Status status = Submit(s, BlockRequest(1, U32Le(1) + U32Le(16)));  // 1 x 16 MiB.
  engine::SetHostMemoryFailureThresholdForTesting(0);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  // The host failure was not the block's: it goes in once the host has memory.
  grpc::Status retried = Submit(s, BlockRequest(1, U32Le(1) + U32Le(16)));
  EXPECT_TRUE(retried.ok()) << retried.error_message();
}

TEST_F(IndexerServiceTest, TokenGuardsEveryIndexerCall) {
  ServerConfig config = TestConfig(dir_);
  config.token = "s3cret";
  RunningServer s = Start(config);
  tandem::v1::GetTipResponse tip;
  grpc::Status missing = s.indexer->GetTip(Context().get(), {}, &tip);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(missing.error_message(), HasSubstr("missing token"));
  EXPECT_EQ(s.indexer->GetTip(Context("wrong").get(), {}, &tip).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(s.indexer->GetTip(Context("s3cret").get(), {}, &tip).ok());

  tandem::v1::SubmitBlockResponse response;
  EXPECT_EQ(s.indexer->SubmitBlock(Context().get(), BlockRequest(1, blocks_[0].bytes), &response)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  auto context = Context("wrong");
  auto stream = s.indexer->StreamBlocks(context.get());
  stream->Write(BlockRequest(1, blocks_[0].bytes));
  stream->WritesDone();
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(
      s.indexer->SubmitBlock(Context("s3cret").get(), BlockRequest(1, blocks_[0].bytes), &response)
          .ok());
}

TEST_F(IndexerServiceTest, ReadersCannotWriteWhenWritersHaveTheirOwnToken) {
  ServerConfig config = TestConfig(dir_);
  config.token = "reader";
  config.ingest_token = "writer";
  RunningServer s = Start(config);
  tandem::v1::SubmitBlockResponse response;
  grpc::Status as_reader =
      s.indexer->SubmitBlock(Context("reader").get(), BlockRequest(1, blocks_[0].bytes), &response);
  EXPECT_EQ(as_reader.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(as_reader.error_message(), HasSubstr("ingest token"));
  auto context = Context("reader");
  auto stream = s.indexer->StreamBlocks(context.get());
  stream->Write(BlockRequest(1, blocks_[0].bytes));
  stream->WritesDone();
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);

  ASSERT_TRUE(
      s.indexer->SubmitBlock(Context("writer").get(), BlockRequest(1, blocks_[0].bytes), &response)
          .ok());
  tandem::v1::RollbackRequest rollback;
  rollback.set_height(0);
  tandem::v1::RollbackResponse rolled;
  EXPECT_EQ(s.indexer->Rollback(Context("reader").get(), rollback, &rolled).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  tandem::v1::GetTipResponse tip;
  ASSERT_TRUE(s.indexer->GetTip(Context("reader").get(), {}, &tip).ok());
  EXPECT_EQ(tip.tip().height(), 1u) << "a reader's rollback went through";
  EXPECT_TRUE(s.indexer->GetTip(Context("writer").get(), {}, &tip).ok());
}

TEST_F(IndexerServiceTest, APublicListenerWithoutAnIngestTokenNeverWrites) {
  // 0.0.0.0: reachable from other hosts (the test reaches it on loopback).
  ServerConfig config = TestConfig(dir_);
  config.listen = "0.0.0.0:0";
  RunningServer s = Start(config);
  tandem::v1::SubmitBlockResponse response;
  grpc::Status refused =
      s.indexer->SubmitBlock(Context().get(), BlockRequest(1, blocks_[0].bytes), &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(refused.error_message(), HasSubstr("--ingest_token"));
  tandem::v1::RollbackRequest rollback;
  tandem::v1::RollbackResponse rolled;
  EXPECT_EQ(s.indexer->Rollback(Context().get(), rollback, &rolled).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  tandem::v1::GetTipResponse tip;
  EXPECT_TRUE(s.indexer->GetTip(Context().get(), {}, &tip).ok());  // Reads stay public.
}

TEST_F(IndexerServiceTest, ShutdownWithAStreamOpenEndsItAndKeepsCommittedBlocks) {
  RunningServer s = Start(TestConfig(dir_));
  auto context = Context();
  auto stream = s.indexer->StreamBlocks(context.get());
  ASSERT_TRUE(stream->Write(BlockRequest(1, blocks_[0].bytes)));
  tandem::v1::SubmitBlockResponse response;
  ASSERT_TRUE(stream->Read(&response));
  // The client neither closes nor sends more: shutdown must still finish within its grace.
  absl::Time started = absl::Now();
  s.server->Shutdown(absl::Seconds(1));
  EXPECT_LT(absl::Now() - started, absl::Seconds(10));
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_FALSE(stream->Finish().ok());

  // Reopen the same database: block 1 is there, whole.
  s.indexer.reset();
  s.server.reset();
  RunningServer again = Start(TestConfig(dir_));
  tandem::v1::GetTipResponse tip;
  ASSERT_TRUE(again.indexer->GetTip(Context().get(), {}, &tip).ok());
  EXPECT_EQ(tip.tip().height(), 1u);
}

// A channel with a connection of its own (gRPC shares connections between channels to one
// address unless told not to), as a separate client process has.
std::unique_ptr<tandem::v1::Indexer::Stub> OwnConnection(int port) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return tandem::v1::Indexer::NewStub(grpc::CreateCustomChannel(
      absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials(), args));
}

TEST_F(IndexerServiceTest, AConnectionWhoseViewsKeepFailingInstancesIsHeldBackAndNoOtherIs) {
  ServerConfig config = TestConfig(dir_);
  config.view_failure_budget = 3;
  config.view_failure_refill_per_second = 0.01;
  RunningServer s = Start(config);
  ASSERT_TRUE(Submit(s, BlockRequest(1, blocks_[0].bytes)).ok());
  auto hostile = OwnConnection(s.server->public_port());
  auto honest = OwnConnection(s.server->public_port());
  tandem::v1::ViewRequest bad;
  bad.set_name("outpoint");
  bad.set_request("abc");  // Too short: the indexer aborts, which fails the instance.
  tandem::v1::ViewRequest good;
  good.set_name("block_summary");
  tandem::v1::ViewResponse response;
  for (int i = 0; i < 3; ++i) {
    grpc::Status status = hostile->View(Context().get(), bad, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::ABORTED)
        << i << ": " << status.error_message();
    grpc::Status fine = honest->View(Context().get(), good, &response);
    EXPECT_TRUE(fine.ok()) << fine.error_message();
  }
  for (int i = 0; i < 2; ++i) {
    grpc::Status refused = hostile->View(Context().get(), bad, &response);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << refused.error_message();
    EXPECT_THAT(refused.error_message(), HasSubstr("failed 3 guest instances"));
    // Refused before running: even an honest request on that connection waits for its budget.
    grpc::Status held = hostile->View(Context().get(), good, &response);
    EXPECT_EQ(held.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << held.error_message();
  }
  for (int i = 0; i < 5; ++i) {
    grpc::Status fine = honest->View(Context().get(), good, &response);
    EXPECT_TRUE(fine.ok()) << fine.error_message();
  }
}

TEST_F(IndexerServiceTest, ShutdownEndsAnIdleStreamAtOnceNotAfterTheGrace) {
  RunningServer s = Start(TestConfig(dir_));
  auto context = Context();
  auto stream = s.indexer->StreamBlocks(context.get());
  ASSERT_TRUE(stream->Write(BlockRequest(1, blocks_[0].bytes)));
  tandem::v1::SubmitBlockResponse response;
  ASSERT_TRUE(stream->Read(&response));
  // The stream waits for its next block. Shutdown must not wait the 60 s grace for it: an idle
  // stream has nothing in flight and ends at once, telling the client why.
  absl::Time started = absl::Now();
  s.server->Shutdown(absl::Seconds(60));
  EXPECT_LT(absl::Now() - started, absl::Seconds(20)) << "shutdown waited for an idle stream";
  EXPECT_FALSE(stream->Read(&response));
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("shutting down"));
}

// Fills the file system that holds `folder` to the last byte with a file of its own, so that the
// next write that needs space fails with ENOSPC. Returns the filler's path.
std::filesystem::path FillUp(const std::filesystem::path& folder) {
  const std::filesystem::path filler = folder / "filler";
  const int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  EXPECT_GE(fd, 0) << std::strerror(errno);
  const std::string chunk(1 << 16, 'x');
  for (size_t size = chunk.size(); size > 0; size /= 2) {
    while (::write(fd, chunk.data(), size) == static_cast<ssize_t>(size)) {
    }
  }
  EXPECT_EQ(errno, ENOSPC) << std::strerror(errno);
  ::close(fd);
  return filler;
}

// The disk fills up while a stream has blocks in flight: with fsync on, each block's write and
// sync overlaps the next block's run, and the first write that fails must fail its block and every
// block after it (which ran on state that includes it), answer none of them, and leave exactly the
// answered blocks on disk, which a restart resumes from with the same roots as a node that never
// failed. Real RocksDB on a real file system that runs out of space (a small tmpfs).
void DiskFillsUpMidStream(const std::vector<FixtureBlock>& blocks, const TempDir& dir,
                          proxy::SwapPolicy policy) {
  const uint32_t before_full = 6;  // Answered before the disk fills up.
  const uint32_t last = static_cast<uint32_t>(blocks.size());
  std::vector<std::string> roots(last + 1);
  {
    TempDir reference_dir;
    RunningServer reference = StartOrDie(TestConfig(reference_dir));
    ASSERT_NE(reference.server, nullptr);
    for (uint32_t height = 1; height <= last; ++height) {
      tandem::v1::SubmitBlockResponse response;
      ASSERT_TRUE(reference.indexer
                      ->SubmitBlock(Context().get(), BlockRequest(height, blocks[height - 1].bytes),
                                    &response)
                      .ok());
      roots[height] = response.block().state_root();
    }
  }

  const std::filesystem::path disk_path = dir.path() / "disk";
  ScopedTmpfs disk(disk_path, "size=32m", 0);
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here: " << disk.error();
  ServerConfig config = TestConfig(dir);
  config.db_path = (disk_path / "db").string();
  config.fsync = true;
  config.swap_policy = policy;
  auto tip_of = [](RunningServer& s) {
    tandem::v1::GetTipResponse tip;
    EXPECT_TRUE(s.indexer->GetTip(Context().get(), {}, &tip).ok());
    return tip.tip();
  };

  std::filesystem::path filler;
  uint32_t answered = 0;
  {
    RunningServer s = StartOrDie(config);
    ASSERT_NE(s.server, nullptr);
    auto context = Context();
    auto stream = s.indexer->StreamBlocks(context.get());
    tandem::v1::SubmitBlockResponse response;
    for (uint32_t height = 1; height <= before_full; ++height) {
      ASSERT_TRUE(stream->Write(BlockRequest(height, blocks[height - 1].bytes)));
      ASSERT_TRUE(stream->Read(&response));
      ASSERT_EQ(response.block().height(), height);
      ASSERT_EQ(response.block().state_root(), roots[height]) << height;
    }
    answered = before_full;
    filler = FillUp(disk_path);
    // The rest at once: each block runs while the one before it is written.
    for (uint32_t height = before_full + 1; height <= last; ++height) {
      if (!stream->Write(BlockRequest(height, blocks[height - 1].bytes))) break;
    }
    stream->WritesDone();
    // A block whose writes fit in the WAL's last page may still commit; the first that needs
    // space fails, and nothing after it is answered.
    while (stream->Read(&response)) {
      ++answered;
      ASSERT_EQ(response.block().height(), answered);
      ASSERT_EQ(response.block().state_root(), roots[answered]) << answered;
    }
    const grpc::Status status = stream->Finish();
    const uint32_t failed = answered + 1;
    ASSERT_LE(failed, last) << "every block committed on a full disk";
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(absl::StrCat("block at height ", failed, ":")));
    EXPECT_THAT(status.error_message(), HasSubstr("could not be committed"));
    EXPECT_THAT(status.error_message(), HasSubstr("No space left on device"));

    // Exactly the answered blocks are committed, and the node says so.
    EXPECT_EQ(tip_of(s).height(), answered);
    EXPECT_EQ(tip_of(s).state_root(), roots[answered]);
    // The database refuses writes until it is reopened: the next block fails clearly and commits
    // nothing, on an instance that saw no failed block (the failed ones were retired).
    tandem::v1::SubmitBlockResponse refused_response;
    const grpc::Status refused = s.indexer->SubmitBlock(
        Context().get(), BlockRequest(failed, blocks[failed - 1].bytes), &refused_response);
    EXPECT_FALSE(refused.ok());
    EXPECT_THAT(refused.error_message(), HasSubstr("could not be committed"));
    EXPECT_EQ(tip_of(s).height(), answered);
  }

  // Room again: a restart resumes at the answered prefix with its root, and the rest of the
  // chain ends with the roots of a node that never failed.
  std::filesystem::remove(filler);
  RunningServer s = StartOrDie(config);
  ASSERT_NE(s.server, nullptr);
  EXPECT_EQ(tip_of(s).height(), answered);
  EXPECT_EQ(tip_of(s).state_root(), roots[answered]);
  for (uint32_t height = answered + 1; height <= last; ++height) {
    tandem::v1::SubmitBlockResponse response;
    const grpc::Status status = s.indexer->SubmitBlock(
        Context().get(), BlockRequest(height, blocks[height - 1].bytes), &response);
    ASSERT_TRUE(status.ok()) << height << ": " << status.error_message();
    EXPECT_EQ(response.block().state_root(), roots[height]) << height;
  }
}

TEST_F(IndexerServiceTest, ADiskThatFillsUpMidStreamLeavesTheAnsweredBlocksUnderNone) {
  DiskFillsUpMidStream(blocks_, dir_, proxy::SwapPolicy::kNone);
}

TEST_F(IndexerServiceTest, ADiskThatFillsUpMidStreamLeavesTheAnsweredBlocksUnderBlock) {
  DiskFillsUpMidStream(blocks_, dir_, proxy::SwapPolicy::kBlock);
}

}  // namespace
}  // namespace tandem::server
