// BlockStore: committed blocks over RocksDB: height-versioned values, state roots, rollback.
// It must never know about the engine or guests: it stores bytes per height and nothing else.
#include "store/block_store.h"

#include <cstdarg>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "rocksdb/env.h"
#include "rocksdb/iterator.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"
#include "store/keys.h"
#include "store/rocksdb_status.h"

namespace tandem::store {
namespace {

namespace fs = std::filesystem;

// The probe open must leave the directory exactly as it found it; RocksDB would otherwise rotate
// the LOG file of a database that is not ours (or that another process is using).
class DiscardingLogger : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char* /*format*/, va_list /*ap*/) override {}
};

// Debian's abseil keeps its own string_view type, distinct from std::string_view.
std::string Hex(std::string_view bytes) {
  return absl::BytesToHexString(absl::string_view(bytes.data(), bytes.size()));
}

std::string_view View(const rocksdb::Slice& slice) {
  return std::string_view(slice.data(), slice.size());
}

// What the read-only probe found in an existing database.
enum class Probe { kTandem, kUninitialized };

// Inspects an existing database without changing a byte of it: refuses a held lock, a database
// that is not tandem's, another format version or corruption. kUninitialized means an empty
// RocksDB without the version key: a store whose creation was interrupted before the key landed.
absl::StatusOr<Probe> ProbeExisting(const fs::path& path) {
  const std::string where = absl::StrCat("block store at ", path.string());
  rocksdb::Env* env = rocksdb::Env::Default();

  // Ask the lock first through RocksDB's own Env (which also tracks locks this process holds),
  // releasing it at once: the real open takes it again and reports a lost race the same way.
  rocksdb::FileLock* lock = nullptr;
  const rocksdb::Status locked = env->LockFile((path / "LOCK").string(), &lock);
  if (!locked.ok()) {
    if (IsLockHeld(locked)) {
      return absl::UnavailableError(
          absl::StrCat(where, " is locked by another process or handle: ", locked.ToString()));
    }
    return FromRocksDbStatus(locked, where);
  }
  if (const rocksdb::Status s = env->UnlockFile(lock); !s.ok()) return FromRocksDbStatus(s, where);

  rocksdb::Options options;
  options.create_if_missing = false;
  options.info_log = std::make_shared<DiscardingLogger>();

  std::vector<std::string> families;
  if (const rocksdb::Status s = rocksdb::DB::ListColumnFamilies(options, path.string(), &families);
      !s.ok()) {
    if (s.IsCorruption())
      return absl::DataLossError(absl::StrCat(where, " is corrupt: ", s.ToString()));
    return absl::FailedPreconditionError(
        absl::StrCat(where, " is not a readable RocksDB database: ", s.ToString()));
  }
  if (families.size() != 1) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, " is a RocksDB database with ", families.size(),
                     " column families, not a tandem store; refusing to touch it"));
  }

  rocksdb::DB* raw = nullptr;
  if (const rocksdb::Status s = rocksdb::DB::OpenForReadOnly(options, path.string(), &raw);
      !s.ok()) {
    if (s.IsCorruption())
      return absl::DataLossError(absl::StrCat(where, " is corrupt: ", s.ToString()));
    return FromRocksDbStatus(s, absl::StrCat("opening ", where));
  }
  std::unique_ptr<rocksdb::DB> db(raw);

  std::string version;
  const rocksdb::Status got = db->Get(rocksdb::ReadOptions(), keys::kFormatVersionKey, &version);
  if (got.IsNotFound()) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    it->SeekToFirst();
    if (!it->status().ok()) return FromRocksDbStatus(it->status(), where);
    if (it->Valid()) {
      return absl::FailedPreconditionError(absl::StrCat(
          where,
          " is a RocksDB database without tandem's format-version key, not a tandem store; "
          "refusing to touch it"));
    }
    return Probe::kUninitialized;
  }
  if (!got.ok()) {
    if (got.IsCorruption())
      return absl::DataLossError(absl::StrCat(where, " is corrupt: ", got.ToString()));
    return FromRocksDbStatus(got, where);
  }
  absl::StatusOr<uint32_t> decoded = keys::DecodeU32(version, "format version");
  if (!decoded.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, " has an unreadable format version (", Hex(version), ")"));
  }
  if (*decoded != keys::kFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(where, " has format version ", *decoded,
                                                      "; this build reads format version ",
                                                      keys::kFormatVersion));
  }
  return Probe::kTandem;
}

