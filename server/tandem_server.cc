#include "server/tandem_server.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/base/call_once.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "engine/platform.h"
#include "grpc/grpc.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "server/auth.h"
#include "server/build_info.h"
#include "server/health.h"
#include "server/listen_check.h"
#include "store/node_identity.h"
#include "store/snapshot.h"
#include "store/state_root.h"
#include "util/failure_cause.h"
#include "util/status_macros.h"

namespace tandem::server {
namespace {

absl::StatusOr<std::string> ReadFile(absl::string_view what, const std::string& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    return absl::NotFoundError(absl::StrCat(what, " '", path, "' is not a readable file"));
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (!in.good() && !in.eof()) {
    return absl::FailedPreconditionError(absl::StrCat("cannot read ", what, " '", path, "'"));
  }
  return buffer.str();
}

// "127.0.0.1:0" bound to 40123 -> "127.0.0.1:40123".
std::string WithPort(absl::string_view address, int port) {
  return absl::StrCat(address.substr(0, address.rfind(':')), ":", port);
}

// gRPC's process-wide switches, set once before the first server is built.
void EnableHealthAndReflection() {
  static absl::once_flag once;
  absl::call_once(once, [] {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  });
}

}  // namespace

absl::StatusOr<std::unique_ptr<TandemServer>> TandemServer::Start(const ServerConfig& config,
                                                                  Logger& logger) {
  auto server = std::unique_ptr<TandemServer>(new TandemServer(config, logger));
  if (!config.port_file.empty()) {
    // A file left by a process that was killed must not pass for this one's.
    TANDEM_RETURN_IF_ERROR(RemovePortFile(config.port_file));
  }
  // A port in use fails the start at once and says so, before the module and the store load.
  for (auto [flag, address] :
       {std::pair<absl::string_view, absl::string_view>{"listen", config.listen},
        {"admin_listen", config.admin_listen},
        {"metrics_listen", config.metrics_listen}}) {
    if (!address.empty()) TANDEM_RETURN_IF_ERROR(CheckCanListen(flag, address));
  }

  if (absl::Status status = engine::InitializeV8(); !status.ok()) {
    return absl::UnavailableError(absl::StrCat("cannot start V8: ", status.message()));
  }
  absl::StatusOr<std::string> wasm = ReadFile("module", config.module_path);
  if (!wasm.ok()) return wasm.status();
  absl::StatusOr<std::unique_ptr<engine::Module>> module =
      engine::Module::Load(*wasm, engine::ModuleOptions{config.memory_limit_bytes});
  if (!module.ok()) {
    return absl::Status(module.status().code(), absl::StrCat("module '", config.module_path,
                                                             "': ", module.status().message()));
  }
  server->module_ = *std::move(module);
  logger.Info(absl::StrCat("loaded module ", config.module_path, " (", wasm->size(),
                           " bytes), memory cap ", server->module_->memory_limit_bytes(),
                           " bytes"));
  server->host_memory_budget_ = ResolveHostMemoryBudget(
      config.host_memory_budget_bytes, DiscoverMemoryLimit(),
      DatabaseMemory{config.db_block_cache_bytes, config.db_write_buffer_bytes});
  engine::SetGuestMemoryBudget(server->host_memory_budget_.budget_bytes);
  const BudgetReport budget_report =
      DescribeHostMemoryBudget(server->host_memory_budget_, server->module_->memory_limit_bytes());
  if (budget_report.warning) {
    logger.Warning(budget_report.line);
  } else {
    logger.Info(budget_report.line);
  }

  std::filesystem::path db_path(config.db_path);
  if (db_path.has_parent_path()) {
    std::error_code ignored;  // Open reports a missing or unusable folder itself.
    std::filesystem::create_directories(db_path.parent_path(), ignored);
  }
  // A snapshot is checked whole before anything opens it: a tampered or truncated one is refused,
  // never half-used.
  absl::StatusOr<std::optional<store::SnapshotManifest>> snapshot =
      store::ReadSnapshotManifest(db_path);
  if (!snapshot.ok()) {
    return util::WithCause(
        absl::Status(snapshot.status().code(),
                     absl::StrCat("refusing to start from --db ", config.db_path, ": ",
                                  snapshot.status().message(), "; take or copy it again")),
        util::FailureCause::kSnapshotInvalid);
  }
  if (snapshot->has_value()) {
    const absl::Time began = absl::Now();
    if (absl::Status verified = store::VerifySnapshot(db_path, **snapshot); !verified.ok()) {
      return util::WithCause(
          absl::Status(verified.code(), absl::StrCat("refusing to start from ", verified.message(),
                                                     "; take or copy the snapshot again")),
          util::FailureCause::kSnapshotInvalid);
    }
    logger.Info(absl::StrCat(
        "--db ", config.db_path, " is a snapshot (", (*snapshot)->files.size(), " files, ",
        (*snapshot)->TotalBytes(), " bytes) whose every file matches its manifest (checked in ",
        absl::FormatDuration(absl::Trunc(absl::Now() - began, absl::Milliseconds(1))), "); tip ",
        (*snapshot)->tip.has_value() ? absl::StrCat((*snapshot)->tip->height) : "none"));
  }
  // The binding is checked before the read-write open: a refused database stays byte for byte
  // as it was.
  server->identity_ =
      store::NodeIdentity{store::Sha256(*wasm), server->module_->memory_limit_bytes()};
  absl::StatusOr<store::StoredIdentity> stored = store::ReadStoredIdentity(db_path);
  if (!stored.ok()) return stored.status();
  absl::StatusOr<store::IdentityVerdict> verdict =
      store::CheckNodeIdentity(*stored, server->identity_);
  if (!verdict.ok()) {
    const std::string message = absl::StrCat(
        "database ", config.db_path,
        " is bound to another module or cap: ", verdict.status().message(),
        ". Restart with the --module and --memory_limit it was built "
        "with (given: --module=",
        config.module_path, " --memory_limit=", FormatByteSize(config.memory_limit_bytes),
        "), or index into a new --db");
    return util::WithCause(absl::Status(verdict.status().code(), message),
                           util::CauseOf(verdict.status()));
  }
  if (snapshot->has_value()) {
    // From now on the folder is a live database: its manifest only says where it came from. Marked
    // before the read-write open changes any file, so a crash in between cannot leave a manifest
    // that no longer matches (which would refuse every later start).
    TANDEM_RETURN_IF_ERROR(store::MarkSnapshotRestored(db_path));
  }
  absl::StatusOr<std::unique_ptr<store::BlockStore>> store =
      store::BlockStore::Open(db_path, StoreOptionsFromConfig(config));
  if (!store.ok()) return store.status();
  server->store_ = *std::move(store);
  if (*verdict != store::IdentityVerdict::kMatches) {
    if (absl::Status bound = server->store_->BindIdentity(server->identity_); !bound.ok()) {
      return bound;
    }
  }
  const std::string digest_hex = absl::BytesToHexString(server->identity_.module_sha256);
  const uint64_t cap = server->identity_.memory_limit_bytes;
  if (*verdict == store::IdentityVerdict::kAdopt) {
    // An upgrade: refusing would leave the operator no way forward short of re-indexing.
    logger.Warning(absl::StrCat("database ", config.db_path, " holds blocks but no record of ",
                                "their module and cap (an older tandemd wrote it): adopted module ",
                                "SHA-256 ", digest_hex, " and memory cap ", cap, " bytes; from ",
                                "now on it refuses any other"));
  } else if (*verdict == store::IdentityVerdict::kBind) {
    logger.Info(absl::StrCat("database ", config.db_path, " bound to module SHA-256 ", digest_hex,
                             " and memory cap ", cap, " bytes (it holds no block yet)"));
  }
  std::optional<store::BlockRecord> tip = server->store_->GetTip();
  logger.Info(absl::StrCat("opened database ", config.db_path, ", tip ",
                           tip.has_value() ? absl::StrCat(tip->height) : "none"));

  server->metrics_ = std::make_unique<Metrics>(std::make_shared<prometheus::Registry>());
  server->metrics_->SetBuildInfo(CurrentBuildInfo(*wasm));
  server->events_ =
      std::make_unique<EventHub>(logger, /*queue_limit=*/1024, server->metrics_.get());
  server->pair_events_ = std::make_unique<PairEventFanOut>(
      std::vector<proxy::PairEventSink*>{server->events_.get(), server->metrics_.get()});
  SnapshotSchedule schedule;
  schedule.directory = config.snapshot_dir;
  schedule.every = config.snapshot_every;
  schedule.keep = config.snapshot_keep;
  schedule.deadline = config.snapshot_deadline;
  server->snapshotter_ = std::make_unique<Snapshotter>(*server->store_, std::move(schedule),
                                                       *server->pair_events_, logger);
  if (config.snapshot_every > 0) {
    logger.Info(absl::StrCat("a snapshot every ", config.snapshot_every, " blocks into ",
                             config.snapshot_dir, ", keeping ",
                             config.snapshot_keep == 0
                                 ? std::string("all")
                                 : absl::StrCat("the last ", config.snapshot_keep)));
  }
  server->pair_sink_ = std::make_unique<PairEventFanOut>(
      std::vector<proxy::PairEventSink*>{server->pair_events_.get(), server->snapshotter_.get()});
  proxy::PairOptions pair_options = PairOptionsFromConfig(config);
  pair_options.instance.log_sink = &logger;
  server->pair_ = std::make_unique<proxy::InstancePair>(*server->module_, *server->store_,
                                                        pair_options, server->pair_sink_.get());
  // Its caches are what goes first when guest memory would pass the budget.
  engine::SetGuestMemoryReclaimer(server->pair_.get());
  if (absl::Status ready = server->pair_->WaitUntilReady(config.warm_deadline); !ready.ok()) {
    logger.Warning(
        absl::StrCat("no instance is ready yet (calls answer UNAVAILABLE until one "
                     "is): ",
                     ready.message()));
  }

  if (!config.metrics_listen.empty()) {
    server->metrics_collectable_ = std::make_shared<MetricsCollectable>(
        *server->metrics_, server->pair_.get(), server->store_.get());
    absl::StatusOr<std::unique_ptr<prometheus::Exposer>> exposer =
        StartMetricsExposer(config.metrics_listen, server->metrics_collectable_);
    if (!exposer.ok()) return exposer.status();
    server->metrics_exposer_ = *std::move(exposer);
    std::vector<int> ports = server->metrics_exposer_->GetListeningPorts();
    server->metrics_port_ = ports.empty() ? 0 : ports[0];
    logger.Info(absl::StrCat("metrics on http://",
                             WithPort(config.metrics_listen, server->metrics_port_), "/metrics"));
  }
  if (absl::Status status = server->StartListeners(); !status.ok()) return status;
  server->health_thread_ = std::thread([raw = server.get()] { raw->HealthMain(); });
  if (!config.port_file.empty()) {
    if (absl::Status written = WritePortFile(config.port_file, server->bound_addresses());
        !written.ok()) {
      return written;
    }
  }
  logger.Info(absl::StrCat("serving, swap policy ", proxy::SwapPolicyName(config.swap_policy),
                           config.port_file.empty() ? "" : "; addresses in ", config.port_file));
  return server;
}

BoundAddresses TandemServer::bound_addresses() const {
  BoundAddresses addresses;
  if (public_port_ != 0) addresses.listen = WithPort(config_.listen, public_port_);
  if (admin_port_ != 0) addresses.admin_listen = WithPort(config_.admin_listen, admin_port_);
  if (metrics_port_ != 0)
    addresses.metrics_listen = WithPort(config_.metrics_listen, metrics_port_);
  return addresses;
}

absl::Status TandemServer::StartListeners() {
  EnableHealthAndReflection();
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!config_.tls_cert_path.empty()) {
    absl::StatusOr<std::string> cert = ReadFile("--tls_cert", config_.tls_cert_path);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadFile("--tls_key", config_.tls_key_path);
    if (!key.ok()) return key.status();
    grpc::SslServerCredentialsOptions options;
    options.pem_key_cert_pairs.push_back({*key, *cert});
    credentials = grpc::SslServerCredentials(options);
  }
  const int max_message = static_cast<int>(config_.max_message_bytes);

