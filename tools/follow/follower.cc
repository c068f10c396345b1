// The follower's loop: reconcile (tip on the node's chain? fork point, rollback), stream the
// missing blocks, wait for new ones; back off and retry when the node or tandemd goes away.
#include "tools/follow/follower.h"

#include <algorithm>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tools/client/call_status.h"
#include "tools/follow/chain_hash.h"

namespace tandem::follow {
namespace {

// Hashes in messages are shown as the node's RPC and explorers show them.
std::string Short(absl::string_view hash) {
  return hash.empty() ? std::string("(none)") : DisplayHex(hash);
}

bool RetryableTandemCode(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:        // Down, restarting, no instance ready.
    case grpc::StatusCode::DEADLINE_EXCEEDED:  // A host outcome, not the block's fault.
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::UNKNOWN:   // A stream cut by a dying server.
    case grpc::StatusCode::INTERNAL:  // As UNKNOWN.
      return true;
    default:
      return false;
  }
}

}  // namespace

Follower::Follower(FollowerOptions options, NodeRpc& node, client::Connection& reader,
                   client::Connection& writer, FollowMetrics& metrics, Wakeup& wakeup,
                   ProgressLog& log)
    : options_(std::move(options)),
      node_(node),
      reader_(reader),
      writer_(writer),
      metrics_(metrics),
      wakeup_(wakeup),
      log_(log) {}

void Follower::Stop() {
  wakeup_.Stop();
  util::MutexLock lock(&mu_);
  if (fetcher_ != nullptr) fetcher_->Stop();
}

FollowResult Follower::Run() {
  while (!wakeup_.stopped()) {
    Step step = Reconcile();
    Interruption next;
    if (auto* position = std::get_if<Position>(&step)) {
      if (!said_start_) {
        said_start_ = true;
        log_.Line(absl::StrCat(
            position->tip_hash.empty()
                ? absl::StrCat("tandemd's store is empty; indexing from height ", position->tip + 1)
                : absl::StrCat("tandemd's tip is ", position->tip, " (", Short(position->tip_hash),
                               "); resuming at ", position->tip + 1),
            "; the node is at height ", position->node_height));
      }
      if (position->tip >= position->node_height) {
        if (options_.exit_at_tip) {
          return {FollowExit::kCaughtUp,
                  absl::StrCat("caught up with the node at height ", position->node_height)};
        }
        next = WaitForNewBlock(*position);
      } else {
        said_caught_up_ = false;
        next = RunPass(*position);
      }
    } else {
      next = std::get<Interruption>(std::move(step));
    }
    switch (next.kind) {
      case Interruption::kReconcile:
        break;
      case Interruption::kRetryNode:
        BackOff("node", next.status);
        break;
      case Interruption::kRetryTandem:
        BackOff("tandemd", next.status);
        break;
      case Interruption::kExit:
        return next.result;
    }
  }
  return {FollowExit::kStopped, "stopped"};
}

// --- Failures and retries -----------------------------------------------------------------------

Follower::Interruption Follower::NodeFailure(absl::Status status) {
  metrics_.CallFailed("node", absl::StatusCodeToString(status.code()));
  const absl::StatusCode code = status.code();
  // Credentials from a cookie file go stale while the node restarts: that heals by itself.
  const bool fatal =
      code == absl::StatusCode::kPermissionDenied || code == absl::StatusCode::kUnimplemented ||
      (code == absl::StatusCode::kUnauthenticated && node_.options().cookie_path.empty());
  if (fatal) {
    return {
        Interruption::kExit,
        {},
        {FollowExit::kFailed, absl::StrCat("the node refused the follower: ", status.message())}};
  }
  return {Interruption::kRetryNode, std::move(status), {}};
}

