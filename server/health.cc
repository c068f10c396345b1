// Decides what grpc.health.v1 reports: SERVING while the store answers and an instance serves
// or can be made. Pure decision logic; the server polls and publishes it.
#include "server/health.h"

#include "absl/strings/str_cat.h"

namespace tandem::server {

HealthVerdict EvaluateHealth(const proxy::PairStatus& pair, const absl::Status& store_probe) {
  if (!store_probe.ok()) {
    return {false, absl::StrCat("the store is unusable: ", store_probe.ToString())};
  }
  const bool instance_available =
      pair.active.present || pair.standby_state == proxy::StandbyState::kReady;
  if (!instance_available && pair.standby_state == proxy::StandbyState::kFailed) {
    return {false, absl::StrCat("no instance can be created: ", pair.standby_failure)};
  }
  return {true, ""};
}

}  // namespace tandem::server