  PeerBudgetOptions budget;
  budget.burst = config_.view_failure_budget;
  budget.refill_per_second = config_.view_failure_refill_per_second;
  view_budget_ = std::make_unique<PeerBudget>(budget);
  IndexerAccess access{config_.token, config_.ingest_token, IsLoopbackAddress(config_.listen)};
  if (access.ingest_token.empty() && !access.local_listener) {
    logger_.Info(absl::StrCat("writes (SubmitBlock, StreamBlocks, Rollback) on ", config_.listen,
                              " are refused: other hosts can reach it and no --ingest_token is "
                              "set"));
  }
  indexer_ = std::make_unique<IndexerService>(*pair_, *store_, identity_, std::move(access),
                                              view_budget_.get(), StreamLimitsFromConfig(config_));
  // Every call on either listener is counted and timed for grpc_server_* metrics.
  auto metric_interceptors = [this] {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    creators.push_back(NewGrpcMetricsInterceptorFactory(*metrics_));
    creators.push_back(NewCallTrackerInterceptorFactory(calls_));
    return creators;
  };
  grpc::ServerBuilder public_builder;
  public_builder.experimental().SetInterceptorCreators(metric_interceptors());
  // No SO_REUSEPORT: a second tandemd on the same address must fail, not share the port.
  public_builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  public_builder.AddListeningPort(config_.listen, credentials, &public_port_);
  public_builder.SetMaxReceiveMessageSize(max_message);
  public_builder.SetMaxSendMessageSize(max_message);
  public_builder.RegisterService(indexer_.get());
  if (config_.admin_on_public) {
    public_admin_ =
        std::make_unique<AdminService>(*pair_, *snapshotter_, *events_, config_.admin_token,
                                       config_.module_path, identity_, host_memory_budget_);
    public_builder.RegisterService(public_admin_.get());
  }
  public_server_ = public_builder.BuildAndStart();
  if (public_server_ == nullptr || public_port_ == 0) {
    // Taken since the check at start, or refused for a reason gRPC only logs: say which if the
    // system can.
    TANDEM_RETURN_IF_ERROR(CheckCanListen("listen", config_.listen));
    return absl::UnavailableError(absl::StrCat("cannot listen on --listen=", config_.listen));
  }
  logger_.Info(absl::StrCat("Indexer", config_.admin_on_public ? " and Admin" : "",
                            " listening on ", WithPort(config_.listen, public_port_),
                            config_.tls_cert_path.empty() ? "" : " (TLS)"));

