// BlockStore: committed blocks over RocksDB: height-versioned values, state roots, rollback.
// It must never know about the engine or guests: it stores bytes per height and nothing else.
//
// Layout (keys.h has the bytes). Every block reads the state at height - 1, the tip, on nearly
// every output it indexes; views mostly read the tip too. So the tip's state has a column family
// of its own, `latest` (key -> height of its last write ‖ value), written in the same WriteBatch
// as the versions in `history` (key ‖ ~height -> value) that past-height views and rollback use.
// A read at height h is one point lookup in `latest` whenever the key's last write is at or below
// h, which is always true at the tip; otherwise (a past height) one seek in `history`. The height
// kept with each latest value makes that test exact even while a commit or rollback runs beside
// the read, and makes a delete a latest value too (an empty one): "deleted at h" must still send
// reads below h to the history.
//
// Measured before choosing (benchmarks/store_layout_bench, README "Store layout"), on the example
// indexer's reads and writes of the real fixture blocks:
//   - format 1 (one seek per read over the versions): 3.1 us per read, 2.9 us per write;
//   - RocksDB's user-defined timestamps (one family, height as timestamp, a point lookup at any
//     height): 1.4-1.5 us per read, 2.2-3.0 us per write;
//   - latest + history with skiplist memtables: 1.4 us per read, 5.7 us per write;
//   - latest + history with hash memtables: 0.54 us per read, 1.8 us per write (two entries per
//     write, but each insert is a hash probe, not a skiplist descent through cache misses).
// Timestamps were also rejected for rollback: RocksDB cannot remove one version of a key, only
// hide older ones, so undoing a block would leave a shadowing entry per undone write forever
// (or re-number every later commit), and RocksDB 7.8 still marks the feature experimental (its
// u64 comparator is not even in the public headers).
//
// Memtables: both data families use hash-linked-list memtables, keyed by the whole key (latest)
// or the user-key part of a history key (keys::HistoryUserKeyPart): a commit's inserts and the
// tip's lookups are hash probes. The price is paid by flushes, which sort the memtable on
// RocksDB's background thread, off the commit path. Iterating a family in key order needs
// total_order_seek, which only the test scans and the format-1 migration do. `latest` also
// updates in place. Measured on the same workload, four times over so flushes count (process
// CPU per block including RocksDB's background work): skiplists 10.2 ms, hash lists 5.3 ms,
// hash lists with `latest` in place 4.5 ms; and 64 MiB memtables beat 32, 16 and 4 MiB.

#include "store/block_store.h"

#include <algorithm>
#include <cstdarg>
#include <cstddef>
#include <map>
#include <set>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "rocksdb/cache.h"
#include "rocksdb/env.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/iterator.h"
#include "rocksdb/memtablerep.h"
#include "rocksdb/options.h"
#include "rocksdb/statistics.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/checkpoint.h"
#include "rocksdb/write_batch.h"
#include "rocksdb/write_buffer_manager.h"
#include "store/keys.h"
#include "store/memory_trim_listener.h"
#include "store/rocksdb_status.h"
#include "util/status_macros.h"

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
enum class Probe { kTandem, kFormatV1, kUninitialized };

bool IsTandemFamily(const std::string& name) {
  return name == rocksdb::kDefaultColumnFamilyName || name == keys::kLatestFamily ||
         name == keys::kHistoryFamily;
}

