#include "server/flags.h"

#include <filesystem>
#include <string>
#include <system_error>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "util/command_line.h"

// Where the bundled example indexer lives: in the build tree, and relative to an installed tandemd
// (<prefix>/bin/tandemd and <prefix>/share/tandem/guests/bitcoin_indexer.wasm).
#ifndef TANDEM_BUILD_TREE_MODULE
#define TANDEM_BUILD_TREE_MODULE "bitcoin_indexer.wasm"
#endif
#ifndef TANDEM_INSTALLED_GUEST_DIR
#define TANDEM_INSTALLED_GUEST_DIR "share/tandem/guests"
#endif

namespace tandem::server {

// A byte size flag: accepts "4294967296", "64MiB", "4GiB" (see ParseByteSize).
struct ByteSizeFlag {
  uint64_t bytes = 0;
};
bool AbslParseFlag(absl::string_view text, ByteSizeFlag* flag, std::string* error) {
  absl::StatusOr<uint64_t> bytes = ParseByteSize(text);
  if (!bytes.ok()) {
    *error = std::string(bytes.status().message());
    return false;
  }
  flag->bytes = *bytes;
  return true;
}
std::string AbslUnparseFlag(ByteSizeFlag flag) { return FormatByteSize(flag.bytes); }

// A swap policy flag: block, threshold, none or sync.
struct SwapPolicyFlag {
  proxy::SwapPolicy policy = proxy::SwapPolicy::kBlock;
};
bool AbslParseFlag(absl::string_view text, SwapPolicyFlag* flag, std::string* error) {
  if (proxy::ParseSwapPolicy(text, &flag->policy)) return true;
  *error = absl::StrCat("'", text, "' is not a swap policy (block, threshold, none, sync)");
  return false;
}
std::string AbslUnparseFlag(SwapPolicyFlag flag) {
  return std::string(proxy::SwapPolicyName(flag.policy));
}

}  // namespace tandem::server

using tandem::server::ByteSizeFlag;
using tandem::server::SwapPolicyFlag;

ABSL_FLAG(std::string, module, "",
          "The guest WebAssembly module to serve. It must export `memory` and `_start` and import "
          "only the host ABI from `env`; an invalid module stops tandemd with exit status 1 and a "
          "message naming the offending import or export. Default: the bundled example indexer "
          "(<prefix>/share/tandem/guests/bitcoin_indexer.wasm beside an installed tandemd, else "
          "the build tree's).");
ABSL_FLAG(std::string, db, "./data/tandem-db",
          "Folder of the RocksDB database (blocks, versioned state, replay log). Created when "
          "missing; only one tandemd may open it at a time. A snapshot folder (Admin.Snapshot, "
          "--snapshot_every) is checked file by file against its manifest first and refused, "
          "with exit status 4, when anything differs; then the node resumes from its tip.");
ABSL_FLAG(std::string, snapshot_dir, "",
          "Folder for the periodic snapshots of --snapshot_every, each named snapshot-<tip "
          "height in ten digits>. Created when missing.");
ABSL_FLAG(uint32_t, snapshot_every, 0,
          "Take a snapshot into --snapshot_dir after every this many committed blocks, on a "
          "thread of its own (ingest never waits for it; a failure is logged, counted and "
          "reported, and ingest carries on). 0: none.");
ABSL_FLAG(uint32_t, snapshot_keep, 3,
          "How many periodic snapshots to keep in --snapshot_dir: the newest; older ones are "
          "removed after each new one. 0 keeps all.");
ABSL_FLAG(absl::Duration, snapshot_deadline, absl::Minutes(30),
          "Deadline of one snapshot (periodic or Admin.Snapshot): past it, it is abandoned and "
          "its folder removed.");
ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "host:port of the public gRPC listener (Indexer, health, reflection). Port 0 picks a "
          "free port. Use 0.0.0.0:PORT to accept remote clients (then set --token and TLS).");