  if (!config_.admin_listen.empty()) {
    admin_ = std::make_unique<AdminService>(*pair_, *snapshotter_, *events_, config_.admin_token,
                                            config_.module_path, identity_, host_memory_budget_);
    grpc::ServerBuilder admin_builder;
    admin_builder.experimental().SetInterceptorCreators(metric_interceptors());
    admin_builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    admin_builder.AddListeningPort(config_.admin_listen, credentials, &admin_port_);
    admin_builder.SetMaxReceiveMessageSize(max_message);
    admin_builder.SetMaxSendMessageSize(max_message);
    admin_builder.RegisterService(admin_.get());
    admin_server_ = admin_builder.BuildAndStart();
    if (admin_server_ == nullptr || admin_port_ == 0) {
      TANDEM_RETURN_IF_ERROR(CheckCanListen("admin_listen", config_.admin_listen));
      return absl::UnavailableError(
          absl::StrCat("cannot listen on --admin_listen=", config_.admin_listen));
    }
    logger_.Info(absl::StrCat("Admin listening on ", WithPort(config_.admin_listen, admin_port_),
                              config_.tls_cert_path.empty() ? "" : " (TLS)"));
  }
  return absl::OkStatus();
}

void TandemServer::PublishHealth(bool serving) {
  for (grpc::Server* server : {public_server_.get(), admin_server_.get()}) {
    if (server == nullptr) continue;
    if (grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService()) {
      health->SetServingStatus(serving);
    }
  }
}

