// Fetch-ahead of blocks from the node into a bounded queue.
#include "tools/follow/block_fetcher.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tools/follow/chain_hash.h"

namespace tandem::follow {

int BatchSize(const FetchOptions& options, int previous_count, uint64_t previous_bytes) {
  if (previous_count <= 0) return 1;
  const uint64_t mean = std::max<uint64_t>(1, previous_bytes / previous_count);
  const uint64_t by_bytes = std::max<uint64_t>(1, options.batch_bytes / mean);
  const uint64_t limit = std::min<uint64_t>(options.batch, uint64_t{2} * previous_count);
  return static_cast<int>(std::max<uint64_t>(1, std::min(by_bytes, limit)));
}

BlockFetcher::BlockFetcher(NodeRpc& rpc, FollowMetrics& metrics, FetchOptions options,
                           uint32_t height, std::string parent_hash)
    : rpc_(rpc),
      metrics_(metrics),
      options_(options),
      thread_([this, height, parent = std::move(parent_hash)]() mutable {
        Run(height, std::move(parent));
      }) {}

BlockFetcher::~BlockFetcher() {
  Stop();
  thread_.join();
}

void BlockFetcher::Stop() { Finish(FetchEnd::kStopped); }

bool BlockFetcher::Finish(FetchEnd end, absl::Status error, int64_t changed_at) {
  util::MutexLock lock(&mu_);
  if (end_ != FetchEnd::kRunning) return false;
  end_ = end;
  error_ = std::move(error);
  changed_at_ = changed_at;
  // Stopping drops what was read ahead: nobody will submit it.
  if (end == FetchEnd::kStopped) {
    queue_.clear();
    queue_bytes_ = 0;
  }
  return false;
}

bool BlockFetcher::Push(FetchedBlock block) {
  util::MutexLock lock(&mu_);
  mu_.Await([&] {
    return end_ != FetchEnd::kRunning || queue_.empty() ||
           (queue_.size() < options_.capacity && queue_bytes_ < options_.capacity_bytes);
  });
  if (end_ != FetchEnd::kRunning) return false;
  queue_bytes_ += block.bytes.size();
  queue_.push_back(std::move(block));
  return true;
}

std::optional<FetchedBlock> BlockFetcher::Next() {
  util::MutexLock lock(&mu_);
  mu_.Await([&] { return !queue_.empty() || end_ != FetchEnd::kRunning; });
  if (queue_.empty()) return std::nullopt;
  FetchedBlock block = std::move(queue_.front());
  queue_.pop_front();
  queue_bytes_ -= block.bytes.size();
  return block;
}

FetchEnd BlockFetcher::end() const {
  util::MutexLock lock(&mu_);
  return end_;
}

absl::Status BlockFetcher::error() const {
  util::MutexLock lock(&mu_);
  return error_;
}

int64_t BlockFetcher::changed_at() const {
  util::MutexLock lock(&mu_);
  return changed_at_;
}

int64_t BlockFetcher::node_height() const {
  util::MutexLock lock(&mu_);
  return node_height_;
}

void BlockFetcher::Run(uint32_t height, std::string parent_hash) {
  int64_t next = height;
  int64_t node_height = -1;
  int previous_count = 0;       // Blocks of the previous batch,
  uint64_t previous_bytes = 0;  // and their bytes.
  for (;;) {
    if (end() != FetchEnd::kRunning) return;
    if (next > node_height) {
      // Ask for the node's height only when every block known to be there was fetched.
      absl::StatusOr<int64_t> count = rpc_.GetBlockCount();
      if (!count.ok()) {
        Finish(FetchEnd::kFailed, count.status());
        return;
      }
      metrics_.SetNodeHeight(*count);
      if (*count < node_height) {
        Finish(FetchEnd::kChainChanged, absl::OkStatus(), *count + 1);
        return;
      }
      node_height = *count;
      {
        util::MutexLock lock(&mu_);
        node_height_ = node_height;
      }
      if (next > node_height) {
        Finish(FetchEnd::kCaughtUp);
        return;
      }
    }
    const int64_t count = std::min<int64_t>(BatchSize(options_, previous_count, previous_bytes),
                                            node_height - next + 1);
    absl::StatusOr<std::vector<std::string>> hashes = rpc_.GetBlockHashes(next, count);
    if (!hashes.ok()) {
      if (hashes.status().code() == absl::StatusCode::kOutOfRange) {
        Finish(FetchEnd::kChainChanged, absl::OkStatus(), next);  // The node's tip went back.
      } else {
        Finish(FetchEnd::kFailed, hashes.status());
      }
      return;
    }
    absl::StatusOr<std::vector<std::string>> blocks = rpc_.GetRawBlocks(*hashes);
    if (!blocks.ok()) {
      Finish(FetchEnd::kFailed, blocks.status());
      return;
    }
    previous_count = static_cast<int>(blocks->size());
    previous_bytes = 0;
    for (const std::string& bytes : *blocks) previous_bytes += bytes.size();
    for (size_t i = 0; i < blocks->size(); ++i, ++next) {
      absl::StatusOr<std::string> parent = ParentHash((*blocks)[i]);
      if (!parent.ok()) {
        Finish(FetchEnd::kFailed,
               absl::InternalError(
                   absl::StrCat("getblock at height ", next, ": ", parent.status().message())));
        return;
      }
      if (!parent_hash.empty() && *parent != parent_hash) {
        Finish(FetchEnd::kChainChanged, absl::OkStatus(), next);
        return;
      }
      parent_hash = (*hashes)[i];
      FetchedBlock block{static_cast<uint32_t>(next), (*hashes)[i], *std::move(parent),
                         std::move((*blocks)[i])};
      if (!Push(std::move(block))) return;
    }
  }
}

}  // namespace tandem::follow