// Inspects an existing database without changing a byte of it: refuses a held lock, a database
// that is not tandem's, a format version this build cannot read, or corruption. kUninitialized
// means a RocksDB without the version key and without data: a store whose creation was
// interrupted before the key landed. kFormatV1 asks for a migration.
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
  for (const std::string& family : families) {
    if (!IsTandemFamily(family)) {
      return absl::FailedPreconditionError(
          absl::StrCat(where, " is a RocksDB database with a column family '", family,
                       "' that tandem never creates, not a tandem store; refusing to touch it"));
    }
  }

  // A read-only open may leave families out: only `default` holds what the probe reads.
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
  if (*decoded == keys::kFormatVersionV1) return Probe::kFormatV1;
  if (*decoded != keys::kFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        where, " has format version ", *decoded, "; this build reads format version ",
        keys::kFormatVersion, " (and migrates version ", keys::kFormatVersionV1,
        "). Open it with the tandemd release that wrote it, or index into a new --db"));
  }
  if (families.size() != 3) {
    return absl::DataLossError(absl::StrCat(where, " has format version ", keys::kFormatVersion,
                                            " but lacks its '", keys::kLatestFamily, "' or '",
                                            keys::kHistoryFamily, "' column family"));
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

// How many hash buckets each data memtable has: about one per key a full memtable holds at the
// default write buffer (entries of ~100 bytes), so that lists stay a few entries long. 8 bytes
// each, allocated with every memtable.
constexpr size_t kMemtableBuckets = 1 << 18;

// The options of the database and of each column family, sized by `options`.
struct DatabaseOptions {
  rocksdb::DBOptions db;
  std::vector<rocksdb::ColumnFamilyDescriptor> families;  // default, latest, history
};

DatabaseOptions MakeDatabaseOptions(const BlockStoreOptions& options) {
  DatabaseOptions out;
  if (options.env != nullptr) out.db.env = options.env;
  out.db.max_background_jobs = 2;
  // Hash memtables take one writer at a time; blocks are written by one thread anyway.
  out.db.allow_concurrent_memtable_write = false;
  // For metrics (ReadWritePathStats): write stalls and WAL sync times. At the default level
  // (no per-mutex timers) a write pays a few per-core counter updates and clock reads.
  out.db.statistics = rocksdb::CreateDBStatistics();
  out.db.write_buffer_manager = std::make_shared<rocksdb::WriteBufferManager>(
      options.write_buffer_bytes, /*cache=*/nullptr, /*allow_stall=*/true);
  out.db.listeners.push_back(std::make_shared<MemoryTrimListener>());

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  // Index and filter blocks live in the block cache, so they count against its cap; the top
  // level's stay pinned there, so the common point lookup never waits for them.
  table.cache_index_and_filter_blocks = true;
  table.cache_index_and_filter_blocks_with_high_priority = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.optimize_filters_for_memory = true;
  // Debian's RocksDB is built without SSE4.2, so its crc32c is the table-driven one; XXH3 checks
  // the same blocks several times faster.
  table.checksum = rocksdb::kXXH3;
  // A point lookup in a data block hashes to its restart interval instead of a binary search.
  table.data_block_index_type = rocksdb::BlockBasedTableOptions::kDataBlockBinaryAndHash;
  const std::shared_ptr<rocksdb::TableFactory> table_factory(
      rocksdb::NewBlockBasedTableFactory(table));

  // Each data family may fill a quarter of the shared budget before it flushes; the manager
  // flushes earlier when all of them together reach it.
  const size_t data_buffer = std::max<size_t>(options.write_buffer_bytes / 4, 1 << 20);
  auto data_family = [&](std::shared_ptr<const rocksdb::SliceTransform> prefix) {
    rocksdb::ColumnFamilyOptions family;
    family.table_factory = table_factory;
    family.write_buffer_size = data_buffer;
    family.max_write_buffer_number = 4;
    family.prefix_extractor = std::move(prefix);
    family.memtable_factory.reset(rocksdb::NewHashLinkListRepFactory(kMemtableBuckets));
    family.level_compaction_dynamic_level_bytes = true;
    family.compression = rocksdb::kLZ4Compression;
    return family;
  };
  rocksdb::ColumnFamilyOptions chain;  // default: meta, block records, touched lists, replay log
  chain.table_factory = table_factory;
  chain.write_buffer_size = std::max<size_t>(options.write_buffer_bytes / 16, 1 << 20);
  chain.level_compaction_dynamic_level_bytes = true;
  chain.compression = rocksdb::kLZ4Compression;
  rocksdb::ColumnFamilyOptions latest = data_family(std::make_shared<keys::WholeKey>());
  // A key rewritten with a value no longer than the one in the memtable is updated there in
  // place: hot keys (an indexer's per-script totals) then take one memtable entry, not one per
  // block, and flush far less. Readers never rely on a snapshot of `latest` (the height in each
  // value tells them whether it is theirs), so losing RocksDB's per-key versions there is safe.
  latest.inplace_update_support = true;
  out.families = {
      {rocksdb::kDefaultColumnFamilyName, chain},
      {keys::kLatestFamily, latest},
      {keys::kHistoryFamily, data_family(std::make_shared<keys::HistoryUserKeyPart>())}};
  return out;
}

// Read options for a scan of a hash-memtable family in key order (tests and migration only).
rocksdb::ReadOptions TotalOrder() {
  rocksdb::ReadOptions read_options;
  read_options.total_order_seek = true;
  return read_options;
}

absl::StatusOr<bool> FamilyIsEmpty(rocksdb::DB& db, rocksdb::ColumnFamilyHandle* family) {
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(TotalOrder(), family));
  it->SeekToFirst();
  if (!it->status().ok()) return FromRocksDbStatus(it->status(), "scanning a column family");
  return !it->Valid();
}

