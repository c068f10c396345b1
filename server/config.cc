#include "server/config.h"

#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tandem::server {
namespace {

struct Unit {
  absl::string_view name;  // lower case
  uint64_t factor;
};

constexpr uint64_t kKiB = 1024;
constexpr Unit kUnits[] = {
    {"", 1},
    {"b", 1},
    {"k", kKiB},
    {"kib", kKiB},
    {"kb", 1000},
    {"m", kKiB* kKiB},
    {"mib", kKiB* kKiB},
    {"mb", 1000 * 1000},
    {"g", kKiB* kKiB* kKiB},
    {"gib", kKiB* kKiB* kKiB},
    {"gb", 1000ull * 1000 * 1000},
    {"t", kKiB* kKiB* kKiB* kKiB},
    {"tib", kKiB* kKiB* kKiB* kKiB},
    {"tb", 1000ull * 1000 * 1000 * 1000},
};

absl::Status Invalid(absl::string_view flag, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, " ", what));
}

absl::Status CheckPositive(absl::string_view flag, absl::Duration value) {
  if (value <= absl::ZeroDuration() || value == absl::InfiniteDuration()) {
    return Invalid(flag, absl::StrCat("must be a positive, finite duration (got ",
                                      absl::FormatDuration(value), ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text) {
  absl::string_view trimmed = absl::StripAsciiWhitespace(text);
  size_t digits = 0;
  while (digits < trimmed.size() && absl::ascii_isdigit(trimmed[digits])) ++digits;
  if (digits == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a byte size (examples: 4294967296, 64MiB, 4GiB)"));
  }
  uint64_t number = 0;
  if (!absl::SimpleAtoi(trimmed.substr(0, digits), &number)) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is too large"));
  }
  std::string unit = absl::AsciiStrToLower(absl::StripAsciiWhitespace(trimmed.substr(digits)));
  for (const Unit& candidate : kUnits) {
    if (unit != candidate.name) continue;
    if (number > std::numeric_limits<uint64_t>::max() / candidate.factor) {
      return absl::InvalidArgumentError(absl::StrCat("'", text, "' is too large"));
    }
    return number * candidate.factor;
  }
  return absl::InvalidArgumentError(absl::StrCat("'", text, "' has an unknown unit '", unit,
                                                 "' (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"));
}

std::string FormatByteSize(uint64_t bytes) {
  static constexpr absl::string_view kNames[] = {"TiB", "GiB", "MiB", "KiB"};
  static constexpr uint64_t kFactors[] = {kKiB * kKiB * kKiB * kKiB, kKiB * kKiB * kKiB,
                                          kKiB * kKiB, kKiB};
  if (bytes == 0) return "0";
  for (int i = 0; i < 4; ++i) {
    if (bytes % kFactors[i] == 0) return absl::StrCat(bytes / kFactors[i], kNames[i]);
  }
  return absl::StrCat(bytes);
}

absl::Status ValidateListenAddress(absl::string_view flag, absl::string_view address) {
  size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return Invalid(flag, absl::StrCat("must be host:port (got '", address, "')"));
  }
  absl::string_view host = address.substr(0, colon);
  if (host.find(':') != absl::string_view::npos && (host.front() != '[' || host.back() != ']')) {
    return Invalid(flag, absl::StrCat("must put an IPv6 host in brackets (got '", address, "')"));
  }
  uint32_t port = 0;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &port) || port > 65535) {
    return Invalid(flag, absl::StrCat("has no valid port 0..65535 (got '", address, "')"));
  }
  return absl::OkStatus();
}