ABSL_FLAG(std::string, admin_listen, "127.0.0.1:50052",
          "host:port of the admin gRPC listener (Admin, health, reflection). Empty: no admin "
          "listener.");
ABSL_FLAG(bool, admin_on_public, false,
          "Also serve the Admin service on --listen. Off by default: Admin answers UNIMPLEMENTED "
          "there. Combine with --admin_token.");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9464",
          "host:port of the Prometheus /metrics endpoint. Empty: no metrics endpoint.");
ABSL_FLAG(std::string, port_file, "",
          "When set, tandemd writes the addresses it listens on to this file once it serves (one "
          "`listen=HOST:PORT`, `admin_listen=...`, `metrics_listen=...` line each, the ports it "
          "got for port 0; written atomically) and removes it at shutdown. Also logged on stderr.");
ABSL_FLAG(SwapPolicyFlag, swap_policy, SwapPolicyFlag{},
          "When the instance pair swaps: `block` (every block on a freshly warmed instance; "
          "deterministic for every guest), `threshold` (swap when memory passes --swap_at), "
          "`none` (only on failure or Admin.Swap), `sync` (re-instantiate after every block on "
          "the critical path; a benchmark baseline).");
ABSL_FLAG(double, warm_at, 0.70,
          "Fraction of --memory_limit at which `threshold` starts warming the standby. "
          "0 < warm_at <= swap_at <= 1.");
ABSL_FLAG(double, swap_at, 0.90,
          "Fraction of --memory_limit at which `threshold` swaps at the next call boundary.");
ABSL_FLAG(ByteSizeFlag, memory_limit, ByteSizeFlag{4ull << 30},
          "Guest linear memory cap (rounded down to 64 KiB pages): memory.grow fails past it, on "
          "every node alike. Bytes, or with a unit: 64MiB, 1GiB, 4GiB (the maximum).");
ABSL_FLAG(ByteSizeFlag, host_memory_budget, ByteSizeFlag{0},
          "Guest linear memory that all instances together may commit. A memory.grow or an "
          "instantiation that would pass it fails with UNAVAILABLE (nothing committed) once cached "
          "instances are dropped, instead of the kernel killing the process. 0 (the default): "
          "what the process's memory cgroup allows (v1 memory.limit_in_bytes, v2 memory.max), "
          "else physical memory, less 128MiB headroom for V8 and gRPC and less --db_block_cache "
          "and --db_write_buffers. Bytes, or with a unit: 300MiB, 8GiB.");
ABSL_FLAG(absl::Duration, block_deadline, absl::Seconds(60),
          "Deadline of one block's guest call (e.g. 60s, 1m30s); past it the block fails with "
          "DEADLINE_EXCEEDED and nothing commits.");
ABSL_FLAG(absl::Duration, view_deadline, absl::Seconds(5), "Deadline of one view call.");
ABSL_FLAG(absl::Duration, init_deadline, absl::Seconds(60),
          "Deadline of one Admin.Initialize call.");
ABSL_FLAG(absl::Duration, warm_deadline, absl::Seconds(60),
          "Deadline of one warm-up (instantiate, _initialize, replay of the init calls).");
ABSL_FLAG(absl::Duration, standby_wait, absl::Seconds(10),
          "How long a call waits for a READY instance when the policy needs one, before it "
          "fails with UNAVAILABLE.");
ABSL_FLAG(int, historical_instances, 1,
          "Instances kept for views at heights below the tip, each bound to one height (0-16). "
          "Each holds its guest's whole memory; with 0 every such view warms a fresh instance.");
ABSL_FLAG(int, standby_pool, 2,
          "READY standbys kept warm under --swap_policy=block and none (and threshold past "
          "--warm_at), 1-16. Each holds a fresh guest instance; two absorb a burst of blocks "
          "and views at past heights.");