// Reads an optional u32 metadata key.
absl::StatusOr<std::optional<uint32_t>> ReadMetaU32(rocksdb::DB& db, const char* key,
                                                    absl::string_view what) {
  std::string value;
  const rocksdb::Status s = db.Get(rocksdb::ReadOptions(), key, &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return FromRocksDbStatus(s, absl::StrCat("reading the ", what));
  absl::StatusOr<uint32_t> decoded = keys::DecodeU32(value, what);
  if (!decoded.ok()) return decoded.status();
  return *decoded;
}

}  // namespace

absl::StatusOr<std::unique_ptr<BlockStore>> BlockStore::Open(const fs::path& path,
                                                             const BlockStoreOptions& options) {
  const std::string where = absl::StrCat("block store at ", path.string());
  std::error_code error;
  bool fresh = false;
  const fs::file_status status = fs::status(path, error);
  if (!fs::exists(status)) {
    fresh = true;
    fs::create_directories(path, error);
    if (error) {
      return absl::UnavailableError(absl::StrCat("cannot create ", where, ": ", error.message()));
    }
  } else if (!fs::is_directory(status)) {
    return absl::FailedPreconditionError(absl::StrCat(where, ": not a directory"));
  } else {
    fresh = fs::is_empty(path, error);
    if (error) {
      return absl::UnavailableError(absl::StrCat("cannot list ", where, ": ", error.message()));
    }
  }

  bool stamp_version = fresh;
  if (!fresh) {
    if (!fs::exists(path / "CURRENT", error)) {
      return absl::FailedPreconditionError(absl::StrCat(
          where, " is a non-empty directory that is not a RocksDB database (no CURRENT file)"));
    }
    absl::StatusOr<Probe> probe = ProbeExisting(path);
    if (!probe.ok()) return probe.status();
    stamp_version = *probe == Probe::kUninitialized;
  }

  rocksdb::Options db_options;
  db_options.create_if_missing = fresh;
  db_options.max_background_jobs = 2;
  rocksdb::DB* raw = nullptr;
  if (const rocksdb::Status s = rocksdb::DB::Open(db_options, path.string(), &raw); !s.ok()) {
    if (IsLockHeld(s)) {
      return absl::UnavailableError(
          absl::StrCat(where, " is locked by another process or handle: ", s.ToString()));
    }
    return FromRocksDbStatus(s, absl::StrCat("opening ", where));
  }
  std::unique_ptr<rocksdb::DB> db(raw);

  if (stamp_version) {
    rocksdb::WriteOptions write_options;
    write_options.sync = true;
    if (const rocksdb::Status s =
            db->Put(write_options, keys::kFormatVersionKey, keys::EncodeU32(keys::kFormatVersion));
        !s.ok()) {
      return FromRocksDbStatus(s, absl::StrCat("initialising ", where));
    }
  }

  absl::StatusOr<ChainState> chain = LoadChainState(*db);
  if (!chain.ok()) {
    return absl::Status(chain.status().code(), absl::StrCat(where, ": ", chain.status().message()));
  }
  absl::StatusOr<std::unique_ptr<ReplayLog>> replay_log =
      ReplayLog::Load(db.get(), options.sync, options.replay_log_limits);
  if (!replay_log.ok()) {
    return absl::Status(replay_log.status().code(),
                        absl::StrCat(where, ": ", replay_log.status().message()));
  }
  std::unique_ptr<BlockStore> store(
      new BlockStore(path, options, std::move(db), *std::move(chain)));
  store->replay_log_ = *std::move(replay_log);
  return store;
}

BlockStore::BlockStore(fs::path path, const BlockStoreOptions& options,
                       std::unique_ptr<rocksdb::DB> db, ChainState chain)
    : path_(std::move(path)), options_(options), db_(std::move(db)), chain_(std::move(chain)) {}

