// Real leases for the slot table and height cache tests: instances of the minimal guest, made
// directly (no factory, no warmer). Test-only.
#pragma once

#include <memory>

#include "engine/instance.h"
#include "engine/worker_pool.h"
#include "gtest/gtest.h"
#include "proxy/managed_instance.h"
#include "tests/engine/test_support.h"

namespace tandem::proxy::testing {

class LeaseMaker {
 public:
  LeaseMaker() : module_(engine::testing::LoadGuestOrDie("minimal")) {}
  Lease Make(uint64_t generation) {
    absl::StatusOr<std::unique_ptr<engine::Instance>> instance =
        engine::Instance::Create(workers_, *module_, {});
    EXPECT_TRUE(instance.ok()) << instance.status();
    return std::make_shared<ManagedInstance>(*std::move(instance), generation);
  }

 private:
  std::unique_ptr<engine::Module> module_;
  engine::WorkerPool workers_{engine::WorkerPoolOptions{}};
};

}  // namespace tandem::proxy::testing
