// Fetch-ahead: a thread that reads blocks from the node, in height order and in batches, into a
// bounded queue, while tandem-follow submits the ones already read. It checks that each block's
// parent is the block before it, so a reorg on the node during a pass ends the pass instead of
// sending tandemd a block of another branch. It never talks to tandemd.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "tools/follow/follow_metrics.h"
#include "tools/follow/node_rpc.h"
#include "util/mutex.h"

namespace tandem::follow {

struct FetchedBlock {
  uint32_t height = 0;
  std::string hash;         // As the node names it, internal byte order.
  std::string parent_hash;  // From the block's header, internal byte order.
  std::string bytes;        // The serialized block (`getblock <hash> 0`).
};

// Blocks are asked for in batches, and read ahead, by bytes as well as by count: a chain's blocks
// range from a few hundred bytes (regtest, early heights) to megabytes, and one count fits neither
// (16 per request paid the node's per-request cost on small blocks; 128 would ask for half a
// gigabyte of hex at once on large ones).
struct FetchOptions {
  // Blocks read ahead of the submitter at most, and their bytes at most (at least one block is).
  size_t capacity = 256;
  uint64_t capacity_bytes = uint64_t{64} << 20;
  // Heights asked for in one batched request at most, and the bytes one request should bring
  // back: each batch is sized from the previous one's blocks (see BatchSize).
  int batch = 128;
  uint64_t batch_bytes = uint64_t{4} << 20;
};

// How many heights to ask for next: batch_bytes over the mean size of the previous batch's blocks,
// between 1 and options.batch, and at most twice the previous count, so that a batch grows over a
// few requests while sizes are learned. The first batch (previous_count 0) is one block.
int BatchSize(const FetchOptions& options, int previous_count, uint64_t previous_bytes);

// Why a pass of the fetcher ended.
enum class FetchEnd {
  kRunning,       // Not ended yet.
  kCaughtUp,      // Every block up to the node's tip was fetched.
  kChainChanged,  // A block's parent is not the block fetched before it (or the expected tip),
                  // or the node's chain got shorter: the node reorganized.
  kFailed,        // A call to the node failed: error() says how.
  kStopped,       // Stop() was called.
};

// Threading: the constructor starts a thread that owns `rpc` until the destructor has joined it;
// Next, Stop, end, error and node_height may be called from any thread (Next from one at a time).
class BlockFetcher {
 public:
  // Starts fetching at `height`; the block there must have `parent_hash` as its parent (empty:
  // not checked, for the first block of an empty tandemd).
  BlockFetcher(NodeRpc& rpc, FollowMetrics& metrics, FetchOptions options, uint32_t height,
               std::string parent_hash);
  // Stops the thread and joins it.
  ~BlockFetcher();
  BlockFetcher(const BlockFetcher&) = delete;
  BlockFetcher& operator=(const BlockFetcher&) = delete;

  // The next block in height order, waiting for it; std::nullopt once the pass has ended and the
  // blocks fetched before the end were all taken.
  std::optional<FetchedBlock> Next() ABSL_LOCKS_EXCLUDED(mu_);
  // Ends the pass: the thread stops at its next step, Next returns std::nullopt at once.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  FetchEnd end() const ABSL_LOCKS_EXCLUDED(mu_);
  // The failed call when end() is kFailed; OK otherwise.
  absl::Status error() const ABSL_LOCKS_EXCLUDED(mu_);
  // The height where the chain changed when end() is kChainChanged.
  int64_t changed_at() const ABSL_LOCKS_EXCLUDED(mu_);
  // The node's height as last read (-1 before the first read).
  int64_t node_height() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run(uint32_t height, std::string parent_hash);
  // Sets the end once (the first cause wins). Returns false.
  bool Finish(FetchEnd end, absl::Status error = absl::OkStatus(), int64_t changed_at = -1)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Queues a block, waiting for room. Returns false when the pass ended meanwhile.
  bool Push(FetchedBlock block) ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after construction.
  NodeRpc& rpc_;
  FollowMetrics& metrics_;
  const FetchOptions options_;

  mutable util::Mutex mu_;
  std::deque<FetchedBlock> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t queue_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // Of the blocks in queue_.
  FetchEnd end_ ABSL_GUARDED_BY(mu_) = FetchEnd::kRunning;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  int64_t changed_at_ ABSL_GUARDED_BY(mu_) = -1;
  int64_t node_height_ ABSL_GUARDED_BY(mu_) = -1;

  std::thread thread_;  // Last: started once everything above is constructed.
};

}  // namespace tandem::follow