// Rebuilds a format-1 database as format 2 in place: every 'v' version of `default` is copied
// to `history` (its key without the tag) and the newest version of each key to `latest`; then
// one synced batch stamps format 2 and deletes the 'v' range. Until that batch, the database is
// still a readable format-1 store; a crash before it leaves partial copies that the next open
// discards (it recreates both families) before starting over.
absl::Status MigrateFromV1(rocksdb::DB& db, const DatabaseOptions& options,
                           std::unique_ptr<rocksdb::ColumnFamilyHandle>& latest,
                           std::unique_ptr<rocksdb::ColumnFamilyHandle>& history) {
  for (auto* family : {&latest, &history}) {
    absl::StatusOr<bool> empty = FamilyIsEmpty(db, family->get());
    if (!empty.ok()) return empty.status();
    if (*empty) continue;
    const std::string name = (*family)->GetName();
    const rocksdb::ColumnFamilyOptions& family_options =
        name == keys::kLatestFamily ? options.families[1].options : options.families[2].options;
    if (rocksdb::Status s = db.DropColumnFamily(family->get()); !s.ok()) {
      return FromRocksDbStatus(s, "discarding an interrupted migration");
    }
    family->reset();
    rocksdb::ColumnFamilyHandle* created = nullptr;
    if (rocksdb::Status s = db.CreateColumnFamily(family_options, name, &created); !s.ok()) {
      return FromRocksDbStatus(s, "discarding an interrupted migration");
    }
    family->reset(created);
  }

  // The copies go without the WAL: the final flush makes them durable before the stamp.
  rocksdb::WriteOptions unlogged;
  unlogged.disableWAL = true;
  const std::string lower(1, keys::kV1VersionTag);
  const std::string upper(1, keys::kV1VersionTag + 1);
  const rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(read_options));
  rocksdb::WriteBatch batch;
  std::string last_key;
  bool have_last = false;
  std::string latest_value;
  for (it->Seek(lower); it->Valid(); it->Next()) {
    const std::string_view history_key = View(it->key()).substr(1);
    absl::StatusOr<keys::HistoryKeyParts> parts = keys::DecodeHistoryKey(history_key);
    if (!parts.ok()) return parts.status();
    const rocksdb::Slice value = it->value();
    rocksdb::Status s =
        batch.Put(history.get(), rocksdb::Slice(history_key.data(), history_key.size()), value);
    // Versions of one key run newest first: the first one seen is the latest.
    if (s.ok() && (!have_last || parts->user_key != last_key)) {
      last_key = std::string(parts->user_key);
      have_last = true;
      latest_value.clear();
      keys::AppendLatestValue(&latest_value, parts->height, View(value));
      s = batch.Put(latest.get(), last_key, latest_value);
    }
    if (s.ok() && batch.GetDataSize() > (4 << 20)) {
      s = db.Write(unlogged, &batch);
      batch.Clear();
    }
    if (!s.ok()) return FromRocksDbStatus(s, "migrating from format version 1");
  }
  if (!it->status().ok()) return FromRocksDbStatus(it->status(), "migrating from format version 1");
  it.reset();
  if (rocksdb::Status s = db.Write(unlogged, &batch); !s.ok()) {
    return FromRocksDbStatus(s, "migrating from format version 1");
  }
  if (rocksdb::Status s = db.Flush(rocksdb::FlushOptions(), {latest.get(), history.get()});
      !s.ok()) {
    return FromRocksDbStatus(s, "migrating from format version 1");
  }

  rocksdb::WriteBatch stamp;
  rocksdb::WriteOptions synced;
  synced.sync = true;
  rocksdb::Status s = stamp.DeleteRange(db.DefaultColumnFamily(), lower, upper);
  if (s.ok()) {
    s = stamp.Put(keys::kFormatVersionKey, keys::EncodeU32(keys::kFormatVersion));
  }
  if (s.ok()) s = db.Write(synced, &stamp);
  if (!s.ok()) return FromRocksDbStatus(s, "migrating from format version 1");
  // Give the old versions' space back now rather than whenever compaction reaches them.
  const rocksdb::Slice lower_slice(lower);
  if (s = db.CompactRange(rocksdb::CompactRangeOptions(), &lower_slice, &upper_slice); !s.ok()) {
    return FromRocksDbStatus(s, "compacting after the migration from format version 1");
  }
  return absl::OkStatus();
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

  Probe probe = Probe::kUninitialized;
  if (!fresh) {
    if (!fs::exists(path / "CURRENT", error)) {
      return absl::FailedPreconditionError(absl::StrCat(
          where, " is a non-empty directory that is not a RocksDB database (no CURRENT file)"));
    }
    TANDEM_ASSIGN_OR_RETURN(probe, ProbeExisting(path));
  }

  DatabaseOptions database = MakeDatabaseOptions(options);
  database.db.create_if_missing = fresh;
  database.db.create_missing_column_families = true;
  rocksdb::DB* raw = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> raw_handles;
  if (const rocksdb::Status s =
          rocksdb::DB::Open(database.db, path.string(), database.families, &raw_handles, &raw);
      !s.ok()) {
    if (IsLockHeld(s)) {
      return absl::UnavailableError(
          absl::StrCat(where, " is locked by another process or handle: ", s.ToString()));
    }
    return FromRocksDbStatus(s, absl::StrCat("opening ", where));
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  // RocksDB owns the default family's handle; the others are ours to delete, before the DB.
  delete raw_handles[0];
  Families families{std::unique_ptr<rocksdb::ColumnFamilyHandle>(raw_handles[1]),
                    std::unique_ptr<rocksdb::ColumnFamilyHandle>(raw_handles[2])};
  auto fail = [&](const absl::Status& status) {
    families = Families();
    return absl::Status(status.code(), absl::StrCat(where, ": ", status.message()));
  };

  if (probe == Probe::kFormatV1) {
    if (absl::Status migrated = MigrateFromV1(*db, database, families.latest, families.history);
        !migrated.ok()) {
      return fail(migrated);
    }
  } else if (probe == Probe::kUninitialized) {
    rocksdb::WriteOptions write_options;
    write_options.sync = true;
    if (const rocksdb::Status s =
            db->Put(write_options, keys::kFormatVersionKey, keys::EncodeU32(keys::kFormatVersion));
        !s.ok()) {
      return fail(FromRocksDbStatus(s, "initialising the database"));
    }
  }

  absl::StatusOr<ChainState> chain = LoadChainState(*db);
  if (!chain.ok()) return fail(chain.status());
  absl::StatusOr<std::unique_ptr<ReplayLog>> replay_log =
      ReplayLog::Load(db.get(), options.sync, options.replay_log_limits);
  if (!replay_log.ok()) return fail(replay_log.status());
  std::unique_ptr<BlockStore> store(
      new BlockStore(path, options, std::move(db), std::move(families), *std::move(chain)));
  store->replay_log_ = *std::move(replay_log);
  return store;
}

