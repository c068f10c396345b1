// The replay log: the ordered init calls, with a digest of each result, kept in the store's DB.
// It must never interpret a call: it stores and returns bytes; replaying them is the proxy's job.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rocksdb/db.h"
#include "util/mutex.h"

namespace tandem::store {

// One recorded init call.
struct ReplayCall {
  std::string export_name;
  std::string payload;
  std::string result_digest;  // 32 bytes (SHA-256 of the call's result)

  friend bool operator==(const ReplayCall&, const ReplayCall&) = default;
};

// Size caps. A call's size is len(export_name) + len(payload) + 32 (its digest).
struct ReplayLogLimits {
  uint64_t max_bytes = 64ull << 20;
  uint64_t max_calls = 10'000;
};

// What the log holds now, for status and metrics.
struct ReplayLogStats {
  uint64_t calls = 0;
  uint64_t bytes = 0;
};

// The replay log inside a BlockStore's database; obtained from BlockStore::replay_log().
//
// Threading: every method is safe to call from any thread. Writers (Append, Clear) are serialized
// by mu_; List reads a RocksDB snapshot, so it sees a whole log, never half of an Append or Clear.
class ReplayLog {
 public:
  // Scans the existing entries of `db` to learn the next sequence number and the current size.
  // `db` is borrowed and must outlive the log. Returns DATA_LOSS on a malformed entry,
  // UNAVAILABLE on an I/O error.
  static absl::StatusOr<std::unique_ptr<ReplayLog>> Load(rocksdb::DB* db, bool sync,
                                                         ReplayLogLimits limits);

  ReplayLog(const ReplayLog&) = delete;
  ReplayLog& operator=(const ReplayLog&) = delete;

  // Appends `call` after every earlier call, durably (fsync when the store's `sync` is on).
  // Returns INVALID_ARGUMENT when result_digest is not 32 bytes; RESOURCE_EXHAUSTED
  // "replay log full" when the call would pass max_calls or max_bytes (nothing is written);
  // UNAVAILABLE on an I/O error.
  absl::Status Append(const ReplayCall& call) ABSL_LOCKS_EXCLUDED(mu_);

  // Returns every call in append order (empty when none). DATA_LOSS on a malformed entry,
  // UNAVAILABLE on an I/O error.
  absl::StatusOr<std::vector<ReplayCall>> List() const;

  // Removes every call in one atomic write. UNAVAILABLE on an I/O error (the log is unchanged).
  absl::Status Clear() ABSL_LOCKS_EXCLUDED(mu_);

  // Keeps the first `keep_calls` calls and removes every later one, in one atomic write (fsynced
  // when the store's `sync` is on). Returns how many were removed: 0 when the log holds
  // `keep_calls` calls. INVALID_ARGUMENT when it holds fewer (nothing to keep past its end);
  // DATA_LOSS on a malformed entry; UNAVAILABLE on an I/O error (the log is unchanged).
  absl::StatusOr<uint64_t> Truncate(uint64_t keep_calls) ABSL_LOCKS_EXCLUDED(mu_);

  ReplayLogStats Stats() const ABSL_LOCKS_EXCLUDED(mu_);
  const ReplayLogLimits& limits() const { return limits_; }

 private:
  ReplayLog(rocksdb::DB* db, bool sync, ReplayLogLimits limits)
      : db_(db), sync_(sync), limits_(limits) {}

  // Constant after construction.
  rocksdb::DB* const db_;  // borrowed from the owning BlockStore
  const bool sync_;
  const ReplayLogLimits limits_;

  // Serializes writers and guards what they keep in memory about the log.
  mutable util::Mutex mu_;
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  ReplayLogStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem::store
