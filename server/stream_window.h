// The blocks a StreamBlocks call has begun and not answered yet, and how many it may have: the
// rule that decides when the stream's runner must wait for the oldest answer before it runs
// another block. Bookkeeping only; it never waits itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <utility>

#include "absl/container/flat_hash_set.h"

namespace tandem::server {

// How far StreamBlocks reads ahead of the block that runs, and how many blocks may have run
// (their commits queued in the store) before the oldest of them is answered.
struct StreamLimits {
  size_t max_queued_blocks = 16;
  uint64_t max_queued_bytes = 128ull << 20;  // At least one block is always queued.
  // Blocks begun and not yet answered, after each answer (at least 1), and the distinct
  // instances they hold (at least 1): StreamWindow below says why there are two bounds. With
  // 1 block, block N+2 cannot run before N is durable and settled: every hand-off between the
  // stream's thread, the guest's worker, the store's commit thread and the pair's settling thread
  // is then on the path of every block, and on 2 busy cores each wake-up may wait for a time
  // slice. Real blocks vary in size (the fixtures from 215 bytes to 1.38 MB): while a large one
  // commits, the guest runs ahead only as far as the window lets it, through the small ones
  // behind it. Blocks are answered as soon as the stream finds them durable, so a deep window
  // does not delay answers.
  size_t max_blocks_in_flight = 32;
  size_t max_instances_in_flight = 8;
};

// Two bounds, because a block in flight costs two different things. Every block holds its writes
// (in the store's queue, which each read of the next blocks consults) and keeps its client
// waiting: `max_blocks` bounds those. A block also keeps the instance that ran it alive until it
// is settled: consecutive blocks on one instance (`none`, `threshold`) share it, but under
// `block` each holds one of its own, with the guest's whole memory and a worker (a thread and its
// V8 isolate): `max_instances` bounds those. Measured on real blocks (benchmarks/README.md, "The
// stream window counts instances"): 32 blocks in flight instead of 8 gave `none` +12% blocks/s
// (median of nine rounds), while under `block` 32 instances instead of 8 cost ~30% more CPU per
// block and 12% fewer blocks/s (four rounds).
//
// `Block` is whatever the caller answers (proxy::PendingBlock in the service); each is added with
// the generation of the instance it holds, 0 for none.
//
// Threading: none of its own; one stream's runner thread owns it.
template <typename Block>
class StreamWindow {
 public:
  explicit StreamWindow(const StreamLimits& limits)
      : StreamWindow(limits.max_blocks_in_flight, limits.max_instances_in_flight) {}
  // Each bound is at least 1.
  StreamWindow(size_t max_blocks, size_t max_instances)
      : max_blocks_(max_blocks < 1 ? 1 : max_blocks),
        max_instances_(max_instances < 1 ? 1 : max_instances) {}

  void Add(Block block, uint64_t instance_generation) {
    blocks_.push_back(Entry{std::move(block), instance_generation});
  }
  bool empty() const { return blocks_.empty(); }
  // REQUIRES: !empty().
  const Block& oldest() const { return blocks_.front().block; }
  void PopOldest() { blocks_.pop_front(); }

  // How many distinct instances the blocks in the window hold.
  size_t InstancesHeld() const {
    absl::flat_hash_set<uint64_t> held;
    for (const Entry& entry : blocks_) {
      if (entry.instance_generation != 0) held.insert(entry.instance_generation);
    }
    return held.size();
  }

  // Whether the window holds more than it may: the oldest block must be answered (its commit
  // waited for) before another runs.
  bool Overfull() const { return blocks_.size() > max_blocks_ || InstancesHeld() > max_instances_; }

 private:
  struct Entry {
    Block block;
    uint64_t instance_generation;
  };

  const size_t max_blocks_;
  const size_t max_instances_;
  std::deque<Entry> blocks_;  // Oldest first.
};

}  // namespace tandem::server