BlockStore::BlockStore(fs::path path, const BlockStoreOptions& options,
                       std::unique_ptr<rocksdb::DB> db, Families families, ChainState chain)
    : path_(std::move(path)),
      options_(options),
      db_(std::move(db)),
      families_(std::move(families)),
      chain_(std::move(chain)) {
  {
    util::MutexLock queue_lock(&queue_mu_);
    util::MutexLock state_lock(&state_mu_);
    if (chain_.tip.has_value()) head_ = Head{chain_.tip->height, chain_.tip->hash};
  }
  commit_thread_ = std::thread([this] { CommitLoop(); });
}

// The commit thread writes what is queued and stops; then the replay log and the family handles
// are destroyed (they borrow db_), and the database closes with its handle.
BlockStore::~BlockStore() {
  {
    util::MutexLock queue_lock(&queue_mu_);
    stopping_ = true;
  }
  commit_thread_.join();
}

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

absl::StatusOr<BlockRecord> BlockStore::CommitBlock(BlockCommit commit) {
  const uint32_t height = commit.height;
  TANDEM_RETURN_IF_ERROR(QueueCommit(std::move(commit)));
  return WaitDurable(height);
}

absl::Status BlockStore::QueueCommit(BlockCommit commit) {
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
  std::string hash = commit.hash.empty() ? Sha256(commit.block_bytes) : std::move(commit.hash);

  util::MutexLock producer_lock(&producer_mu_);
  std::optional<Head> head;
  std::optional<uint32_t> start;
  std::optional<Head> queued_here;  // the queued block at `height`, if any
  {
    util::MutexLock queue_lock(&queue_mu_);
    head = head_;
    if (!queue_.empty()) start = queue_.front()->height;
    for (const auto& queued : queue_) {
      if (queued->height == height) queued_here = Head{height, queued->hash};
    }
  }
  {
    util::MutexLock state_lock(&state_mu_);
    if (chain_.start.has_value()) start = chain_.start;
  }

  if (head.has_value()) {
    if (height < *start) {
      return absl::FailedPreconditionError(absl::StrCat(
          "height ", height, " is below the first height this store indexes (", *start,
          "); roll back to ", static_cast<int64_t>(*start) - 1, " to re-index from earlier"));
    }
    if (height <= head->height) {
      // Committed or queued already: the same block again is fine, another is refused.
      std::string stored_hash;
      if (queued_here.has_value()) {
        stored_hash = queued_here->hash;
      } else {
        TANDEM_ASSIGN_OR_RETURN(const BlockRecord stored, ReadBlock(height));
        stored_hash = stored.hash;
      }
      if (stored_hash == hash) return absl::OkStatus();
      return absl::FailedPreconditionError(absl::StrCat("height ", height,
                                                        " already committed with hash ",
                                                        Hex(stored_hash), "; roll back first"));
    }
    if (static_cast<uint64_t>(height) != static_cast<uint64_t>(head->height) + 1) {
      return absl::FailedPreconditionError(
          absl::StrCat("height ", height, " is not tip+1 (tip is ", head->height, ")"));
    }
    if (commit.prev_hash.has_value() && *commit.prev_hash != head->hash) {
      return absl::FailedPreconditionError(absl::StrCat(
          "parent hash mismatch at height ", height, ": prev_hash is ", Hex(*commit.prev_hash),
          " but the stored hash at height ", head->height, " is ", Hex(head->hash)));
    }
  }

  auto block = std::make_shared<QueuedBlock>();
  block->height = height;
  block->hash = hash;
  block->writes = std::move(commit.writes);
  block->values.reserve(block->writes.size());
  for (const auto& [key, value] : block->writes) block->values.emplace(key, &value);
  std::shared_ptr<const QueuedBlock> queued = std::move(block);
  util::MutexLock queue_lock(&queue_mu_);
  // Only the commit thread moves the head behind producer_mu_'s back, when a queued block fails:
  // the head checked above may be gone, and this block must not be written on its parent's
  // parent.
  const bool head_moved =
      head_.has_value() != head.has_value() ||
      (head.has_value() && (head_->height != head->height || head_->hash != head->hash));
  if (head_moved) {
    // head has a value: without one nothing was queued, and the commit thread had nothing to drop.
    const uint32_t parent = head.has_value() ? head->height : 0;
    const auto failed = failures_.find(parent);
    if (failed == failures_.end()) {
      return absl::UnavailableError(absl::StrCat(
          "block ", parent, ", queued before this one, could not be committed; retry"));
    }
    return absl::Status(failed->second.code(),
                        absl::StrCat("block ", parent,
                                     ", queued before this one, could not be "
                                     "committed: ",
                                     failed->second.message()));
  }
  {
    util::MutexLock overlay_lock(&overlay_mu_);
    overlay_.push_back(queued);
    overlay_size_.store(overlay_.size(), std::memory_order_release);
  }
  queue_.push_back(std::move(queued));
  failures_.erase(height);
  head_ = Head{height, std::move(hash)};
  return absl::OkStatus();
}