Follower::Interruption Follower::TandemFailure(const grpc::Status& status, absl::string_view call) {
  metrics_.CallFailed("tandemd", client::StatusCodeName(status.error_code()));
  if (RetryableTandemCode(status.error_code())) {
    return {Interruption::kRetryTandem,
            absl::Status(client::ToAbslStatus(status).code(),
                         absl::StrCat(call, ": ", client::DescribeStatus(status))),
            {}};
  }
  if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
    // Not tip+1, a parent hash that differs, a height committed with another hash: tandemd's
    // chain is not what the follower thought (a reorg, or another writer). Look again; the delay
    // keeps a disagreement that does not resolve from spinning.
    return {Interruption::kRetryTandem,
            absl::FailedPreconditionError(absl::StrCat(call, ": ", client::DescribeStatus(status),
                                                       "; checking tandemd's chain against the "
                                                       "node's")),
            {}};
  }
  return {Interruption::kExit,
          {},
          {FollowExit::kFailed,
           absl::StrCat("tandemd refused ", call, ": ", client::DescribeStatus(status),
                        status.error_code() == grpc::StatusCode::ABORTED
                            ? " (the guest refuses this block; every node would refuse it alike)"
                            : "")}};
}

bool Follower::BackOff(absl::string_view server, const absl::Status& status) {
  if (status.code() == absl::StatusCode::kFailedPrecondition) {
    // tandemd answers; its chain is not where the follower thought. Look again shortly.
    log_.Line(
        absl::StrCat(status.message(), " in ", absl::FormatDuration(options_.min_retry_delay)));
    return wakeup_.Sleep(options_.min_retry_delay);
  }
  if (failures_ == 0 || failing_server_ != server) {
    failing_since_ = absl::Now();
    failing_server_ = std::string(server);
  }
  ++failures_;
  metrics_.SetWaiting(server, true);
  absl::Duration delay = options_.min_retry_delay;
  for (int i = 1; i < failures_ && delay < options_.max_retry_delay; ++i) delay *= 2;
  delay = std::min(delay, options_.max_retry_delay);
  const std::string who = server == "node" ? absl::StrCat("the node at ", options_.node_name)
                                           : absl::StrCat("tandemd at ", options_.tandem_name);
  log_.Line(absl::StrCat(
      "waiting for ", who, ": ", status.message(), "; retry ", failures_, " in ",
      absl::FormatDuration(delay),
      failures_ == 1 ? ""
                     : absl::StrCat(" (failing for ",
                                    absl::FormatDuration(absl::Trunc(absl::Now() - failing_since_,
                                                                     absl::Milliseconds(100))),
                                    ")")));
  return wakeup_.Sleep(delay);
}

void Follower::Recovered(absl::string_view server) {
  if (failures_ == 0) return;
  if (failing_server_ == server) {
    log_.Line(absl::StrCat(
        server == "node" ? "the node" : "tandemd", " answers again after ",
        absl::FormatDuration(absl::Trunc(absl::Now() - failing_since_, absl::Milliseconds(100))),
        "; resuming"));
    metrics_.SetWaiting(server, false);
    failures_ = 0;
  }
}

// --- tandemd calls ------------------------------------------------------------------------------

grpc::Status Follower::GetTip(tandem::v1::GetTipResponse* response) {
  auto context = reader_.UnaryContext();
  return reader_.indexer().GetTip(context.get(), {}, response);
}

grpc::Status Follower::GetBlock(uint32_t height, tandem::v1::BlockRecord* record) {
  tandem::v1::GetBlockRequest request;
  request.set_height(height);
  tandem::v1::GetBlockResponse response;
  auto context = reader_.UnaryContext();
  grpc::Status status = reader_.indexer().GetBlock(context.get(), request, &response);
  if (status.ok()) *record = response.block();
  return status;
}

grpc::Status Follower::Rollback(uint32_t height, tandem::v1::RollbackResponse* response) {
  tandem::v1::RollbackRequest request;
  request.set_height(height);
  auto context = writer_.UnaryContext();
  return writer_.indexer().Rollback(context.get(), request, response);
}

