// The blocks a StreamBlocks call has begun and not answered yet, and how many it may have: the
// rule that decides when the stream's runner must wait for the oldest answer before it runs
// another block. Bookkeeping only; it never waits itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <utility>

namespace tandem::server {

// How far StreamBlocks reads ahead of the block that runs, and how many blocks may have run
// (their commits queued in the store) before the oldest of them is answered.
struct StreamLimits {
  size_t max_queued_blocks = 16;
  uint64_t max_queued_bytes = 128ull << 20;  // At least one block is always queued.
  // Blocks begun and not yet answered, after each answer (at least 1). With 1 block, block N+2
  // cannot run before N is durable and settled: every hand-off between the stream's thread, the
  // guest's worker, the store's commit thread and the pair's settling thread is then on the path
  // of every block, and on 2 busy cores each wake-up may wait for a time slice. Real blocks vary
  // in size (the fixtures from 215 bytes to 1.38 MB): while a large one commits, the guest runs
  // ahead only as far as the window lets it, through the small ones behind it. Blocks are
  // answered as soon as the stream finds them durable, so a deep window does not delay answers.
  // Each block in flight holds its writes (in the store's queue, which each read of the next
  // blocks consults) and keeps its client waiting; the instances that ran them are the pair's to
  // bound (proxy/unsettled_instances.h).
  size_t max_blocks_in_flight = 32;
};

// `Block` is whatever the caller answers (proxy::PendingBlock in the service).
//
// Threading: none of its own; one stream's runner thread owns it.
template <typename Block>
class StreamWindow {
 public:
  explicit StreamWindow(const StreamLimits& limits) : StreamWindow(limits.max_blocks_in_flight) {}
  // The bound is at least 1.
  explicit StreamWindow(size_t max_blocks) : max_blocks_(max_blocks < 1 ? 1 : max_blocks) {}

  void Add(Block block) { blocks_.push_back(std::move(block)); }
  bool empty() const { return blocks_.empty(); }
  // REQUIRES: !empty().
  const Block& oldest() const { return blocks_.front(); }
  void PopOldest() { blocks_.pop_front(); }

  // Whether the window holds more than it may: the oldest block must be answered (its commit
  // waited for) before another runs.
  bool Overfull() const { return blocks_.size() > max_blocks_; }

 private:
  const size_t max_blocks_;
  std::deque<Block> blocks_;  // Oldest first.
};

}  // namespace tandem::server
