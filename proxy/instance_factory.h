// Makes the pair's instances: a worker from the pool, an instantiation, the replay log replayed
// and every result checked. It keeps no instance and decides nothing about where they serve.
#pragma once

#include <cstdint>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/instance.h"
#include "engine/module.h"
#include "engine/worker_pool.h"
#include "proxy/managed_instance.h"
#include "store/replay_log.h"

namespace tandem::proxy {

// Threading: every method is thread-safe; Make runs concurrently on several threads (each
// instance gets its own worker).
class InstanceFactory {
 public:
  // REQUIRES: `module` and `replay_log` outlive the factory; instance.log_sink outlives it.
  InstanceFactory(const engine::Module& module, const store::ReplayLog& replay_log,
                  engine::WorkerPoolOptions workers, engine::InstanceOptions instance);
  InstanceFactory(const InstanceFactory&) = delete;
  InstanceFactory& operator=(const InstanceFactory&) = delete;

  // Creates generation `generation` and replays the init-call log into it, checking each result
  // against its recorded digest, all within `deadline`. Errors carry their util::FailureCause:
  //   ABORTED (kReplayDiverged)  a replayed result differs: the guest is not deterministic;
  //   ABORTED (guest causes)     `_initialize`, the start function or a replayed call trapped;
  //   DEADLINE_EXCEEDED / UNAVAILABLE  the host's failures (deadline, memory, V8).
  //
  // `on_ready`, when given, receives the instance on its worker's thread as soon as it is
  // instantiated, replayed and checked, before Make returns: handed on from there, its first call
  // needs no other thread to wake up first. It is not called when Make fails before that point,
  // nor when the instance is already abandoned (its deadline passed while the job still ran).
  using OnReady = absl::AnyInvocable<void(Lease)>;
  absl::StatusOr<Lease> Make(uint64_t generation, absl::Duration deadline,
                             OnReady on_ready = nullptr) const;

  engine::WorkerPoolStats WorkerStats() const { return workers_.Stats(); }
  const engine::Module& module() const { return module_; }

 private:
  // Constant after construction.
  const engine::Module& module_;
  const store::ReplayLog& replay_log_;
  const engine::InstanceOptions instance_options_;
  // Thread-safe; mutable because handing out workers is not a change of the factory's meaning.
  mutable engine::WorkerPool workers_;
};

}  // namespace tandem::proxy