// The replay log is destroyed first (it borrows db_), then the database closes with its handle.
BlockStore::~BlockStore() = default;

absl::StatusOr<BlockStore::ChainState> BlockStore::LoadChainState(rocksdb::DB& db) {
  absl::StatusOr<std::optional<uint32_t>> tip = ReadMetaU32(db, keys::kTipKey, "tip height");
  if (!tip.ok()) return tip.status();
  absl::StatusOr<std::optional<uint32_t>> start = ReadMetaU32(db, keys::kStartKey, "start height");
  if (!start.ok()) return start.status();
  if (tip->has_value() != start->has_value() || (tip->has_value() && **tip < **start)) {
    return absl::DataLossError("inconsistent tip and start heights");
  }
  ChainState chain;
  if (!tip->has_value()) return chain;
  chain.start = **start;
  std::string value;
  const rocksdb::Status s = db.Get(rocksdb::ReadOptions(), keys::BlockKey(**tip), &value);
  if (s.IsNotFound()) {
    return absl::DataLossError(absl::StrCat("the tip block ", **tip, " has no record"));
  }
  if (!s.ok()) return FromRocksDbStatus(s, "reading the tip block");
  absl::StatusOr<keys::BlockMeta> meta = keys::DecodeBlockMeta(value);
  if (!meta.ok()) return meta.status();
  chain.tip =
      BlockRecord{**tip, std::move(meta->hash), std::move(meta->state_root), meta->write_count};
  return chain;
}

absl::StatusOr<BlockRecord> BlockStore::ReadBlock(uint32_t height) const {
  std::string value;
  const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), keys::BlockKey(height), &value);
  if (s.IsNotFound()) {
    return absl::NotFoundError(absl::StrCat("height ", height, " is not committed"));
  }
  if (!s.ok()) return FromRocksDbStatus(s, absl::StrCat("reading block ", height));
  absl::StatusOr<keys::BlockMeta> meta = keys::DecodeBlockMeta(value);
  if (!meta.ok()) return meta.status();
  return BlockRecord{height, std::move(meta->hash), std::move(meta->state_root), meta->write_count};
}

absl::StatusOr<BlockRecord> BlockStore::CommitBlock(const BlockCommit& commit) {
  const uint32_t height = commit.height;
  if (!commit.hash.empty() && commit.hash.size() != kHashSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("block hash must be ", kHashSize, " bytes, got ", commit.hash.size()));
  }
  if (commit.prev_hash.has_value() && commit.prev_hash->size() != kHashSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("prev_hash must be ", kHashSize, " bytes, got ", commit.prev_hash->size()));
  }
  if (commit.writes.size() > UINT32_MAX) {
    return absl::InvalidArgumentError("a block may write at most 2^32-1 keys");
  }
  const std::string hash = commit.hash.empty() ? Sha256(commit.block_bytes) : commit.hash;

  util::MutexLock write_lock(&write_mu_);
  ChainState chain;
  {
    util::MutexLock state_lock(&state_mu_);
    chain = chain_;
  }

  std::string prev_root = ZeroRoot();
  if (chain.tip.has_value()) {
    const uint32_t tip = chain.tip->height;
    if (height < *chain.start) {
      return absl::FailedPreconditionError(absl::StrCat(
          "height ", height, " is below the first height this store indexes (", *chain.start,
          "); roll back to ", static_cast<int64_t>(*chain.start) - 1, " to re-index from earlier"));
    }
    if (height <= tip) {
      absl::StatusOr<BlockRecord> stored = ReadBlock(height);
      if (!stored.ok()) return stored.status();
      if (stored->hash == hash) return *std::move(stored);
      return absl::FailedPreconditionError(absl::StrCat("height ", height,
                                                        " already committed with hash ",
                                                        Hex(stored->hash), "; roll back first"));
    }
    if (static_cast<uint64_t>(height) != static_cast<uint64_t>(tip) + 1) {
      return absl::FailedPreconditionError(
          absl::StrCat("height ", height, " is not tip+1 (tip is ", tip, ")"));
    }
    if (commit.prev_hash.has_value() && *commit.prev_hash != chain.tip->hash) {
      return absl::FailedPreconditionError(absl::StrCat(
          "parent hash mismatch at height ", height, ": prev_hash is ", Hex(*commit.prev_hash),
          " but the stored hash at height ", tip, " is ", Hex(chain.tip->hash)));
    }
    prev_root = chain.tip->state_root;
  }

  BlockRecord record{height, hash, ComputeStateRoot(prev_root, height, commit.writes),
                     static_cast<uint32_t>(commit.writes.size())};

  rocksdb::WriteBatch batch;
  std::string touched;
  rocksdb::Status s;
  for (const auto& [key, value] : commit.writes) {
    s = batch.Put(keys::VersionKey(key, height), value);
    if (!s.ok()) return FromRocksDbStatus(s, "building the commit batch");
    keys::AppendTouchedKey(&touched, key);
  }
  const std::string height_bytes = keys::EncodeU32(height);
  for (const rocksdb::Status& put :
       {batch.Put(keys::TouchedKey(height), touched),
        batch.Put(keys::BlockKey(height),
                  keys::EncodeBlockMeta({record.hash, record.state_root, record.write_count})),
        batch.Put(keys::kTipKey, height_bytes),
        chain.tip.has_value() ? rocksdb::Status::OK() : batch.Put(keys::kStartKey, height_bytes)}) {
    if (!put.ok()) return FromRocksDbStatus(put, "building the commit batch");
  }
  rocksdb::WriteOptions write_options;
  write_options.sync = options_.sync;
  s = db_->Write(write_options, &batch);
  if (!s.ok()) return FromRocksDbStatus(s, absl::StrCat("committing height ", height));

  util::MutexLock state_lock(&state_mu_);
  if (!chain_.start.has_value()) chain_.start = height;
  chain_.tip = record;
  return record;
}