// --- Reconcile ----------------------------------------------------------------------------------

Follower::Step Follower::Reconcile() {
  tandem::v1::GetTipResponse tip;
  if (grpc::Status status = GetTip(&tip); !status.ok()) return TandemFailure(status, "GetTip");
  Recovered("tandemd");
  absl::StatusOr<int64_t> node_height = node_.GetBlockCount();
  if (!node_height.ok()) return NodeFailure(node_height.status());
  absl::StatusOr<std::string> node_best = node_.GetBestBlockHash();
  if (!node_best.ok()) return NodeFailure(node_best.status());
  Recovered("node");
  metrics_.SetNodeHeight(*node_height);

  Position position;
  position.node_height = *node_height;
  position.node_best = *std::move(node_best);
  if (!tip.has_tip()) {
    if (!options_.start_height.has_value()) {
      return Interruption{Interruption::kExit,
                          {},
                          {FollowExit::kFailed,
                           "tandemd's store is empty: give --start_height, the first height to "
                           "index"}};
    }
    position.tip = int64_t{*options_.start_height} - 1;
    metrics_.SetTip(position.tip);
    return position;
  }
  metrics_.SetTip(tip.tip().height());
  position.tip = tip.tip().height();
  position.tip_hash = tip.tip().hash();
  const uint32_t start = tip.start_height();

  // Compare the highest height both have. A node behind tandemd on the same chain (restarted,
  // still syncing, or cut back by invalidateblock) is waited for, never rolled back to.
  const int64_t common = std::min<int64_t>(position.tip, *node_height);
  if (common < start) return position;  // The node has none of tandemd's blocks yet: wait.
  absl::StatusOr<std::vector<std::string>> node_hash = node_.GetBlockHashes(common, 1);
  if (!node_hash.ok()) {
    if (node_hash.status().code() == absl::StatusCode::kOutOfRange) {
      return Interruption{Interruption::kReconcile, {}, {}};  // The node went back meanwhile.
    }
    return NodeFailure(node_hash.status());
  }
  std::string tandem_hash = position.tip_hash;
  if (common != position.tip) {
    tandem::v1::BlockRecord record;
    if (grpc::Status status = GetBlock(common, &record); !status.ok()) {
      return TandemFailure(status, absl::StrCat("GetBlock ", common));
    }
    tandem_hash = record.hash();
  }
  if ((*node_hash)[0] == tandem_hash) {
    if (position.tip > *node_height && !said_caught_up_) {
      log_.Line(absl::StrCat("the node is at height ", *node_height, ", below tandemd's tip ",
                             position.tip, " on the same chain; waiting for it"));
      said_caught_up_ = true;
    }
    return position;
  }
  return RollBackToForkPoint(tip.tip(), start, common, *node_height);
}

