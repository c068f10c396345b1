// What an operator sets for tandemd, as one value: parsed from flags (server/flags.h), checked by
// ValidateConfig, then handed to TandemServer. It must never read flags or the environment itself.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "proxy/events.h"
#include "proxy/instance_pair.h"
#include "server/stream_window.h"
#include "store/block_store.h"

namespace tandem::server {

struct ServerConfig {
  // The guest module (.wasm) to load.
  std::string module_path;
  // The RocksDB database folder; created when missing.
  std::string db_path = "./data/tandem-db";
  // Periodic snapshots (server/snapshotter.h): into `snapshot_dir`, after every `snapshot_every`
  // committed blocks (0: none), keeping the newest `snapshot_keep` (0: all). Each snapshot, also
  // Admin.Snapshot's, gives up after `snapshot_deadline`.
  std::string snapshot_dir;
  uint32_t snapshot_every = 0;
  uint32_t snapshot_keep = 3;
  absl::Duration snapshot_deadline = absl::Minutes(30);
  // host:port of the public listener (Indexer). Port 0 picks a free port.
  std::string listen = "127.0.0.1:50051";
  // host:port of the admin listener (Admin); empty for none.
  std::string admin_listen = "127.0.0.1:50052";
  // Also serve Admin on the public listener.
  bool admin_on_public = false;
  // host:port of the Prometheus endpoint; empty for none.
  std::string metrics_listen = "127.0.0.1:9464";
  // When set, the file where the server writes the addresses it listens on (server/port_file.h)
  // once it serves, and which it removes when it shuts down.
  std::string port_file;

  proxy::SwapPolicy swap_policy = proxy::SwapPolicy::kBlock;
  double warm_at = 0.70;
  double swap_at = 0.90;
  // The guest memory cap in bytes (rounded down to 64 KiB pages by the engine).
  uint64_t memory_limit_bytes = 4ull << 30;
  // Guest memory all instances together may commit (server/host_memory_budget.h); 0 derives it
  // from the memory cgroup's limit, else physical memory, less headroom and RocksDB's caches
  // (db_block_cache_bytes, db_write_buffer_bytes).
  uint64_t host_memory_budget_bytes = 0;

  absl::Duration block_deadline = absl::Seconds(60);
  absl::Duration view_deadline = absl::Seconds(5);
  absl::Duration init_deadline = absl::Seconds(60);
  absl::Duration warm_deadline = absl::Seconds(60);
  // How long a call waits for a READY instance before UNAVAILABLE.
  absl::Duration standby_wait = absl::Seconds(10);
  // Instances kept for views at heights below the tip, each bound to one height. Each holds its
  // guest's whole memory, so a large guest wants few.
  int historical_instances = 1;
  // READY standbys kept under `block` and `none` (and `threshold` past warm_at).
  int standby_pool = 2;
  // How far one StreamBlocks call runs ahead of its answers (server/stream_window.h).
  int stream_blocks_in_flight = 32;
  // Under `block`, the instances that ran blocks not yet durable and are kept to serve views once
  // they are (proxy/unsettled_instances.h).
  int unsettled_instances = 2;
  // Guest instances one connection's views may fail at once, and regain per second: past it, its
  // views get RESOURCE_EXHAUSTED (see PeerBudget).
  double view_failure_budget = 10;
  double view_failure_refill_per_second = 1;
  // How long shutdown lets in-flight calls finish before cancelling them.
  absl::Duration shutdown_grace = absl::Seconds(30);

  // Largest gRPC message received or sent, in bytes.
  uint64_t max_message_bytes = 64ull << 20;

  // PEM files; both or neither. With them every listener speaks TLS.
  std::string tls_cert_path;
  std::string tls_key_path;
  // Bearer tokens; empty means none required. `token` guards the Indexer's reads, `ingest_token`
  // its writes, `admin_token` Admin (see IndexerAccess in server/auth.h for the rules).
  std::string token;
  std::string ingest_token;
  std::string admin_token;

  // Replay log cap in bytes.
  uint64_t replay_log_max_bytes = 64ull << 20;
  // fsync every commit.
  bool fsync = true;
  // RocksDB's memory caps (store::BlockStoreOptions).
  uint64_t db_block_cache_bytes = 256ull << 20;
  uint64_t db_write_buffer_bytes = 256ull << 20;
};

// Checks every field that flag parsing cannot: ranges, combinations, listen address syntax.
// Returns OK, or INVALID_ARGUMENT whose message names the flag (`--warm_at must be ...`).
absl::Status ValidateConfig(const ServerConfig& config);

// Parses a byte size: a whole number with an optional unit (case-insensitive): B, KiB, MiB, GiB,
// TiB (powers of 1024), KB, MB, GB, TB (powers of 1000), or K, M, G, T (powers of 1024).
// "64MiB" -> 67108864. INVALID_ARGUMENT for anything else or an overflow.
absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text);

// The shortest exact spelling of `bytes` in binary units ("4GiB", "1536KiB", "100").
std::string FormatByteSize(uint64_t bytes);

// Checks a `host:port` listen address (port 0..65535; IPv6 hosts in brackets).
absl::Status ValidateListenAddress(absl::string_view flag, absl::string_view address);

// The instance pair's options for `config`.
proxy::PairOptions PairOptionsFromConfig(const ServerConfig& config);
// The block store's options for `config`.
store::BlockStoreOptions StoreOptionsFromConfig(const ServerConfig& config);

StreamLimits StreamLimitsFromConfig(const ServerConfig& config);

}  // namespace tandem::server
