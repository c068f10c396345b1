// BlockStore: committed blocks over RocksDB: height-versioned values, state roots, rollback.
// It must never know about the engine or guests: it stores bytes per height and nothing else.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rocksdb/db.h"
#include "store/node_identity.h"
#include "store/replay_log.h"
#include "store/state_root.h"
#include "util/mutex.h"

namespace tandem::store {

struct BlockStoreOptions {
  // fsync the WAL on every commit, rollback and replay-log write. Off only for benchmarks and
  // tests: a power loss may then lose the last commits (never half of one).
  bool sync = true;
  ReplayLogLimits replay_log_limits;
  // RocksDB's memory, bounded whatever the number of keys (defaults fit a 4 GiB node beside the
  // guests): the block cache holds data, index and filter blocks of every column family (index
  // and filters are charged to it, so table files add nothing outside it), and the write
  // buffers (memtables of every column family together) are capped by one WriteBufferManager,
  // which flushes, and past the cap stalls writers, rather than grow. What remains outside both
  // is small and does not grow with the key count (table-reader handles, iterators in use).
  uint64_t block_cache_bytes = 256ull << 20;
  uint64_t write_buffer_bytes = 256ull << 20;
  // The RocksDB environment (files, threads); null means RocksDB's default. Tests inject I/O
  // faults through it. Not owned; must outlive the store.
  rocksdb::Env* env = nullptr;
};

// RocksDB's figures about the write path, for metrics: how long writers were held back, and how
// long the WAL took to reach the disk. Counters and percentiles run since the store was opened.
struct WritePathStats {
  uint64_t stall_micros = 0;        // Writers delayed or stopped by RocksDB's write controller.
  bool writes_stopped = false;      // Writes are stopped now (flushes or compactions behind).
  uint64_t delayed_write_rate = 0;  // Bytes/s writers are throttled to now; 0 when not delayed.
  uint64_t wal_syncs = 0;           // fsyncs of the WAL (none with sync = false).
  uint64_t wal_sync_micros = 0;     // Their total duration.
  double wal_sync_p50_micros = 0;   // Their median and 99th percentile.
  double wal_sync_p99_micros = 0;
};

// One block to commit.
struct BlockCommit {
  uint32_t height = 0;
  // The block's bytes, borrowed for the duration of CommitBlock. Used only to derive the hash
  // when `hash` is empty.
  std::string_view block_bytes;
  // 32 bytes as given by the client, or empty: the store then uses SHA-256(block_bytes).
  std::string hash;
  // When set (32 bytes), must equal the stored hash at height - 1.
  std::optional<std::string> prev_hash;
  // The block's final writes; an empty value deletes the key.
  WriteSet writes;
};

// What the store keeps about a committed height.
struct BlockRecord {
  uint32_t height = 0;
  std::string hash;        // 32 bytes
  std::string state_root;  // 32 bytes
  uint32_t write_count = 0;

  friend bool operator==(const BlockRecord&, const BlockRecord&) = default;
};

// The committed chain of blocks [start, tip] and the state they wrote, in one RocksDB database.
//
// Heights: the first commit on an empty store fixes `start` (any height). After that only tip+1
// is accepted. Heights below start were never indexed here: GetBlock answers NOT_FOUND for them,
// Get answers "absent", CommitBlock refuses them with FAILED_PRECONDITION, and Rollback accepts
// nothing below start - 1. Rolling back to start - 1 empties the chain entirely (the replay log
// stays), after which the next commit fixes a new start, exactly as on a fresh store.
//
// Threading: every method is safe to call from any thread. Get, GetBlock, GetTip and
// GetStartHeight never block on a writer and see whole blocks only (each commit and rollback is
// one atomic WriteBatch). QueueCommit, CommitBlock and Rollback are serialized by producer_mu_;
// the store's own commit thread writes queued blocks, one at a time, in order. The intended use
// is one ingesting thread and many readers. A reader of a height that a concurrent Rollback
// removes may see either the old or the new state; callers that care order the two themselves.
class BlockStore {
 public:
  // Opens the store at `path`, creating it when `path` does not exist or is an empty directory.
  // A refused existing database is left byte for byte as it was (its format is checked through a
  // read-only open that writes nothing, not even RocksDB's LOG). A database of format version 1
  // (no `latest` family, tandem before the tip became a point lookup) is migrated in place
  // first: a pass over its history, O(database) once; an interrupted migration starts over on
  // the next open and the old data stays readable until the last step. Errors name the path:
  //   FAILED_PRECONDITION  `path` is not a tandem store (a file, a non-RocksDB directory, a
  //                        RocksDB without tandem's format-version key or with foreign column
  //                        families) or one of a format version this build cannot read;
  //   UNAVAILABLE          the database is locked by another process or handle, or I/O failed;
  //   DATA_LOSS            the database or one of tandem's records is corrupt.
  static absl::StatusOr<std::unique_ptr<BlockStore>> Open(const std::filesystem::path& path,
                                                          const BlockStoreOptions& options = {});

