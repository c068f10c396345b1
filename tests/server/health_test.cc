// Tests for the health verdict that grpc.health.v1 publishes.
#include "server/health.h"

#include "gtest/gtest.h"

namespace tandem::server {
namespace {

proxy::PairStatus StatusWith(bool active, proxy::StandbyState standby, std::string failure = "") {
  proxy::PairStatus status;
  status.active.present = active;
  status.standby_state = standby;
  status.standby_failure = std::move(failure);
  return status;
}

TEST(HealthTest, ServingWhileAnInstanceServesOrCanBeMade) {
  using proxy::StandbyState;
  EXPECT_TRUE(EvaluateHealth(StatusWith(true, StandbyState::kReady), absl::OkStatus()).serving);
  EXPECT_TRUE(
      EvaluateHealth(StatusWith(true, StandbyState::kFailed, "x"), absl::OkStatus()).serving);
  EXPECT_TRUE(EvaluateHealth(StatusWith(false, StandbyState::kReady), absl::OkStatus()).serving);
  // The first warm-up still running at start-up: calls wait for it.
  EXPECT_TRUE(EvaluateHealth(StatusWith(false, StandbyState::kWarming), absl::OkStatus()).serving);
}

TEST(HealthTest, NotServingWhenNoInstanceCanBeCreated) {
  HealthVerdict verdict = EvaluateHealth(
      StatusWith(false, proxy::StandbyState::kFailed, "reservation of 10737418240 bytes failed"),
      absl::OkStatus());
  EXPECT_FALSE(verdict.serving);
  EXPECT_NE(verdict.reason.find("no instance can be created"), std::string::npos);
  EXPECT_NE(verdict.reason.find("reservation"), std::string::npos);
}

TEST(HealthTest, NotServingWhenTheStoreIsUnusable) {
  HealthVerdict verdict = EvaluateHealth(StatusWith(true, proxy::StandbyState::kReady),
                                         absl::DataLossError("corrupt block record"));
  EXPECT_FALSE(verdict.serving);
  EXPECT_NE(verdict.reason.find("store is unusable"), std::string::npos);
  EXPECT_NE(verdict.reason.find("corrupt block record"), std::string::npos);
}

}  // namespace
}  // namespace tandem::server
