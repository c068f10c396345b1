#include "server/admin_service.h"

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "engine/platform.h"
#include "server/auth.h"
#include "server/convert.h"
#include "server/status_mapping.h"
#include "store/snapshot.h"

namespace tandem::server {

AdminService::AdminService(proxy::InstancePair& pair, Snapshotter& snapshotter, EventHub& events,
                           std::string token, std::string module_path, store::NodeIdentity identity,
                           HostMemoryBudget budget)
    : pair_(pair),
      snapshotter_(snapshotter),
      events_(events),
      token_(std::move(token)),
      module_path_(std::move(module_path)),
      identity_(std::move(identity)),
      budget_(std::move(budget)) {}

grpc::Status AdminService::Status(grpc::ServerContext* context,
                                  const tandem::v1::StatusRequest* /*request*/,
                                  tandem::v1::StatusResponse* response) {
  if (grpc::Status auth = CheckBearerToken(*context, token_); !auth.ok()) return auth;
  ToProto(pair_.Status(), response);
  response->set_module_path(module_path_);
  response->set_module_sha256(identity_.module_sha256);
  const engine::GuestMemoryLedger::Usage usage = engine::GuestMemoryUsage();
  response->set_host_memory_budget_bytes(budget_.budget_bytes);
  response->set_host_memory_budget_source(budget_.source);
  response->set_guest_memory_committed_bytes(usage.committed_bytes);
  response->set_host_memory_refusals(usage.refusals);
  return grpc::Status::OK;
}

grpc::Status AdminService::Swap(grpc::ServerContext* context,
                                const tandem::v1::SwapRequest* request,
                                tandem::v1::SwapResponse* response) {
  if (grpc::Status auth = CheckBearerToken(*context, token_); !auth.ok()) return auth;
  absl::Duration wait = kDefaultSwapWait;
  if (request->has_wait()) {
    absl::StatusOr<absl::Duration> given = FromProto(request->wait());
    if (!given.ok() || *given < absl::ZeroDuration()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "wait must be a non-negative duration");
    }
    if (*given > absl::ZeroDuration()) wait = std::min(*given, kMaxSwapWait);
  }
  absl::StatusOr<proxy::SwapOutcome> outcome = pair_.Swap(wait);
  if (!outcome.ok()) return ToGrpcStatus(outcome.status());
  ToProto(*outcome, response);
  return grpc::Status::OK;
}

grpc::Status AdminService::Initialize(grpc::ServerContext* context,
                                      const tandem::v1::InitializeRequest* request,
                                      tandem::v1::InitializeResponse* response) {
  if (grpc::Status auth = CheckBearerToken(*context, token_); !auth.ok()) return auth;
  if (absl::Status name = CheckExportName("init call name", request->name()); !name.ok()) {
    return ToGrpcStatus(name);
  }
  absl::StatusOr<proxy::InitOutcome> outcome =
      pair_.Initialize(request->name(), request->payload());
  if (!outcome.ok()) return ToGrpcStatus(outcome.status());
  response->set_answer(std::move(outcome->answer));
  response->set_digest(std::move(outcome->digest));
  response->set_replay_log_calls(outcome->replay_log_calls);
  return grpc::Status::OK;
}

grpc::Status AdminService::Snapshot(grpc::ServerContext* context,
                                    const tandem::v1::SnapshotRequest* request,
                                    tandem::v1::SnapshotResponse* response) {
  if (grpc::Status auth = CheckBearerToken(*context, token_); !auth.ok()) return auth;
  const std::filesystem::path directory(request->directory());
  if (!directory.is_absolute()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("snapshot directory must be an absolute path on the "
                                     "server's machine, not '",
                                     request->directory(), "'"));
  }
  // The caller's deadline bounds the work, and a caller that goes away abandons it.
  store::SnapshotLimits limits;
  limits.deadline = absl::FromChrono(context->deadline());
  limits.cancelled = [context] { return context->IsCancelled(); };
  absl::StatusOr<store::SnapshotManifest> manifest =
      snapshotter_.Take(directory, std::move(limits));
  if (!manifest.ok()) return ToGrpcStatus(manifest.status());
  if (manifest->tip.has_value()) ToProto(*manifest->tip, response->mutable_tip());
  if (manifest->start_height.has_value()) response->set_start_height(*manifest->start_height);
  if (manifest->identity.has_value()) {
    response->set_module_sha256(manifest->identity->module_sha256);
    response->set_memory_limit_bytes(manifest->identity->memory_limit_bytes);
  }
  response->set_format_version(manifest->format_version);
  response->set_files(manifest->files.size());
  response->set_bytes(manifest->TotalBytes());
  return grpc::Status::OK;
}

grpc::Status AdminService::ResetReplayLog(grpc::ServerContext* context,
                                          const tandem::v1::ResetReplayLogRequest* request,
                                          tandem::v1::ResetReplayLogResponse* response) {
  if (grpc::Status auth = CheckBearerToken(*context, token_); !auth.ok()) return auth;
  std::optional<uint64_t> keep;
  if (request->has_keep_calls()) keep = request->keep_calls();
  absl::StatusOr<proxy::ReplayLogResetOutcome> outcome = pair_.ResetReplayLog(keep);
  if (!outcome.ok()) return ToGrpcStatus(outcome.status());
  response->set_dropped_calls(outcome->dropped_calls);
  response->set_replay_log_calls(outcome->replay_log_calls);
  return grpc::Status::OK;
}

grpc::Status AdminService::WatchEvents(grpc::ServerContext* context,
                                       const tandem::v1::WatchEventsRequest* /*request*/,
                                       grpc::ServerWriter<tandem::v1::PairEvent>* writer) {
  if (grpc::Status auth = CheckBearerToken(*context, token_); !auth.ok()) return auth;
  std::unique_ptr<EventHub::Subscription> subscription = events_.Subscribe();
  // The client learns that the subscription exists (its initial metadata arrives) before any
  // event does: a client may wait for it before it triggers something to watch.
  writer->SendInitialMetadata();
  proxy::PairEvent event;
  uint64_t dropped_before = 0;
  tandem::v1::PairEvent message;
  while (!context->IsCancelled()) {
    switch (subscription->Next(absl::Milliseconds(200), &event, &dropped_before)) {
      case EventHub::Subscription::Result::kTimeout:
        continue;
      case EventHub::Subscription::Result::kClosed:
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down");
      case EventHub::Subscription::Result::kEvent:
        message.Clear();
        ToProto(event, dropped_before, &message);
        if (!writer->Write(message)) return grpc::Status::OK;  // The client went away.
        break;
    }
  }
  return grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled");
}

}  // namespace tandem::server