  // Writes the blocks still queued (a queued block is valid; only its acknowledgement waits),
  // stops the commit thread and closes the database.
  ~BlockStore();

  BlockStore(const BlockStore&) = delete;
  BlockStore& operator=(const BlockStore&) = delete;

  // Commits `commit` atomically and durably: its versioned writes, its touched-key list, its
  // block record (hash, state root, write count) and the new tip, in one WriteBatch through the
  // WAL. The same as QueueCommit followed by WaitDurable. Returns the committed record. If
  // `commit.height` is already committed with the same hash, writes nothing and returns the
  // stored record (idempotent resubmission; writes are not compared, the hash stands for the
  // block).
  // Errors:
  //   INVALID_ARGUMENT     hash or prev_hash given but not 32 bytes;
  //   FAILED_PRECONDITION  "height N is not tip+1 (tip is T)"; height below start;
  //                        "height N already committed with hash X; roll back first";
  //                        prev_hash differs from the stored hash at height - 1 (both in hex);
  //   UNAVAILABLE / DATA_LOSS from the database (nothing is committed).
  // At the start height there is no stored parent, so prev_hash is not checked there.
  absl::StatusOr<BlockRecord> CommitBlock(BlockCommit commit)
      ABSL_LOCKS_EXCLUDED(producer_mu_, queue_mu_);

  // The first half of a pipelined commit: checks `commit` against the head (the last block
  // queued, else the tip) exactly as CommitBlock does, and hands it to the store's commit
  // thread, which writes queued blocks one at a time, in order. Returns as soon as it is
  // queued: the block is then the head, Get at its height or above sees its writes (from
  // memory until its batch is written) and the next block may be queued on top of it, so a
  // caller can run that block while this one is written and synced. Nothing about it may be
  // acknowledged before WaitDurable(commit.height) returns OK: GetTip, GetBlock and every
  // other reader of the chain report durable blocks only. Returns OK, also when the height is
  // already committed or queued with the same hash (nothing is queued then); the errors of
  // CommitBlock's checks otherwise, with nothing queued; the error of the queued block it
  // would chain on when that block's write failed meanwhile. `commit.block_bytes` is used before
  // this returns; the writes are moved in.
  absl::Status QueueCommit(BlockCommit commit) ABSL_LOCKS_EXCLUDED(producer_mu_, queue_mu_);

  // Waits until the block queued at `height` is durable (written, and fsynced when `sync`), and
  // returns its record; returns at once with the stored record for a height committed before.
  // Errors: UNAVAILABLE / DATA_LOSS when its batch, or one queued before it, failed to be written:
  // nothing of it is committed (nor of anything queued after it, which fails the same way);
  // FAILED_PRECONDITION when `height` is neither committed nor queued.
  absl::StatusOr<BlockRecord> WaitDurable(uint32_t height) ABSL_LOCKS_EXCLUDED(queue_mu_);

  // The newest block queued or committed: the parent the next QueueCommit must name.
  struct Head {
    uint32_t height = 0;
    std::string hash;
  };
  // std::nullopt when the store has no block and none is queued.
  std::optional<Head> GetHead() const ABSL_LOCKS_EXCLUDED(queue_mu_);

  // Undoes every height above `height` in one WriteBatch, using the per-height touched-key lists:
  // cost is proportional to the writes above `height`, never to the size of the database.
  // Afterwards the tip is `height` and every read and root is as it was when `height` was the tip.
  // Rolling back to the tip is a no-op (OK). Rolling back to start - 1, or to std::nullopt
  // (which also works when start is 0, where start - 1 is not a height), removes every block.
  // Errors:
  //   FAILED_PRECONDITION  the store has no blocks; `height` is above the tip; `height` is below
  //                        start - 1;
  //   UNAVAILABLE / DATA_LOSS from the database (nothing is rolled back).
  // Waits for every queued block to be written first.
  absl::Status Rollback(std::optional<uint32_t> height)
      ABSL_LOCKS_EXCLUDED(producer_mu_, queue_mu_);