absl::Status BlockStore::Rollback(uint32_t height) {
  util::MutexLock write_lock(&write_mu_);
  ChainState chain;
  {
    util::MutexLock state_lock(&state_mu_);
    chain = chain_;
  }
  if (!chain.tip.has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot roll back to height ", height, ": the store has no blocks"));
  }
  const uint32_t tip = chain.tip->height;
  const uint32_t start = *chain.start;
  if (height > tip) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot roll back to height ", height, ": it is above the tip (", tip, ")"));
  }
  if (height == tip) return absl::OkStatus();
  if (static_cast<uint64_t>(height) + 1 < start) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot roll back to height ", height, ": it is below start-1 (start is ", start, ")"));
  }

  rocksdb::WriteBatch batch;
  rocksdb::Status s;
  for (uint32_t h = tip; h > height; --h) {
    std::string touched;
    s = db_->Get(rocksdb::ReadOptions(), keys::TouchedKey(h), &touched);
    if (s.IsNotFound()) {
      return absl::DataLossError(absl::StrCat("height ", h, " has no touched-key list"));
    }
    if (!s.ok()) return FromRocksDbStatus(s, absl::StrCat("reading the keys of height ", h));
    absl::StatusOr<std::vector<std::string>> touched_keys = keys::DecodeTouchedKeys(touched);
    if (!touched_keys.ok()) return touched_keys.status();
    // TODO(perf): SingleDelete would leave cheaper tombstones (each version key is put once per
    // commit), but a plain Delete stays correct whatever happens to be in the database.
    for (const std::string& key : *touched_keys) {
      s = batch.Delete(keys::VersionKey(key, h));
      if (!s.ok()) return FromRocksDbStatus(s, "building the rollback batch");
    }
    for (const rocksdb::Status& del :
         {batch.Delete(keys::TouchedKey(h)), batch.Delete(keys::BlockKey(h))}) {
      if (!del.ok()) return FromRocksDbStatus(del, "building the rollback batch");
    }
  }

  ChainState next;
  if (height + 1 == start) {
    // Every block goes: the store is as fresh as a new one (apart from its replay log).
    for (const rocksdb::Status& del :
         {batch.Delete(keys::kTipKey), batch.Delete(keys::kStartKey)}) {
      if (!del.ok()) return FromRocksDbStatus(del, "building the rollback batch");
    }
  } else {
    absl::StatusOr<BlockRecord> new_tip = ReadBlock(height);
    if (!new_tip.ok()) return new_tip.status();
    next.start = start;
    next.tip = *std::move(new_tip);
    s = batch.Put(keys::kTipKey, keys::EncodeU32(height));
    if (!s.ok()) return FromRocksDbStatus(s, "building the rollback batch");
  }

  rocksdb::WriteOptions write_options;
  write_options.sync = options_.sync;
  s = db_->Write(write_options, &batch);
  if (!s.ok()) return FromRocksDbStatus(s, absl::StrCat("rolling back to height ", height));

  util::MutexLock state_lock(&state_mu_);
  chain_ = std::move(next);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> BlockStore::Get(std::string_view key,
                                                           uint32_t height) const {
  const std::string prefix = keys::VersionPrefix(key);
  std::string target = prefix;
  keys::AppendU32(&target, ~height);
  // Versions of `key` are exactly prefix ‖ 4 bytes; prefix ‖ FFFFFFFF (height 0) is the last.
  // The bound keeps the seek from stepping past this key's versions (and their tombstones).
  std::string upper = prefix + std::string("\xff\xff\xff\xff\x00", 5);
  const rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_options));
  it->Seek(target);
  if (!it->Valid()) {
    if (absl::Status status =
            FromRocksDbStatus(it->status(), absl::StrCat("reading at height ", height));
        !status.ok()) {
      return status;
    }
    return std::nullopt;
  }
  const std::string_view found = View(it->key());
  if (found.size() != prefix.size() + 4 || found.substr(0, prefix.size()) != prefix) {
    return std::nullopt;
  }
  const rocksdb::Slice value = it->value();
  if (value.empty()) return std::nullopt;
  return std::string(value.data(), value.size());
}

