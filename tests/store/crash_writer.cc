// Child process of the crash test: commits (and now and then rolls back) deterministic blocks
// until it is killed. It must never print progress the test relies on: the database is the record.
//
// Usage: store_crash_writer DB_PATH READY_FILE SEED
// Creates READY_FILE once the store is open, then runs for at most 30 s.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>

#include "store/block_store.h"
#include "tests/store/crash_model.h"

namespace {

using tandem::store::BlockCommit;
using tandem::store::BlockStore;
using tandem::store::BlockStoreOptions;
namespace t = tandem::store::testing;

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "crash writer: %s\n", status.ToString().c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s DB_PATH READY_FILE SEED\n", argv[0]);
    return 2;
  }
  const uint32_t seed = static_cast<uint32_t>(std::strtoul(argv[3], nullptr, 10));
  std::mt19937 rng(seed);
  BlockStoreOptions options;
  // A SIGKILL loses nothing the kernel already has, so both modes must survive it alike.
  options.sync = (seed % 2) == 0;
  absl::StatusOr<std::unique_ptr<BlockStore>> opened = BlockStore::Open(argv[1], options);
  if (!opened.ok()) return Fail(opened.status());
  BlockStore& store = **opened;
  std::ofstream(argv[2]) << "ready\n";

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::optional<tandem::store::BlockRecord> tip = store.GetTip();
    if (tip.has_value() && rng() % 8 == 0) {
      const uint32_t back = 1 + rng() % 6;
      const uint32_t start = *store.GetStartHeight();
      const uint32_t target = tip->height - back + 1 < start ? start - 1 : tip->height - back;
      if (absl::Status s = store.Rollback(target); !s.ok()) return Fail(s);
      continue;
    }
    const uint32_t height = tip.has_value() ? tip->height + 1 : t::kCrashStartHeight;
    const int variant = static_cast<int>(rng() % t::kCrashVariants);
    const std::string bytes = t::CrashBlockBytes(height, variant);
    BlockCommit commit;
    commit.height = height;
    commit.block_bytes = bytes;
    if (tip.has_value()) commit.prev_hash = tip->hash;
    commit.writes = t::CrashBlockWrites(height, variant);
    if (absl::StatusOr<tandem::store::BlockRecord> r = store.CommitBlock(commit); !r.ok()) {
      return Fail(r.status());
    }
  }
  return 0;
}