absl::Status ValidateConfig(const ServerConfig& config) {
  if (config.module_path.empty()) return Invalid("module", "must name a .wasm file");
  if (config.db_path.empty()) return Invalid("db", "must name a database folder");
  if (config.snapshot_every > 0 && config.snapshot_dir.empty()) {
    return Invalid("snapshot_every", "needs --snapshot_dir, the folder the snapshots go to");
  }
  if (config.snapshot_deadline <= absl::ZeroDuration()) {
    return Invalid("snapshot_deadline", "must be positive");
  }
  if (absl::Status s = ValidateListenAddress("listen", config.listen); !s.ok()) return s;
  if (!config.admin_listen.empty()) {
    if (absl::Status s = ValidateListenAddress("admin_listen", config.admin_listen); !s.ok()) {
      return s;
    }
    if (config.admin_listen == config.listen && !absl::EndsWith(config.listen, ":0")) {
      return Invalid("admin_listen",
                     "must differ from --listen (use --admin_on_public to serve Admin there)");
    }
  }
  if (!config.metrics_listen.empty()) {
    if (absl::Status s = ValidateListenAddress("metrics_listen", config.metrics_listen); !s.ok()) {
      return s;
    }
  }
  if (!(config.warm_at > 0 && config.warm_at <= 1)) {
    return Invalid("warm_at", absl::StrCat("must be in (0, 1] (got ", config.warm_at, ")"));
  }
  if (!(config.swap_at > 0 && config.swap_at <= 1)) {
    return Invalid("swap_at", absl::StrCat("must be in (0, 1] (got ", config.swap_at, ")"));
  }
  if (config.warm_at > config.swap_at) {
    return Invalid("warm_at", absl::StrCat("must not exceed --swap_at (got ", config.warm_at, " > ",
                                           config.swap_at, ")"));
  }
  if (config.memory_limit_bytes < 64 * 1024) {
    return Invalid("memory_limit", absl::StrCat("must be at least one 64 KiB page (got ",
                                                config.memory_limit_bytes, " bytes)"));
  }
  if (config.memory_limit_bytes > (4ull << 30)) {
    return Invalid("memory_limit", absl::StrCat("must be at most 4GiB, wasm32's limit (got ",
                                                FormatByteSize(config.memory_limit_bytes), ")"));
  }
  for (const auto& [flag, value] : {std::pair{"block_deadline", config.block_deadline},
                                    std::pair{"view_deadline", config.view_deadline},
                                    std::pair{"init_deadline", config.init_deadline},
                                    std::pair{"warm_deadline", config.warm_deadline},
                                    std::pair{"standby_wait", config.standby_wait}}) {
    if (absl::Status s = CheckPositive(flag, value); !s.ok()) return s;
  }
  if (config.historical_instances < 0 || config.historical_instances > 16) {
    return Invalid("historical_instances", absl::StrCat("must be between 0 and 16 (got ",
                                                        config.historical_instances, ")"));
  }
  if (config.stream_blocks_in_flight < 1 || config.stream_blocks_in_flight > 256) {
    return Invalid("stream_blocks_in_flight", absl::StrCat("must be between 1 and 256 (got ",
                                                           config.stream_blocks_in_flight, ")"));
  }
  if (config.unsettled_instances < 1 || config.unsettled_instances > 64) {
    return Invalid("unsettled_instances",
                   absl::StrCat("must be between 1 and 64 (got ", config.unsettled_instances, ")"));
  }
  if (config.standby_pool < 1 || config.standby_pool > 16) {
    return Invalid("standby_pool",
                   absl::StrCat("must be between 1 and 16 (got ", config.standby_pool, ")"));
  }
  if (!(config.view_failure_budget >= 1)) {
    return Invalid("view_failure_budget",
                   absl::StrCat("must be at least 1 (got ", config.view_failure_budget, ")"));
  }
  if (!(config.view_failure_refill_per_second > 0)) {
    return Invalid(
        "view_failure_refill_per_second",
        absl::StrCat("must be more than 0 (got ", config.view_failure_refill_per_second, ")"));
  }
  if (config.shutdown_grace < absl::ZeroDuration() ||
      config.shutdown_grace == absl::InfiniteDuration()) {
    return Invalid("shutdown_grace", "must be a finite duration, zero or more");
  }
  if (config.max_message_bytes < 1024 ||
      config.max_message_bytes > uint64_t{std::numeric_limits<int>::max()}) {
    return Invalid("max_message_bytes", absl::StrCat("must be between 1KiB and 2GiB-1 (got ",
                                                     config.max_message_bytes, " bytes)"));
  }
  if (config.tls_cert_path.empty() != config.tls_key_path.empty()) {
    return Invalid(config.tls_cert_path.empty() ? "tls_cert" : "tls_key",
                   "is missing: give --tls_cert and --tls_key together, or neither");
  }
  if (config.replay_log_max_bytes == 0) {
    return Invalid("replay_log_max_bytes", "must be more than 0");
  }
  if (!config.ingest_token.empty() &&
      (config.ingest_token == config.token || config.ingest_token == config.admin_token)) {
    return Invalid("ingest_token",
                   "must differ from --token and --admin_token: writers are their own principal");
  }
  if (config.db_block_cache_bytes < (1ull << 20)) {
    return Invalid("db_block_cache", absl::StrCat("must be at least 1MiB (got ",
                                                  config.db_block_cache_bytes, " bytes)"));
  }
  // Each of the store's two data families may fill a quarter of the write buffers, and each of
  // their memtables starts with a 2 MiB array of hash buckets: below 16MiB a new memtable is full
  // as it is created, which RocksDB refuses (it aborts the process: memtable.cc
  // `!ShouldScheduleFlush()`, seen at 8MiB).
  if (config.db_write_buffer_bytes < (16ull << 20)) {
    return Invalid("db_write_buffers", absl::StrCat("must be at least 16MiB (got ",
                                                    config.db_write_buffer_bytes, " bytes)"));
  }
  return absl::OkStatus();
}

proxy::PairOptions PairOptionsFromConfig(const ServerConfig& config) {
  proxy::PairOptions options;
  options.policy = config.swap_policy;
  options.warm_at = config.warm_at;
  options.swap_at = config.swap_at;
  options.block_deadline = config.block_deadline;
  options.view_deadline = config.view_deadline;
  options.init_deadline = config.init_deadline;
  options.warm_deadline = config.warm_deadline;
  options.standby_wait = config.standby_wait;
  options.historical_instances = config.historical_instances;
  options.standby_pool = config.standby_pool;
  options.max_unsettled_instances = config.unsettled_instances;
  options.instance.create_deadline = config.warm_deadline;
  return options;
}

StreamLimits StreamLimitsFromConfig(const ServerConfig& config) {
  StreamLimits limits;
  limits.max_blocks_in_flight = static_cast<size_t>(config.stream_blocks_in_flight);
  return limits;
}

store::BlockStoreOptions StoreOptionsFromConfig(const ServerConfig& config) {
  store::BlockStoreOptions options;
  options.sync = config.fsync;
  options.replay_log_limits.max_bytes = config.replay_log_max_bytes;
  options.block_cache_bytes = config.db_block_cache_bytes;
  options.write_buffer_bytes = config.db_write_buffer_bytes;
  return options;
}

}  // namespace tandem::server
