// The replay log: the ordered init calls, with a digest of each result, kept in the store's DB.
// It must never interpret a call: it stores and returns bytes; replaying them is the proxy's job.
#include "store/replay_log.h"

#include "absl/strings/str_cat.h"
#include "rocksdb/iterator.h"
#include "rocksdb/write_batch.h"
#include "store/keys.h"
#include "store/rocksdb_status.h"
#include "store/state_root.h"

namespace tandem::store {
namespace {

uint64_t CallSize(size_t name_size, size_t payload_size) {
  return name_size + payload_size + kHashSize;
}

// Reads options confined to the replay-log range, so iteration never wanders into block data.
struct ReplayRange {
  ReplayRange() : lower(1, keys::kReplayTag), upper(1, keys::kReplayTag + 1) {
    lower_slice = rocksdb::Slice(lower);
    upper_slice = rocksdb::Slice(upper);
    options.iterate_lower_bound = &lower_slice;
    options.iterate_upper_bound = &upper_slice;
  }
  std::string lower;
  std::string upper;
  rocksdb::Slice lower_slice;
  rocksdb::Slice upper_slice;
  rocksdb::ReadOptions options;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ReplayLog>> ReplayLog::Load(rocksdb::DB* db, bool sync,
                                                           ReplayLogLimits limits) {
  std::unique_ptr<ReplayLog> log(new ReplayLog(db, sync, limits));
  ReplayRange range;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(range.options));
  util::MutexLock lock(&log->mu_);
  for (it->Seek(range.lower_slice); it->Valid(); it->Next()) {
    const rocksdb::Slice key = it->key();
    if (key.size() != 9) return absl::DataLossError("malformed replay-log key");
    absl::StatusOr<keys::ReplayEntryView> entry =
        keys::DecodeReplayEntry(std::string_view(it->value().data(), it->value().size()));
    if (!entry.ok()) return entry.status();
    log->next_seq_ = keys::ReadU64(std::string_view(key.data() + 1, 8)) + 1;
    log->stats_.calls += 1;
    log->stats_.bytes += CallSize(entry->export_name.size(), entry->payload.size());
  }
  if (absl::Status status = FromRocksDbStatus(it->status(), "reading the replay log");
      !status.ok()) {
    return status;
  }
  return log;
}

absl::Status ReplayLog::Append(const ReplayCall& call) {
  if (call.result_digest.size() != kHashSize) {
    return absl::InvalidArgumentError(absl::StrCat("replay-log result digest must be ", kHashSize,
                                                   " bytes, got ", call.result_digest.size()));
  }
  const uint64_t size = CallSize(call.export_name.size(), call.payload.size());
  util::MutexLock lock(&mu_);
  if (stats_.calls + 1 > limits_.max_calls || stats_.bytes + size > limits_.max_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("replay log full: it holds ", stats_.calls, " calls / ", stats_.bytes,
                     " bytes; adding ", size, " bytes would pass the cap of ", limits_.max_calls,
                     " calls / ", limits_.max_bytes, " bytes"));
  }
  rocksdb::WriteOptions options;
  options.sync = sync_;
  const rocksdb::Status put =
      db_->Put(options, keys::ReplayKey(next_seq_),
               keys::EncodeReplayEntry(call.export_name, call.payload, call.result_digest));
  if (absl::Status status = FromRocksDbStatus(put, "appending to the replay log"); !status.ok()) {
    return status;
  }
  next_seq_ += 1;
  stats_.calls += 1;
  stats_.bytes += size;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ReplayCall>> ReplayLog::List() const {
  // Every warm-up asks, and most logs are empty: answer those without an iterator over the chain
  // family. Writers update the count under mu_ once their write is in, so an empty count means an
  // empty log.
  {
    util::MutexLock lock(&mu_);
    if (stats_.calls == 0) return std::vector<ReplayCall>{};
  }
  ReplayRange range;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(range.options));
  std::vector<ReplayCall> calls;
  for (it->Seek(range.lower_slice); it->Valid(); it->Next()) {
    absl::StatusOr<keys::ReplayEntryView> entry =
        keys::DecodeReplayEntry(std::string_view(it->value().data(), it->value().size()));
    if (!entry.ok()) return entry.status();
    calls.push_back(ReplayCall{std::string(entry->export_name), std::string(entry->payload),
                               std::string(entry->result_digest)});
  }
  if (absl::Status status = FromRocksDbStatus(it->status(), "reading the replay log");
      !status.ok()) {
    return status;
  }
  return calls;
}

absl::Status ReplayLog::Clear() {
  util::MutexLock lock(&mu_);
  // The log holds at most max_calls entries, so deleting them one by one stays bounded, and point
  // deletes keep reads simpler for RocksDB than a range tombstone would.
  rocksdb::WriteBatch batch;
  ReplayRange range;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(range.options));
  for (it->Seek(range.lower_slice); it->Valid(); it->Next()) {
    if (const rocksdb::Status s = batch.Delete(it->key()); !s.ok()) {
      return FromRocksDbStatus(s, "clearing the replay log");
    }
  }
  if (absl::Status status = FromRocksDbStatus(it->status(), "reading the replay log");
      !status.ok()) {
    return status;
  }
  rocksdb::WriteOptions options;
  options.sync = sync_;
  if (absl::Status status =
          FromRocksDbStatus(db_->Write(options, &batch), "clearing the replay log");
      !status.ok()) {
    return status;
  }
  stats_ = ReplayLogStats{};
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> ReplayLog::Truncate(uint64_t keep_calls) {
  util::MutexLock lock(&mu_);
  if (keep_calls > stats_.calls) {
    return absl::InvalidArgumentError(absl::StrCat("the replay log holds ", stats_.calls,
                                                   " calls: cannot keep the first ", keep_calls));
  }
  rocksdb::WriteBatch batch;
  ReplayLogStats removed;
  ReplayRange range;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(range.options));
  uint64_t index = 0;
  for (it->Seek(range.lower_slice); it->Valid(); it->Next(), ++index) {
    if (index < keep_calls) continue;
    absl::StatusOr<keys::ReplayEntryView> entry =
        keys::DecodeReplayEntry(std::string_view(it->value().data(), it->value().size()));
    if (!entry.ok()) return entry.status();
    removed.calls += 1;
    removed.bytes += CallSize(entry->export_name.size(), entry->payload.size());
    if (const rocksdb::Status s = batch.Delete(it->key()); !s.ok()) {
      return FromRocksDbStatus(s, "truncating the replay log");
    }
  }
  if (absl::Status status = FromRocksDbStatus(it->status(), "reading the replay log");
      !status.ok()) {
    return status;
  }
  if (removed.calls == 0) return 0;
  rocksdb::WriteOptions options;
  options.sync = sync_;
  if (absl::Status status =
          FromRocksDbStatus(db_->Write(options, &batch), "truncating the replay log");
      !status.ok()) {
    return status;
  }
  stats_.calls -= removed.calls;
  stats_.bytes -= removed.bytes;
  return removed.calls;
}

ReplayLogStats ReplayLog::Stats() const {
  util::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace tandem::store