  // Returns the value `key` held at `height`: the latest write at or below `height`.
  // std::nullopt when the key was never written at or below `height` or its latest write there
  // was a delete. A height above the tip reads the tip's state. When the key's last write is at
  // or below `height` (always so at the tip, which is what every block reads) this is one point
  // lookup; below that, one seek in the history.
  // Errors: UNAVAILABLE (I/O) or DATA_LOSS (corruption): the host's failures, never the block's.
  absl::StatusOr<std::optional<std::string>> Get(std::string_view key, uint32_t height) const;

  // Returns the record of `height`. NOT_FOUND when it is not committed (above the tip, below
  // start, or the store is empty); UNAVAILABLE / DATA_LOSS from the database.
  absl::StatusOr<BlockRecord> GetBlock(uint32_t height) const;

  // The tip's record; std::nullopt when no block has been committed yet.
  // Durable blocks only (see QueueCommit).
  std::optional<BlockRecord> GetTip() const ABSL_LOCKS_EXCLUDED(state_mu_);

  // The first height this store indexes; std::nullopt when it has no blocks.
  std::optional<uint32_t> GetStartHeight() const ABSL_LOCKS_EXCLUDED(state_mu_);

  // RocksDB's estimate of the live data size, for metrics. UNAVAILABLE when RocksDB has none.
  absl::StatusOr<uint64_t> ApproximateLiveDataBytes() const;

  // The write path's stalls and WAL syncs, for metrics (RocksDB's statistics, enabled at Open at
  // their default level, and its write-controller properties). UNAVAILABLE when RocksDB answers
  // none of the properties. Thread-safe; cheap enough for every scrape.
  absl::StatusOr<WritePathStats> ReadWritePathStats() const;

  // Records `identity` as what this database's blocks are computed with, durably (always
  // fsynced), replacing any earlier record. Whether that is allowed is CheckNodeIdentity's
  // decision, taken before the store is opened. UNAVAILABLE / DATA_LOSS from the database.
  absl::Status BindIdentity(const NodeIdentity& identity);

  // A consistent copy of the database in `directory` (which must not exist), taken while commits
  // go on: a RocksDB checkpoint, hard links to the table files where the file system allows.
  // It holds whole blocks only. store/snapshot.h adds the manifest. Errors: the database's, as
  // UNAVAILABLE (I/O, a read-only folder), RESOURCE_EXHAUSTED (no space), and so on.
  absl::Status CreateCheckpoint(const std::filesystem::path& directory) const;

  // The replay log kept in this store's database. Lives as long as the store.
  ReplayLog& replay_log() { return *replay_log_; }

  const std::filesystem::path& path() const { return path_; }

  // Every live key and value at `height`, by a scan of the whole database. Tests only: it costs
  // O(database).
  absl::StatusOr<WriteSet> DumpAtHeightForTesting(uint32_t height) const;

  // Number of stored history, latest, block-record and touched-list entries (a whole-database
  // scan), so tests can check that a rollback leaves nothing behind.
  absl::StatusOr<uint64_t> CountChainEntriesForTesting() const;

  // Checks, by a scan of the whole database, that the `latest` family holds exactly the newest
  // history version of every key. OK or DATA_LOSS naming the first mismatch. Tests only.
  absl::Status CheckLatestForTesting() const;

 private:
  struct ChainState {
    std::optional<uint32_t> start;
    std::optional<BlockRecord> tip;
  };

  // The column families, in the order Open passes them to RocksDB.
  struct Families {
    std::unique_ptr<rocksdb::ColumnFamilyHandle> latest;
    std::unique_ptr<rocksdb::ColumnFamilyHandle> history;
  };

  BlockStore(std::filesystem::path path, const BlockStoreOptions& options,
             std::unique_ptr<rocksdb::DB> db, Families families, ChainState chain);

  // A block handed to the commit thread. Immutable once queued: readers look its writes up
  // while the commit thread writes them.
  struct QueuedBlock {
    uint32_t height = 0;
    std::string hash;
    WriteSet writes;
    // `writes` by key, pointing into it (which never changes once queued). A read at the tip
    // looks for its key in every queued block, newest first, and most keys are in none of them:
    // with a stream 32 blocks ahead, those B-tree descents through string compares took ~8% of
    // tandemd's samples, on the guest's thread; probes with one hash per read take ~4% (the
    // index built when queued included; benchmarks/README.md, "The stream window counts
    // instances").
    using Index = absl::flat_hash_map<std::string_view, const std::string*>;
    Index values;
  };