void TandemServer::HealthMain() {
  HealthVerdict published;
  util::MutexLock lock(&health_mu_);
  while (!health_stopping_) {
    health_mu_.Unlock();
    std::optional<store::BlockRecord> tip = store_->GetTip();
    absl::Status probe =
        tip.has_value() ? store_->GetBlock(tip->height).status() : store_->Get("", 0).status();
    HealthVerdict verdict = EvaluateHealth(pair_->Status(), probe);
    if (!(verdict == published)) {
      PublishHealth(verdict.serving);
      if (verdict.serving) {
        logger_.Info("health: SERVING");
      } else {
        logger_.Warning(absl::StrCat("health: NOT_SERVING: ", verdict.reason));
      }
      published = verdict;
    }
    health_mu_.Lock();
    health_mu_.AwaitWithTimeout(
        [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return health_stopping_; }, absl::Seconds(1));
  }
}

void TandemServer::Shutdown(absl::Duration grace) {
  {
    util::MutexLock lock(&health_mu_);
    health_stopping_ = true;
  }
  if (health_thread_.joinable()) health_thread_.join();
  if (shut_down_) return;
  shut_down_ = true;
  if (!config_.port_file.empty() && public_server_ != nullptr) {
    // No longer serving: a script that reads the file must not find this server's ports.
    if (absl::Status removed = RemovePortFile(config_.port_file); !removed.ok()) {
      logger_.Warning(removed.message());
    }
  }
  const bool serving = public_server_ != nullptr;
  if (serving) {
    logger_.Info(absl::StrCat("shutting down: in-flight calls have ", absl::FormatDuration(grace),
                              " to finish"));
  }
  // Event streams and block streams end first; they would otherwise hold the grace period up.
  if (events_ != nullptr) events_->Close();
  if (indexer_ != nullptr) indexer_->BeginShutdown();
  gpr_timespec deadline =
      gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                   gpr_time_from_micros(absl::ToInt64Microseconds(grace), GPR_TIMESPAN));
  for (grpc::Server* server : {public_server_.get(), admin_server_.get()}) {
    if (server == nullptr) continue;
    if (grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService()) {
      health->SetServingStatus(false);
    }
  }
  // gRPC's Shutdown waits for every connection to close, and a client that keeps an idle channel
  // does not answer the server's GOAWAY for seconds. So the servers shut down on a thread of
  // their own while this one waits for the calls in flight (at most `grace`); once there are
  // none, the remaining connections are closed at once.
  std::atomic<bool> listeners_stopped{false};
  std::thread stopper([&] {
    for (grpc::Server* server : {public_server_.get(), admin_server_.get()}) {
      if (server != nullptr) server->Shutdown(deadline);
    }
    listeners_stopped = true;
  });
  const absl::Time grace_end = absl::Now() + grace;
  while (!listeners_stopped.load()) {
    if (calls_.WaitUntilIdle(std::min(grace_end, absl::Now() + absl::Milliseconds(50))) &&
        !listeners_stopped.load()) {
      // Nothing of ours runs: what is left are idle connections and gRPC's own streams (health
      // watches). Repeated while the servers stop, since a connection may arrive meanwhile.
      for (grpc::Server* server : {public_server_.get(), admin_server_.get()}) {
        if (server != nullptr) grpc_server_cancel_all_calls(server->c_server());
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    if (absl::Now() >= grace_end) break;  // gRPC cancels the calls still running itself.
  }
  stopper.join();
  public_server_.reset();
  admin_server_.reset();
  if (serving) logger_.Info("listeners stopped; stopping the instance pair");
  public_admin_.reset();
  admin_.reset();
  indexer_.reset();
  // No scrape can be in flight any more.
  StopMetricsExposer(std::move(metrics_exposer_), config_.metrics_listen);
  metrics_collectable_.reset();
  if (pair_ != nullptr) engine::RemoveGuestMemoryReclaimer(pair_.get());
  pair_.reset();  // No call can be in flight any more: every server has shut down.
  pair_sink_.reset();
  snapshotter_.reset();  // Abandons a periodic snapshot in progress (its folder is removed).
  pair_events_.reset();
  events_.reset();
  metrics_.reset();
  std::optional<store::BlockRecord> tip = store_ != nullptr ? store_->GetTip() : std::nullopt;
  store_.reset();
  if (serving) {
    logger_.Info(
        absl::StrCat("stopped; tip ", tip.has_value() ? absl::StrCat(tip->height) : "none"));
  }
}

TandemServer::~TandemServer() { Shutdown(config_.shutdown_grace); }

}  // namespace tandem::server