absl::StatusOr<BlockRecord> BlockStore::WaitDurable(uint32_t height) {
  {
    util::MutexLock queue_lock(&queue_mu_);
    auto settled = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue_mu_) {
      return queue_.empty() || height < queue_.front()->height || height > queue_.back()->height;
    };
    queue_mu_.Await(settled);
    if (auto failed = failures_.find(height); failed != failures_.end()) return failed->second;
  }
  absl::StatusOr<BlockRecord> record = ReadBlock(height);
  if (absl::IsNotFound(record.status())) {
    return absl::FailedPreconditionError(
        absl::StrCat("height ", height, " is neither committed nor queued"));
  }
  return record;
}

std::optional<BlockStore::Head> BlockStore::GetHead() const {
  util::MutexLock queue_lock(&queue_mu_);
  return head_;
}

void BlockStore::CommitLoop() {
  // How many dropped heights WaitDurable can still explain; older explanations are forgotten.
  constexpr size_t kMaxFailures = 1024;
  for (;;) {
    std::shared_ptr<const QueuedBlock> block;
    {
      util::MutexLock queue_lock(&queue_mu_);
      auto work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue_mu_) {
        return stopping_ || !queue_.empty();
      };
      queue_mu_.Await(work);
      if (queue_.empty()) return;  // stopping, with everything written
      block = queue_.front();
    }
    ChainState chain;
    {
      util::MutexLock state_lock(&state_mu_);
      chain = chain_;
    }
    absl::StatusOr<BlockRecord> record = WriteBlock(*block, chain);
    if (record.ok()) {
      util::MutexLock state_lock(&state_mu_);
      if (!chain_.start.has_value()) chain_.start = block->height;
      chain_.tip = *record;
    }
    // Readers find the block in the database now (or it failed): it leaves the overlay, and
    // with a failure, so does everything queued on top of it.
    util::MutexLock queue_lock(&queue_mu_);
    const size_t leaving = record.ok() ? 1 : queue_.size();
    {
      util::MutexLock overlay_lock(&overlay_mu_);
      overlay_.erase(overlay_.begin(), overlay_.begin() + static_cast<ptrdiff_t>(leaving));
      overlay_size_.store(overlay_.size(), std::memory_order_release);
    }
    if (record.ok()) {
      queue_.pop_front();
      continue;
    }
    for (const auto& dropped : queue_) {
      failures_[dropped->height] =
          dropped == block
              ? record.status()
              : absl::Status(record.status().code(), absl::StrCat("block ", block->height,
                                                                  ", queued before this one, "
                                                                  "could not be committed: ",
                                                                  record.status().message()));
    }
    while (failures_.size() > kMaxFailures) failures_.erase(failures_.begin());
    queue_.clear();
    util::MutexLock state_lock(&state_mu_);
    head_.reset();
    if (chain_.tip.has_value()) head_ = Head{chain_.tip->height, chain_.tip->hash};
  }
}

absl::StatusOr<BlockRecord> BlockStore::WriteBlock(const QueuedBlock& block,
                                                   const ChainState& chain) {
  const uint32_t height = block.height;
  const WriteSet& writes = block.writes;
  // QueueCommit chained the block on the head; the head is the tip now, or something is wrong.
  if (chain.tip.has_value() && static_cast<uint64_t>(height) != uint64_t{chain.tip->height} + 1) {
    return absl::InternalError(
        absl::StrCat("queued height ", height, " is not tip+1 (tip is ", chain.tip->height, ")"));
  }
  // One pass over the writes builds the batch (a history version and the latest value of each
  // key), the touched-key list and the state root's digest.
  size_t key_bytes = 0;
  size_t value_bytes = 0;
  for (const auto& [key, value] : writes) {
    key_bytes += key.size();
    value_bytes += value.size();
  }
  // Each write is two batch records (history, latest) of about key + value + 20 bytes.
  rocksdb::WriteBatch batch(
      /*reserved_bytes=*/2 * (key_bytes + value_bytes) + 48 * writes.size() + 256);
  std::string touched;
  touched.reserve(key_bytes + 4 * writes.size());
  std::string history_key;
  std::string latest_value;
  WritesDigester digester;
  rocksdb::Status s;
  for (const auto& [key, value] : writes) {
    digester.Add(key, value);
    history_key.clear();
    keys::AppendHistoryPrefix(&history_key, key);
    keys::AppendU32(&history_key, ~height);
    latest_value.clear();
    keys::AppendLatestValue(&latest_value, height, value);
    s = batch.Put(families_.history.get(), history_key, value);
    if (s.ok()) s = batch.Put(families_.latest.get(), key, latest_value);
    if (!s.ok()) return FromRocksDbStatus(s, "building the commit batch");
    keys::AppendTouchedKey(&touched, key);
  }
  const std::string prev_root = chain.tip.has_value() ? chain.tip->state_root : ZeroRoot();
  BlockRecord record{height, block.hash, ChainStateRoot(prev_root, height, digester.Finish()),
                     static_cast<uint32_t>(writes.size())};
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
  return record;
}