Follower::Step Follower::RollBackToForkPoint(const tandem::v1::BlockRecord& tip, uint32_t start,
                                             int64_t height, int64_t node_height) {
  // Heights tandemd may roll back to: down to max_reorg_depth below its tip, and never below
  // start - 1 (which empties the store).
  const int64_t lowest_allowed = int64_t{tip.height()} - options_.max_reorg_depth;
  const int64_t lowest = std::max<int64_t>(lowest_allowed, int64_t{start} - 1);
  std::optional<int64_t> fork;
  std::string fork_hash;
  const int64_t first_compared = std::max<int64_t>(lowest, start);
  if (height - 1 >= first_compared) {
    absl::StatusOr<std::vector<std::string>> node_hashes =
        node_.GetBlockHashes(first_compared, height - first_compared);
    if (!node_hashes.ok()) {
      if (node_hashes.status().code() == absl::StatusCode::kOutOfRange) {
        return Interruption{Interruption::kReconcile, {}, {}};
      }
      return NodeFailure(node_hashes.status());
    }
    for (int64_t h = height - 1; h >= first_compared; --h) {
      tandem::v1::BlockRecord record;
      if (grpc::Status status = GetBlock(h, &record); !status.ok()) {
        return TandemFailure(status, absl::StrCat("GetBlock ", h));
      }
      if (record.hash() == (*node_hashes)[h - first_compared]) {
        fork = h;
        fork_hash = record.hash();
        break;
      }
    }
  }
  if (!fork.has_value() && lowest == int64_t{start} - 1 && start > 0) {
    fork = lowest;  // Every height tandemd holds differs, within the allowed depth: empty it.
  }
  if (!fork.has_value()) {
    const int64_t bottom = std::max<int64_t>(first_compared, start);
    return Interruption{
        Interruption::kExit,
        {},
        {FollowExit::kReorgTooDeep,
         absl::StrCat(
             "reorg deeper than --max_reorg_depth=", options_.max_reorg_depth,
             ": the node's chain (height ", node_height,
             ") differs from tandemd's at every height ", "from ", height, " down to ", bottom,
             " (tandemd's tip ", tip.height(), " has hash ", Short(tip.hash()),
             lowest_allowed < int64_t{start} - 1 ? absl::StrCat(", its first height is ", start)
                                                 : "",
             "); nothing was rolled back. If the node is right, roll tandemd back by hand "
             "(tandemctl rollback HEIGHT) or raise --max_reorg_depth; if not, fix the node.")}};
  }
  const int64_t depth = int64_t{tip.height()} - *fork;
  log_.Line(absl::StrCat("reorg: the node's chain leaves tandemd's above height ", *fork, " (",
                         fork_hash.empty() ? "tandemd's first height differs"
                                           : absl::StrCat("hash ", Short(fork_hash)),
                         "); rolling back ", depth, " block", depth == 1 ? "" : "s",
                         " from tandemd's tip ", tip.height(), " (", Short(tip.hash()), ")"));
  tandem::v1::RollbackResponse response;
  if (grpc::Status status = Rollback(static_cast<uint32_t>(*fork), &response); !status.ok()) {
    return TandemFailure(status, absl::StrCat("Rollback to ", *fork));
  }
  metrics_.Reorg(depth);
  metrics_.SetTip(*fork);
  log_.Line(absl::StrCat("rolled back to height ", *fork, "; indexing the node's branch"));
  // Start over from tandemd's new tip: the next reconcile finds it on the node's chain.
  return Interruption{Interruption::kReconcile, {}, {}};
}

// --- Waiting for blocks -------------------------------------------------------------------------

Follower::Interruption Follower::WaitForNewBlock(const Position& position) {
  if (!said_caught_up_) {
    log_.Line(absl::StrCat("caught up with the node at height ", position.tip, " (",
                           Short(position.tip_hash), "); waiting for new blocks"));
    said_caught_up_ = true;
  }
  for (;;) {
    if (!wakeup_.WaitForBlock(options_.poll_interval)) return {Interruption::kReconcile, {}, {}};
    absl::StatusOr<std::string> best = node_.GetBestBlockHash();
    if (!best.ok()) {
      said_caught_up_ = false;
      return NodeFailure(best.status());
    }
    if (*best != position.node_best) return {Interruption::kReconcile, {}, {}};
  }
}

// --- A pass: stream the missing blocks ---------------------------------------------------------

void Follower::Committed(const tandem::v1::SubmitBlockResponse& response,
                         const BlockFetcher& fetcher) {
  const int64_t height = response.block().height();
  metrics_.BlockIndexed();
  metrics_.SetTip(height);
  util::MutexLock lock(&mu_);
  if (pass_first_ < 0) pass_first_ = height;
  pass_last_ = height;
  ++pass_committed_;
  const absl::Time now = absl::Now();
  if (now - last_progress_ >= options_.progress_interval) {
    last_progress_ = now;
    const int64_t node_height = fetcher.node_height();
    log_.Line(absl::StrFormat("indexed height %d (node at %d, lag %d), %.1f blocks/s", height,
                              node_height, std::max<int64_t>(0, node_height - height),
                              pass_committed_ / absl::ToDoubleSeconds(now - pass_started_)));
  }
}