ABSL_FLAG(int, stream_blocks_in_flight, 32,
          "Blocks of one StreamBlocks call that may have run, their commits queued, before the "
          "oldest is answered (1-256). Each holds its writes in memory until it is durable.");
ABSL_FLAG(int, unsettled_instances, 2,
          "Under --swap_policy=block, instances kept by blocks that ran and are not durable yet "
          "(1-64), each to answer views at its block's height once it is. Each holds its guest's "
          "whole memory; past this, blocks in the middle of a backlog give theirs up.");
ABSL_FLAG(double, view_failure_budget, 10,
          "Guest instances the views of one connection may fail (trap, abort) at once; past it, "
          "its views get RESOURCE_EXHAUSTED until the budget refills. Honest clients never "
          "spend from it.");
ABSL_FLAG(double, view_failure_refill_per_second, 1,
          "How fast a connection regains --view_failure_budget, in failures per second.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(30),
          "On SIGTERM/SIGINT, how long in-flight calls may finish before they are cancelled.");
ABSL_FLAG(ByteSizeFlag, max_message_bytes, ByteSizeFlag{64ull << 20},
          "Largest gRPC message received or sent (a block, a view answer). Larger ones fail with "
          "RESOURCE_EXHAUSTED. Bytes or with a unit (64MiB).");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain for TLS on every listener. Give with --tls_key, or neither "
          "(plaintext).");
ABSL_FLAG(std::string, tls_key, "", "PEM private key matching --tls_cert.");
ABSL_FLAG(std::string, token, "",
          "When set, Indexer reads (View, GetTip, GetBlock) must carry metadata `authorization: "
          "Bearer <token>`; missing or wrong ones fail with UNAUTHENTICATED.");
ABSL_FLAG(std::string, ingest_token, "",
          "The writers' credential: when set, SubmitBlock, StreamBlocks and Rollback must carry "
          "`authorization: Bearer <ingest_token>` (the read token is refused with "
          "PERMISSION_DENIED). When empty, writes are accepted only if --listen is a loopback "
          "address, so a public read endpoint can never submit or roll back.");
ABSL_FLAG(std::string, admin_token, "",
          "When set, Admin calls must carry `authorization: Bearer <admin_token>`.");
ABSL_FLAG(ByteSizeFlag, replay_log_max_bytes, ByteSizeFlag{64ull << 20},
          "Cap of the replay log (init calls kept for every new instance); Initialize fails "
          "with RESOURCE_EXHAUSTED past it.");
ABSL_FLAG(ByteSizeFlag, db_block_cache, ByteSizeFlag{256ull << 20},
          "RocksDB's block cache: data, index and filter blocks of the whole database (bytes or "
          "64MiB, 1GiB). With --db_write_buffers it bounds the database's memory whatever the "
          "number of keys; the defaults leave most of a 4 GiB node to the guests.");
ABSL_FLAG(ByteSizeFlag, db_write_buffers, ByteSizeFlag{256ull << 20},
          "RocksDB's memtables, all column families together (bytes or 64MiB, 1GiB): past it "
          "they are flushed, and writes wait rather than grow. At least 16MiB.");
ABSL_FLAG(bool, fsync, true,
          "fsync the database's write-ahead log on every commit. Turn off only for benchmarks: a "
          "power loss may then lose the last blocks (never half of one).");

namespace tandem::server {

std::string BundledModulePath() {
  std::error_code error;
  const std::filesystem::path executable = std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) {
    const std::filesystem::path installed = executable.parent_path().parent_path() /
                                            TANDEM_INSTALLED_GUEST_DIR / "bitcoin_indexer.wasm";
    if (std::filesystem::exists(installed, error)) return installed.string();
  }
  return TANDEM_BUILD_TREE_MODULE;
}