std::optional<std::optional<std::string>> BlockStore::GetQueued(std::string_view key,
                                                                uint32_t height) const {
  if (overlay_size_.load(std::memory_order_acquire) == 0) return std::nullopt;
  const size_t hash = QueuedBlock::Index::hasher()(key);
  util::MutexLock overlay_lock(&overlay_mu_);
  for (auto it = overlay_.rbegin(); it != overlay_.rend(); ++it) {
    if ((*it)->height > height) continue;
    auto write = (*it)->values.find(key, hash);
    if (write == (*it)->values.end()) continue;
    const std::string& value = *write->second;
    if (value.empty()) return std::optional<std::string>();
    return std::optional<std::string>(value);
  }
  return std::nullopt;
}

absl::Status BlockStore::Rollback(std::optional<uint32_t> height) {
  util::MutexLock producer_lock(&producer_mu_);
  {
    // Nothing new is queued while producer_mu_ is held: wait for the queue to drain.
    util::MutexLock queue_lock(&queue_mu_);
    auto drained = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue_mu_) { return queue_.empty(); };
    queue_mu_.Await(drained);
  }
  ChainState chain;
  {
    util::MutexLock state_lock(&state_mu_);
    chain = chain_;
  }
  const std::string target =
      height.has_value() ? absl::StrCat("height ", *height) : std::string("an empty chain");
  if (!chain.tip.has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot roll back to ", target, ": the store has no blocks"));
  }
  const uint32_t tip = chain.tip->height;
  const uint32_t start = *chain.start;
  // The new tip, -1 when the chain empties at start 0 (heights are unsigned, this is not).
  const int64_t new_tip = height.has_value() ? int64_t{*height} : int64_t{start} - 1;
  if (new_tip > tip) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot roll back to ", target, ": it is above the tip (", tip, ")"));
  }
  if (new_tip == tip) return absl::OkStatus();
  if (new_tip + 1 < start) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot roll back to ", target, ": it is below start-1 (start is ", start, ")"));
  }

  // Every version above `height` goes, and each key they touched gets back, as its latest
  // value, its newest version at or below `height` (or no latest value when there is none).
  rocksdb::WriteBatch batch;
  rocksdb::Status s;
  std::set<std::string> touched_keys;
  for (int64_t wide = tip; wide > new_tip; --wide) {
    const uint32_t h = static_cast<uint32_t>(wide);
    std::string touched;
    s = db_->Get(rocksdb::ReadOptions(), keys::TouchedKey(h), &touched);
    if (s.IsNotFound()) {
      return absl::DataLossError(absl::StrCat("height ", h, " has no touched-key list"));
    }
    if (!s.ok()) return FromRocksDbStatus(s, absl::StrCat("reading the keys of height ", h));
    absl::StatusOr<std::vector<std::string>> keys_of_height = keys::DecodeTouchedKeys(touched);
    if (!keys_of_height.ok()) return keys_of_height.status();
    // TODO(perf): SingleDelete would leave cheaper tombstones (each history key is put once per
    // commit), but a plain Delete stays correct whatever happens to be in the database.
    for (std::string& key : *keys_of_height) {
      s = batch.Delete(families_.history.get(), keys::HistoryKey(key, h));
      if (!s.ok()) return FromRocksDbStatus(s, "building the rollback batch");
      touched_keys.insert(std::move(key));
    }
    for (const rocksdb::Status& del :
         {batch.Delete(keys::TouchedKey(h)), batch.Delete(keys::BlockKey(h))}) {
      if (!del.ok()) return FromRocksDbStatus(del, "building the rollback batch");
    }
  }
  // The seeks below read the versions at or below `height` only, which the batch leaves alone.
  std::unique_ptr<rocksdb::Iterator> history = NewHistoryIterator();
  std::string latest_value;
  for (const std::string& key : touched_keys) {
    uint32_t found_height = 0;
    absl::StatusOr<std::optional<std::string>> restored =
        new_tip < 0 ? std::optional<std::string>()  // Nothing is at or below -1.
                    : SeekHistory(*history, key, static_cast<uint32_t>(new_tip), &found_height);
    if (!restored.ok()) return restored.status();
    if (restored->has_value()) {
      latest_value.clear();
      keys::AppendLatestValue(&latest_value, found_height, **restored);
      s = batch.Put(families_.latest.get(), key, latest_value);
    } else {
      s = batch.Delete(families_.latest.get(), key);
    }
    if (!s.ok()) return FromRocksDbStatus(s, "building the rollback batch");
  }
  history.reset();

  ChainState next;
  if (new_tip + 1 == start) {
    // Every block goes: the store is as fresh as a new one (apart from its replay log).
    for (const rocksdb::Status& del :
         {batch.Delete(keys::kTipKey), batch.Delete(keys::kStartKey)}) {
      if (!del.ok()) return FromRocksDbStatus(del, "building the rollback batch");
    }
  } else {
    absl::StatusOr<BlockRecord> record = ReadBlock(static_cast<uint32_t>(new_tip));
    if (!record.ok()) return record.status();
    next.start = start;
    next.tip = *std::move(record);
    s = batch.Put(keys::kTipKey, keys::EncodeU32(static_cast<uint32_t>(new_tip)));
    if (!s.ok()) return FromRocksDbStatus(s, "building the rollback batch");
  }

  rocksdb::WriteOptions write_options;
  write_options.sync = options_.sync;
  s = db_->Write(write_options, &batch);
  if (!s.ok()) return FromRocksDbStatus(s, absl::StrCat("rolling back to ", target));

  util::MutexLock queue_lock(&queue_mu_);
  head_.reset();
  if (next.tip.has_value()) head_ = Head{next.tip->height, next.tip->hash};
  util::MutexLock state_lock(&state_mu_);
  chain_ = std::move(next);
  return absl::OkStatus();
}

