// Makes the pair's instances: a worker from the pool, an instantiation, the replay log replayed
// and every result checked. It keeps no instance and decides nothing about where they serve.
#include "proxy/instance_factory.h"

#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "store/state_root.h"
#include "util/failure_cause.h"
#include "util/status_macros.h"

namespace tandem::proxy {
namespace {

absl::Status Annotate(const absl::Status& status, absl::string_view prefix) {
  return util::WithCause(absl::Status(status.code(), absl::StrCat(prefix, status.message())),
                         util::CauseOf(status));
}

// The replayed answers against the digests the log recorded.
absl::Status CheckReplay(const std::vector<store::ReplayCall>& log,
                         const std::vector<std::string>& answers) {
  for (size_t i = 0; i < log.size(); ++i) {
    const std::string digest = store::Sha256(answers[i]);
    const store::ReplayCall& call = log[i];
    if (digest != call.result_digest) {
      return util::CausedError(
          absl::StatusCode::kAborted, util::FailureCause::kReplayDiverged,
          absl::StrCat("replay diverged at call ", i + 1, " (", call.export_name,
                       "): result digest ", absl::BytesToHexString(digest),
                       " differs from the recorded ", absl::BytesToHexString(call.result_digest),
                       "; the guest's init calls are not deterministic"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

InstanceFactory::InstanceFactory(const engine::Module& module, const store::ReplayLog& replay_log,
                                 engine::WorkerPoolOptions workers,
                                 engine::InstanceOptions instance)
    : module_(module),
      replay_log_(replay_log),
      instance_options_(std::move(instance)),
      workers_(std::move(workers)) {}

absl::StatusOr<Lease> InstanceFactory::Make(uint64_t generation, absl::Duration deadline,
                                            OnReady on_ready) const {
  const std::string label = absl::StrCat("generation ", generation);
  engine::InstanceOptions options = instance_options_;
  options.label = label;
  options.create_deadline = deadline;
  absl::StatusOr<std::unique_ptr<engine::Instance>> instance =
      engine::Instance::Acquire(workers_, module_, std::move(options));
  if (!instance.ok()) return Annotate(instance.status(), absl::StrCat("warm-up of ", label, ": "));

  absl::StatusOr<std::vector<store::ReplayCall>> log = replay_log_.List();
  if (!log.ok()) {
    return util::WithCause(Annotate(log.status(), "warm-up could not read the replay log: "),
                           util::FailureCause::kHostError);
  }
  std::vector<engine::InitCall> calls;
  calls.reserve(log->size());
  for (const store::ReplayCall& call : *log) calls.push_back({call.export_name, call.payload});

  const Lease lease = std::make_shared<ManagedInstance>(*std::move(instance), generation);
  // Runs on the worker, at the end of the instantiation's job. It holds the lease weakly: the
  // job may outlive Make (a deadline), and the lease's last reference must not go on the worker.
  engine::Instance::ReadyCallback ready =
      [weak = std::weak_ptr<ManagedInstance>(lease), log = std::move(*log),
       on_ready = std::move(on_ready)](const std::vector<std::string>& answers) mutable {
        TANDEM_RETURN_IF_ERROR(CheckReplay(log, answers));
        if (on_ready == nullptr) return absl::OkStatus();
        if (Lease ready = weak.lock(); ready != nullptr) on_ready(std::move(ready));
        return absl::OkStatus();
      };
  absl::StatusOr<std::vector<std::string>> replayed =
      lease->instance().Instantiate(calls, std::move(ready));
  if (!replayed.ok()) {
    if (util::CauseOf(replayed.status()) == util::FailureCause::kReplayDiverged) {
      return replayed.status();
    }
    // A replayed call's failure says which ("init call 2 of 3 (init_config): ...").
    return Annotate(replayed.status(), absl::StrCat("warm-up of ", label, ": "));
  }
  return lease;
}

}  // namespace tandem::proxy
