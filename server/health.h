// Decides what grpc.health.v1 reports: SERVING while the store answers and an instance serves
// or can be made. Pure decision logic; the server polls and publishes it.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "proxy/instance_pair.h"

namespace tandem::server {

struct HealthVerdict {
  bool serving = true;
  std::string reason;  // Why not, when not serving.

  bool operator==(const HealthVerdict&) const = default;
};

// `store_probe` is the outcome of a cheap read of the store (the tip's record). NOT_SERVING when
// that read failed, or when no instance serves and the latest warm-up failed (no instance can be
// created right now). A warm-up in progress at start-up still counts as serving: calls wait for it.
HealthVerdict EvaluateHealth(const proxy::PairStatus& pair, const absl::Status& store_probe);

}  // namespace tandem::server
