// Why a call failed, as a typed value that travels with its absl::Status across the layers.
// Header-only and dependency-free beyond abseil; it names causes, it never decides what they mean.
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/string_view.h"

namespace tandem::util {

// The cause of a failed guest call, warm-up or pair operation. The status code says how a caller
// should react (ABORTED: the block is bad; UNAVAILABLE / DEADLINE_EXCEEDED: retry); the cause says
// what happened, for metrics, events and the pair's own decisions, so nobody parses message text.
enum class FailureCause {
  kUnknown = 0,
  // Deterministic: every node that runs the same call fails it the same way.
  kGuestTrap,   // A WebAssembly trap: unreachable, out-of-bounds access, division by zero...
  kGuestAbort,  // The guest called `abort`.
  kGuestAbi,    // The guest broke the host ABI: bad pointer, malformed or missing flush, limits.
  kReplayDiverged,  // A replayed init call answered differently: the guest is not deterministic.
  // Non-deterministic: the host's doing, the call may succeed elsewhere.
  kDeadline,       // The call ran past its deadline and was terminated.
  kStackOverflow,  // V8's native stack overflowed (its depth differs between tiers and builds).
  kHostMemory,     // The host could not provide memory below the cap.
  kHeapLimit,      // The isolate's JavaScript heap reached its limit.
  kHostError,      // Another host failure: V8 refused to instantiate, the store failed a read...
  kShutdown,       // The instance or the service is shutting down.
  // The call never started: the instance it was queued on failed (or was retired) first. Nothing
  // of it ran, so it may run on another instance.
  kInstanceLost,
  // No instance was ready within the wait.
  kNoReadyInstance,
  // The database is bound to another module or memory cap than the one given (store/
  // node_identity.h): running blocks would silently compute other roots, so nothing starts.
  kIdentityMismatch,
  // The --db folder is a snapshot whose files or database differ from its manifest (tampered,
  // truncated, half-copied): it is refused whole, never half-used.
  kSnapshotInvalid,
  // Non-deterministic: a commit of guest memory would have passed the host memory budget
  // (--host_memory_budget), even after cached instances were dropped.
  kHostMemoryBudget,
};

inline constexpr absl::string_view kFailureCausePayloadUrl = "type.tandem.dev/tandem.FailureCause";

// A short stable name for labels and logs: "guest_trap", "deadline", "instance_lost", ...
inline absl::string_view FailureCauseName(FailureCause cause) {
  switch (cause) {
    case FailureCause::kUnknown:
      return "unknown";
    case FailureCause::kGuestTrap:
      return "guest_trap";
    case FailureCause::kGuestAbort:
      return "guest_abort";
    case FailureCause::kGuestAbi:
      return "guest_abi";
    case FailureCause::kReplayDiverged:
      return "replay_diverged";
    case FailureCause::kDeadline:
      return "deadline";
    case FailureCause::kStackOverflow:
      return "stack_overflow";
    case FailureCause::kHostMemory:
      return "host_memory";
    case FailureCause::kHeapLimit:
      return "heap_limit";
    case FailureCause::kHostError:
      return "host_error";
    case FailureCause::kShutdown:
      return "shutdown";
    case FailureCause::kInstanceLost:
      return "instance_lost";
    case FailureCause::kNoReadyInstance:
      return "no_ready_instance";
    case FailureCause::kIdentityMismatch:
      return "identity_mismatch";
    case FailureCause::kSnapshotInvalid:
      return "snapshot_invalid";
    case FailureCause::kHostMemoryBudget:
      return "host_memory_budget";
  }
  return "unknown";
}

// True for the causes every node reproduces: a deterministic guest failure.
inline bool IsDeterministic(FailureCause cause) {
  return cause == FailureCause::kGuestTrap || cause == FailureCause::kGuestAbort ||
         cause == FailureCause::kGuestAbi || cause == FailureCause::kReplayDiverged;
}

// Returns `status` carrying `cause`. OK statuses carry no cause and are returned unchanged.
inline absl::Status WithCause(absl::Status status, FailureCause cause) {
  if (!status.ok()) {
    status.SetPayload(kFailureCausePayloadUrl,
                      absl::Cord(std::string(1, static_cast<char>(static_cast<int>(cause)))));
  }
  return status;
}

// The cause `status` carries; kUnknown when it carries none (or is OK).
inline FailureCause CauseOf(const absl::Status& status) {
  const auto payload = status.GetPayload(kFailureCausePayloadUrl);  // absl::optional<Cord>
  if (!payload.has_value() || payload->size() != 1) return FailureCause::kUnknown;
  const int value = static_cast<unsigned char>(std::string(*payload)[0]);
  if (value > static_cast<int>(FailureCause::kHostMemoryBudget)) return FailureCause::kUnknown;
  return static_cast<FailureCause>(value);
}

// A status of `code` with `message`, carrying `cause`.
inline absl::Status CausedError(absl::StatusCode code, FailureCause cause,
                                absl::string_view message) {
  return WithCause(absl::Status(code, message), cause);
}

}  // namespace tandem::util