  // Reads the start and tip records written by earlier commits.
  static absl::StatusOr<ChainState> LoadChainState(rocksdb::DB& db);

  // The commit thread: writes queued blocks in order until the store closes.
  void CommitLoop() ABSL_LOCKS_EXCLUDED(queue_mu_, overlay_mu_, state_mu_);
  // Builds `block`'s batch (one pass over its writes: history versions, latest values, the
  // touched-key list and the root digest) on top of `chain`, and writes it. Returns its record.
  absl::StatusOr<BlockRecord> WriteBlock(const QueuedBlock& block, const ChainState& chain);
  // The value of `key` written by a queued block at or below `height`; std::nullopt when none
  // wrote it (then the database answers).
  std::optional<std::optional<std::string>> GetQueued(std::string_view key, uint32_t height) const
      ABSL_LOCKS_EXCLUDED(overlay_mu_);

  absl::StatusOr<BlockRecord> ReadBlock(uint32_t height) const;

  // The newest history version of `key` at or below `height`, through `it` (an iterator over
  // the history in prefix mode, reused across calls). Sets *height_found when found.
  absl::StatusOr<std::optional<std::string>> SeekHistory(rocksdb::Iterator& it,
                                                         std::string_view key, uint32_t height,
                                                         uint32_t* height_found) const;
  std::unique_ptr<rocksdb::Iterator> NewHistoryIterator() const;

  // Constant after construction.
  const std::filesystem::path path_;
  const BlockStoreOptions options_;
  // Members are destroyed in reverse: the replay log and the family handles go before the
  // database they belong to.
  const std::unique_ptr<rocksdb::DB> db_;  // thread-safe on its own
  const Families families_;
  std::unique_ptr<ReplayLog> replay_log_;  // set in Open, borrows db_

  // Serializes the producers of chain changes, QueueCommit and Rollback: each checks the head
  // and changes it, and no other may move it in between. Rollback holds it while it waits for
  // the queue to drain, so nothing is queued behind its back. Acquired before queue_mu_.
  util::Mutex producer_mu_ ABSL_ACQUIRED_BEFORE(queue_mu_);

  // Guards the queue between the producers and the commit thread. The commit thread is the
  // only writer of blocks while the queue is non-empty; Rollback writes only once it is empty.
  mutable util::Mutex queue_mu_ ABSL_ACQUIRED_BEFORE(overlay_mu_);
  // Blocks queued and not yet durable, oldest first; the front is being written.
  std::deque<std::shared_ptr<const QueuedBlock>> queue_ ABSL_GUARDED_BY(queue_mu_);
  // The last block queued, else the tip.
  std::optional<Head> head_ ABSL_GUARDED_BY(queue_mu_);
  // Why each recently dropped block was dropped (its batch, or one before it, failed), for
  // WaitDurable; an entry goes when the height is queued again. Bounded by kMaxFailures.
  std::map<uint32_t, absl::Status> failures_ ABSL_GUARDED_BY(queue_mu_);
  bool stopping_ ABSL_GUARDED_BY(queue_mu_) = false;

  // The queued blocks as readers see them: a separate lock, never waited on, so a read costs
  // one uncontended lock and never wakes the commit thread.
  mutable util::Mutex overlay_mu_;
  std::vector<std::shared_ptr<const QueuedBlock>> overlay_ ABSL_GUARDED_BY(overlay_mu_);
  // overlay_.size(), readable without the lock: zero means every block is in the database.
  // Written under overlay_mu_; a reader that sees a stale count still answers correctly, because
  // a block leaves the overlay only after the database holds it, and a block queued after the
  // read started is not the reader's to see.
  std::atomic<size_t> overlay_size_{0};

  // Guards the in-memory copy of the chain's durable ends, published by the commit thread after
  // each write and by Rollback, so readers never wait for an fsync.
  mutable util::Mutex state_mu_ ABSL_ACQUIRED_AFTER(queue_mu_);
  ChainState chain_ ABSL_GUARDED_BY(state_mu_);

  // Runs CommitLoop; started last in Open and joined first in the destructor.
  std::thread commit_thread_;
};

}  // namespace tandem::store