std::unique_ptr<rocksdb::Iterator> BlockStore::NewHistoryIterator() const {
  rocksdb::ReadOptions read_options;
  // Prefix mode: a seek stays within one user key's versions, which the hash memtable and the
  // prefix bloom filters find without ordering the rest.
  read_options.prefix_same_as_start = true;
  return std::unique_ptr<rocksdb::Iterator>(
      db_->NewIterator(read_options, families_.history.get()));
}

absl::StatusOr<std::optional<std::string>> BlockStore::SeekHistory(rocksdb::Iterator& it,
                                                                   std::string_view key,
                                                                   uint32_t height,
                                                                   uint32_t* height_found) const {
  std::string target;
  target.reserve(key.size() + 8);
  keys::AppendHistoryPrefix(&target, key);
  keys::AppendU32(&target, ~height);
  it.Seek(target);
  if (!it.Valid()) {
    TANDEM_RETURN_IF_ERROR(
        FromRocksDbStatus(it.status(), absl::StrCat("reading history at height ", height)));
    return std::nullopt;
  }
  // prefix_same_as_start keeps the iterator on this key's versions, each prefix ‖ 4 bytes.
  const std::string_view found = View(it.key());
  if (found.size() != target.size() ||
      found.substr(0, target.size() - 4) != std::string_view(target).substr(0, target.size() - 4)) {
    return std::nullopt;
  }
  *height_found = ~keys::ReadU32(found.substr(found.size() - 4));
  return std::string(View(it.value()));
}

absl::StatusOr<std::optional<std::string>> BlockStore::Get(std::string_view key,
                                                           uint32_t height) const {
  // Blocks still queued for the commit thread answer first (the next block runs on them).
  if (std::optional<std::optional<std::string>> queued = GetQueued(key, height);
      queued.has_value()) {
    return *std::move(queued);
  }
  rocksdb::PinnableSlice latest;
  const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), families_.latest.get(),
                                     rocksdb::Slice(key.data(), key.size()), &latest);
  if (s.IsNotFound()) return std::nullopt;  // never written (or every write rolled back)
  TANDEM_RETURN_IF_ERROR(FromRocksDbStatus(s, absl::StrCat("reading at height ", height)));
  TANDEM_ASSIGN_OR_RETURN(const keys::LatestValue value, keys::DecodeLatestValue(View(latest)));
  if (value.height <= height) {
    if (value.value.empty()) return std::nullopt;
    return std::string(value.value);
  }
  // The key changed after `height`: its value there is in the history.
  std::unique_ptr<rocksdb::Iterator> history = NewHistoryIterator();
  uint32_t found_height = 0;
  TANDEM_ASSIGN_OR_RETURN(std::optional<std::string> found,
                          SeekHistory(*history, key, height, &found_height));
  if (found.has_value() && found->empty()) return std::nullopt;
  return found;
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

absl::Status BlockStore::CreateCheckpoint(const fs::path& directory) const {
  rocksdb::Checkpoint* raw = nullptr;
  if (rocksdb::Status s = rocksdb::Checkpoint::Create(db_.get(), &raw); !s.ok()) {
    return FromRocksDbStatus(s, "starting a checkpoint");
  }
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  // 0: flush the memtables first, so the copy needs no WAL replay of its own.
  return FromRocksDbStatus(checkpoint->CreateCheckpoint(directory.string(),
                                                        /*log_size_for_flush=*/0),
                           absl::StrCat("checkpoint into ", directory.string()));
}

