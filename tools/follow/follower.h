// The follower: keeps tandemd's chain equal to a node's best chain. It reads where tandemd stands
// (GetTip), checks that tandemd's tip is on the node's chain, finds the fork point and rolls back
// when it is not, then streams the missing blocks (StreamBlocks, fed by a fetch-ahead thread) and
// waits for the next ones. All of its state lives in tandemd: a follower killed at any moment
// resumes from tandemd's tip, skipping nothing and indexing nothing twice.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "tools/client/connection.h"
#include "tools/follow/block_fetcher.h"
#include "tools/follow/follow_metrics.h"
#include "tools/follow/node_rpc.h"
#include "tools/follow/progress_log.h"
#include "tools/follow/wakeup.h"
#include "util/mutex.h"

namespace tandem::follow {

struct FollowerOptions {
  // The first height to index when tandemd's store is empty (unused otherwise).
  std::optional<uint32_t> start_height;
  // The deepest reorg the follower rolls back by itself; a deeper one stops it.
  uint32_t max_reorg_depth = 100;
  // How often the node is asked for its best block while the follower is caught up.
  absl::Duration poll_interval = absl::Milliseconds(500);
  // Retry delays after a failed call: the first, doubled per failure up to the last.
  absl::Duration min_retry_delay = absl::Milliseconds(250);
  absl::Duration max_retry_delay = absl::Seconds(5);
  // How often a progress line is written while blocks stream in.
  absl::Duration progress_interval = absl::Seconds(5);
  // How long, after a stop was asked, the blocks already sent may take to be answered.
  absl::Duration stop_grace = absl::Seconds(10);
  FetchOptions fetch;
  // Return once tandemd has every block of the node (for scripts and benchmarks).
  bool exit_at_tip = false;
  // Names of the two servers in messages: the RPC URL and tandemd's address.
  std::string node_name;
  std::string tandem_name;
};

// How Run ended.
enum class FollowExit {
  kStopped,       // Stop() was called (a signal).
  kCaughtUp,      // exit_at_tip, and tandemd has every block of the node.
  kReorgTooDeep,  // The node's chain leaves tandemd's more than max_reorg_depth blocks below its
                  // tip, or below its start height: nothing was rolled back.
  kFailed,        // A failure that retrying cannot heal: tandemd refused a block (a guest trap,
                  // a bad request, credentials) or the node refused the follower.
};

struct FollowResult {
  FollowExit exit = FollowExit::kStopped;
  std::string message;
};

// Threading: Run on one thread; Stop from any thread (a signal handler's thread).
class Follower {
 public:
  // `node` is used by Run's thread and, during a pass, by its fetch-ahead thread, never by both at
  // once. `reader` serves GetTip and GetBlock, `writer` StreamBlocks and Rollback (one connection
  // may be both). Everything is borrowed and must outlive the follower.
  Follower(FollowerOptions options, NodeRpc& node, client::Connection& reader,
           client::Connection& writer, FollowMetrics& metrics, Wakeup& wakeup, ProgressLog& log);

  // Follows until stopped, caught up (with exit_at_tip), or a failure retrying cannot heal.
  FollowResult Run();

  // Asks Run to return: the blocks already sent are answered (within stop_grace), nothing more is
  // sent, and Run returns kStopped.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Where indexing goes on, once tandemd's tip is known to be on the node's chain.
  struct Position {
    int64_t tip = -1;      // tandemd's tip; start - 1 when its store is empty.
    std::string tip_hash;  // Empty when the store is empty.
    int64_t node_height = -1;
    std::string node_best;  // The node's best block hash when it was read.
  };
  // Why a step could not go on, and what comes next.
  struct Interruption {
    enum Kind {
      kReconcile,    // Look again where tandemd and the node stand (no delay).
      kRetryNode,    // A call to the node failed: back off, then reconcile.
      kRetryTandem,  // A call to tandemd failed: back off, then reconcile.
      kExit,         // Run returns `result`.
    } kind;
    absl::Status status;  // The failed call, for kRetry*.
    FollowResult result;  // For kExit.
  };
  using Step = std::variant<Position, Interruption>;

  // Reads tandemd's tip and the node's, checks that tandemd's tip is on the node's chain, and
  // rolls back to the fork point when it is not (within max_reorg_depth).
  Step Reconcile();
  // The fork point below `height` (the highest height where tandemd and the node agree), rolled
  // back to. `tip` is tandemd's tip.
  Step RollBackToForkPoint(const tandem::v1::BlockRecord& tip, uint32_t start, int64_t height,
                           int64_t node_height);
  // Streams the blocks above `position.tip` up to the node's tip.
  Interruption RunPass(const Position& position);
  // Waits until the node's best block is no longer `best`.
  Interruption WaitForNewBlock(const Position& position);

  // What a failed call leads to.
  Interruption NodeFailure(absl::Status status);
  Interruption TandemFailure(const grpc::Status& status, absl::string_view call);
  // Logs, counts and sleeps after a failed call. Returns false when stopped meanwhile.
  bool BackOff(absl::string_view server, const absl::Status& status);
  // A call succeeded after failures: says so and resets the delay.
  void Recovered(absl::string_view server);

  // The tandemd calls, each with its own deadline.
  grpc::Status GetTip(tandem::v1::GetTipResponse* response);
  grpc::Status GetBlock(uint32_t height, tandem::v1::BlockRecord* record);
  grpc::Status Rollback(uint32_t height, tandem::v1::RollbackResponse* response);

  // Called by a pass's reader thread for each block committed.
  void Committed(const tandem::v1::SubmitBlockResponse& response, const BlockFetcher& fetcher)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after construction.
  const FollowerOptions options_;
  NodeRpc& node_;
  client::Connection& reader_;
  client::Connection& writer_;
  FollowMetrics& metrics_;
  Wakeup& wakeup_;
  ProgressLog& log_;

  // Run's thread only.
  int failures_ = 0;            // Failed calls in a row (both servers).
  std::string failing_server_;  // The server of the last failure, while failures_ > 0.
  absl::Time failing_since_;
  bool said_caught_up_ = false;  // The "caught up" line was written for the current wait.
  bool said_start_ = false;      // The line saying where indexing starts was written.

  util::Mutex mu_;
  BlockFetcher* fetcher_ ABSL_GUARDED_BY(mu_) = nullptr;  // The running pass's, for Stop.
  // Progress of the running pass, written by its reader thread.
  int64_t pass_committed_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t pass_first_ ABSL_GUARDED_BY(mu_) = -1;
  int64_t pass_last_ ABSL_GUARDED_BY(mu_) = -1;
  absl::Time pass_started_ ABSL_GUARDED_BY(mu_);
  absl::Time last_progress_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem::follow