Follower::Interruption Follower::RunPass(const Position& position) {
  const uint32_t first = static_cast<uint32_t>(position.tip + 1);
  BlockFetcher fetcher(node_, metrics_, options_.fetch, first, position.tip_hash);
  {
    util::MutexLock lock(&mu_);
    fetcher_ = &fetcher;
    pass_committed_ = 0;
    pass_first_ = pass_last_ = -1;
    pass_started_ = absl::Now();
    last_progress_ = pass_started_;
  }
  if (wakeup_.stopped()) fetcher.Stop();  // A Stop that came before fetcher_ was set.

  auto context = writer_.StreamContext();
  std::unique_ptr<
      grpc::ClientReaderWriter<tandem::v1::SubmitBlockRequest, tandem::v1::SubmitBlockResponse>>
      stream = writer_.indexer().StreamBlocks(context.get());

  // This thread sends while the reader thread takes the answers: tandemd runs one block while it
  // receives the next ones, and the fetcher reads further ones from the node meanwhile.
  util::Mutex reader_mu;
  bool reader_done = false;  // Guarded by reader_mu.
  std::thread reader([&] {
    tandem::v1::SubmitBlockResponse response;
    while (stream->Read(&response)) Committed(response, fetcher);
    fetcher.Stop();  // The stream ended: nothing more can be sent.
    util::MutexLock lock(&reader_mu);
    reader_done = true;
  });

  tandem::v1::SubmitBlockRequest request;
  bool writes_open = true;
  while (std::optional<FetchedBlock> block = fetcher.Next()) {
    request.set_height(block->height);
    request.set_block(std::move(block->bytes));
    request.set_hash(std::move(block->hash));
    request.set_prev_hash(std::move(block->parent_hash));
    if (!stream->Write(request)) {  // tandemd ended the stream: Finish says why.
      writes_open = false;
      break;
    }
  }
  if (writes_open) stream->WritesDone();
  {
    // The blocks already sent are answered before the pass ends; on a stop, only for so long.
    util::MutexLock lock(&reader_mu);
    const absl::Duration grace = wakeup_.stopped() ? options_.stop_grace : absl::InfiniteDuration();
    if (!reader_mu.AwaitWithTimeout([&] { return reader_done; }, grace)) context->TryCancel();
  }
  reader.join();
  const grpc::Status status = stream->Finish();
  {
    util::MutexLock lock(&mu_);
    fetcher_ = nullptr;
    if (pass_committed_ > 0) {
      const absl::Duration took = absl::Now() - pass_started_;
      log_.Line(absl::StrFormat("indexed %s %d%s in %s (%.1f blocks/s); tandemd's tip is %d",
                                pass_committed_ == 1 ? "height" : "heights", pass_first_,
                                pass_committed_ == 1 ? "" : absl::StrCat("..", pass_last_),
                                absl::FormatDuration(absl::Trunc(took, absl::Milliseconds(1))),
                                pass_committed_ / std::max(absl::ToDoubleSeconds(took), 1e-6),
                                pass_last_));
    }
  }

  if (!status.ok() && !(wakeup_.stopped() && status.error_code() == grpc::CANCELLED)) {
    return TandemFailure(status, "StreamBlocks");
  }
  switch (fetcher.end()) {
    case FetchEnd::kFailed:
      return NodeFailure(fetcher.error());
    case FetchEnd::kChainChanged:
      log_.Line(absl::StrCat("the node's chain changed at height ", fetcher.changed_at(),
                             " while fetching; checking for a reorg"));
      return {Interruption::kReconcile, {}, {}};
    default:
      return {Interruption::kReconcile, {}, {}};
  }
}

}  // namespace tandem::follow