absl::Status BlockStore::BindIdentity(const NodeIdentity& identity) {
  rocksdb::WriteOptions write_options;
  write_options.sync = true;
  return FromRocksDbStatus(
      db_->Put(write_options, keys::kNodeIdentityKey, EncodeNodeIdentity(identity)),
      "recording the node identity");
}

absl::StatusOr<uint64_t> BlockStore::ApproximateLiveDataBytes() const {
  uint64_t total = 0;
  for (rocksdb::ColumnFamilyHandle* family :
       {db_->DefaultColumnFamily(), families_.latest.get(), families_.history.get()}) {
    uint64_t bytes = 0;
    if (!db_->GetIntProperty(family, rocksdb::DB::Properties::kEstimateLiveDataSize, &bytes)) {
      return absl::UnavailableError("RocksDB has no live-data estimate");
    }
    total += bytes;
  }
  return total;
}

absl::StatusOr<WritePathStats> BlockStore::ReadWritePathStats() const {
  WritePathStats stats;
  uint64_t stopped = 0;
  if (!db_->GetIntProperty(rocksdb::DB::Properties::kIsWriteStopped, &stopped) ||
      !db_->GetIntProperty(rocksdb::DB::Properties::kActualDelayedWriteRate,
                           &stats.delayed_write_rate)) {
    return absl::UnavailableError("RocksDB reports no write-controller state");
  }
  stats.writes_stopped = stopped != 0;
  if (const std::shared_ptr<rocksdb::Statistics> statistics = db_->GetDBOptions().statistics;
      statistics != nullptr) {
    stats.stall_micros = statistics->getTickerCount(rocksdb::STALL_MICROS);
    rocksdb::HistogramData wal_sync;
    statistics->histogramData(rocksdb::WAL_FILE_SYNC_MICROS, &wal_sync);
    stats.wal_syncs = wal_sync.count;
    stats.wal_sync_micros = wal_sync.sum;
    stats.wal_sync_p50_micros = wal_sync.median;
    stats.wal_sync_p99_micros = wal_sync.percentile99;
  }
  return stats;
}

absl::StatusOr<WriteSet> BlockStore::DumpAtHeightForTesting(uint32_t height) const {
  WriteSet live;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(TotalOrder(), families_.history.get()));
  std::string last_key;
  bool have_last = false;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    TANDEM_ASSIGN_OR_RETURN(const keys::HistoryKeyParts parts,
                            keys::DecodeHistoryKey(View(it->key())));
    if (parts.height > height) continue;
    // Versions run newest first: the first one at or below `height` decides.
    if (have_last && parts.user_key == last_key) continue;
    last_key = std::string(parts.user_key);
    have_last = true;
    if (!it->value().empty()) live.emplace(last_key, std::string(View(it->value())));
  }
  TANDEM_RETURN_IF_ERROR(FromRocksDbStatus(it->status(), "dumping"));
  return live;
}

absl::StatusOr<uint64_t> BlockStore::CountChainEntriesForTesting() const {
  uint64_t count = 0;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const char tag = it->key()[0];
    if (tag == keys::kBlockTag || tag == keys::kTouchedTag) ++count;
  }
  TANDEM_RETURN_IF_ERROR(FromRocksDbStatus(it->status(), "counting"));
  for (rocksdb::ColumnFamilyHandle* family : {families_.latest.get(), families_.history.get()}) {
    it.reset(db_->NewIterator(TotalOrder(), family));
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++count;
    TANDEM_RETURN_IF_ERROR(FromRocksDbStatus(it->status(), "counting"));
  }
  return count;
}

absl::Status BlockStore::CheckLatestForTesting() const {
  // The newest version of every key, from the history...
  std::map<std::string, std::string> expected;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(TotalOrder(), families_.history.get()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    TANDEM_ASSIGN_OR_RETURN(const keys::HistoryKeyParts parts,
                            keys::DecodeHistoryKey(View(it->key())));
    std::string latest;
    keys::AppendLatestValue(&latest, parts.height, View(it->value()));
    expected.try_emplace(std::string(parts.user_key), std::move(latest));
  }
  TANDEM_RETURN_IF_ERROR(FromRocksDbStatus(it->status(), "scanning the history"));
  // ...must be exactly what `latest` holds.
  it.reset(db_->NewIterator(TotalOrder(), families_.latest.get()));
  size_t seen = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next(), ++seen) {
    const std::string key(View(it->key()));
    auto want = expected.find(key);
    if (want == expected.end()) {
      return absl::DataLossError(absl::StrCat("latest holds ", absl::CHexEscape(key),
                                              ", which has no version in the history"));
    }
    if (want->second != View(it->value())) {
      return absl::DataLossError(absl::StrCat("latest value of ", absl::CHexEscape(key),
                                              " differs from its newest version"));
    }
  }
  TANDEM_RETURN_IF_ERROR(FromRocksDbStatus(it->status(), "scanning latest"));
  if (seen != expected.size()) {
    return absl::DataLossError(
        absl::StrCat("latest holds ", seen, " keys, the history ", expected.size()));
  }
  return absl::OkStatus();
}

}  // namespace tandem::store