absl::StatusOr<BlockRecord> BlockStore::GetBlock(uint32_t height) const {
  return ReadBlock(height);
}

std::optional<BlockRecord> BlockStore::GetTip() const {
  util::MutexLock lock(&state_mu_);
  return chain_.tip;
}

std::optional<uint32_t> BlockStore::GetStartHeight() const {
  util::MutexLock lock(&state_mu_);
  return chain_.start;
}

absl::StatusOr<uint64_t> BlockStore::ApproximateLiveDataBytes() const {
  uint64_t bytes = 0;
  if (!db_->GetIntProperty(rocksdb::DB::Properties::kEstimateLiveDataSize, &bytes)) {
    return absl::UnavailableError("RocksDB has no live-data estimate");
  }
  return bytes;
}

absl::StatusOr<WriteSet> BlockStore::DumpAtHeightForTesting(uint32_t height) const {
  WriteSet live;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  std::string last_key;
  bool have_last = false;
  for (it->Seek(std::string(1, keys::kVersionTag));
       it->Valid() && View(it->key())[0] == keys::kVersionTag; it->Next()) {
    std::string_view raw = View(it->key());
    if (raw.size() < 9) return absl::DataLossError("malformed version key");
    const uint32_t key_size = keys::ReadU32(raw.substr(1));
    if (raw.size() != 1 + 4 + key_size + 4) return absl::DataLossError("malformed version key");
    const std::string_view user_key = raw.substr(5, key_size);
    const uint32_t version = ~keys::ReadU32(raw.substr(5 + key_size));
    if (version > height) continue;
    // Versions run newest first: the first one at or below `height` decides.
    if (have_last && user_key == last_key) continue;
    last_key = std::string(user_key);
    have_last = true;
    if (!it->value().empty()) live.emplace(last_key, std::string(View(it->value())));
  }
  if (absl::Status status = FromRocksDbStatus(it->status(), "dumping"); !status.ok()) {
    return status;
  }
  return live;
}

absl::StatusOr<uint64_t> BlockStore::CountChainEntriesForTesting() const {
  uint64_t count = 0;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const char tag = it->key()[0];
    if (tag == keys::kBlockTag || tag == keys::kTouchedTag || tag == keys::kVersionTag) ++count;
  }
  if (absl::Status status = FromRocksDbStatus(it->status(), "counting"); !status.ok()) {
    return status;
  }
  return count;
}

}  // namespace tandem::store