std::vector<char*> ParseFlagsOrExit(int argc, char** argv) {
  util::CommandLineOptions command_line;
  command_line.usage =
      "serves a WebAssembly indexer over gRPC, with two instances swapped atomically.\n"
      "Usage: tandemd [--module=guest.wasm] [--db=./data/tandem-db] [flags]\n"
      "Exit status: 0 after a clean shutdown (SIGTERM/SIGINT), 1 when start-up fails, 2 for a "
      "bad flag, 3 when --db is bound to another module or memory cap, 4 when --db is a "
      "snapshot that does not match its manifest.";
  // --help lists tandemd's own flags (defined in this file), not abseil's internal ones.
  command_line.help_flag_files = {"server/flags.cc"};
  command_line.usage_error_status = kExitUsage;
  command_line.help_status = kExitOk;
  return util::ParseCommandLineOrExit(argc, argv, command_line);
}

absl::StatusOr<ServerConfig> ServerConfigFromFlags() {
  ServerConfig config;
  config.module_path = absl::GetFlag(FLAGS_module);
  if (config.module_path.empty()) config.module_path = BundledModulePath();
  config.db_path = absl::GetFlag(FLAGS_db);
  config.snapshot_dir = absl::GetFlag(FLAGS_snapshot_dir);
  config.snapshot_every = absl::GetFlag(FLAGS_snapshot_every);
  config.snapshot_keep = absl::GetFlag(FLAGS_snapshot_keep);
  config.snapshot_deadline = absl::GetFlag(FLAGS_snapshot_deadline);
  config.listen = absl::GetFlag(FLAGS_listen);
  config.admin_listen = absl::GetFlag(FLAGS_admin_listen);
  config.admin_on_public = absl::GetFlag(FLAGS_admin_on_public);
  config.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  config.port_file = absl::GetFlag(FLAGS_port_file);
  config.swap_policy = absl::GetFlag(FLAGS_swap_policy).policy;
  config.warm_at = absl::GetFlag(FLAGS_warm_at);
  config.swap_at = absl::GetFlag(FLAGS_swap_at);
  config.memory_limit_bytes = absl::GetFlag(FLAGS_memory_limit).bytes;
  config.host_memory_budget_bytes = absl::GetFlag(FLAGS_host_memory_budget).bytes;
  config.block_deadline = absl::GetFlag(FLAGS_block_deadline);
  config.view_deadline = absl::GetFlag(FLAGS_view_deadline);
  config.init_deadline = absl::GetFlag(FLAGS_init_deadline);
  config.warm_deadline = absl::GetFlag(FLAGS_warm_deadline);
  config.standby_wait = absl::GetFlag(FLAGS_standby_wait);
  config.historical_instances = absl::GetFlag(FLAGS_historical_instances);
  config.standby_pool = absl::GetFlag(FLAGS_standby_pool);
  config.stream_blocks_in_flight = absl::GetFlag(FLAGS_stream_blocks_in_flight);
  config.unsettled_instances = absl::GetFlag(FLAGS_unsettled_instances);
  config.view_failure_budget = absl::GetFlag(FLAGS_view_failure_budget);
  config.view_failure_refill_per_second = absl::GetFlag(FLAGS_view_failure_refill_per_second);
  config.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  config.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes).bytes;
  config.tls_cert_path = absl::GetFlag(FLAGS_tls_cert);
  config.tls_key_path = absl::GetFlag(FLAGS_tls_key);
  config.token = absl::GetFlag(FLAGS_token);
  config.ingest_token = absl::GetFlag(FLAGS_ingest_token);
  config.admin_token = absl::GetFlag(FLAGS_admin_token);
  config.replay_log_max_bytes = absl::GetFlag(FLAGS_replay_log_max_bytes).bytes;
  config.fsync = absl::GetFlag(FLAGS_fsync);
  config.db_block_cache_bytes = absl::GetFlag(FLAGS_db_block_cache).bytes;
  config.db_write_buffer_bytes = absl::GetFlag(FLAGS_db_write_buffers).bytes;
  if (absl::Status status = ValidateConfig(config); !status.ok()) return status;
  return config;
}

}  // namespace tandem::server
