// The seed of a randomized GoogleTest case: fixed in CI, overridable to explore. Test-only; it
// must never be linked into the product.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace tandem::testing {

// Returns TANDEM_TEST_SEED when the environment sets it (scripts/soak.sh draws one per round),
// else `fixed_seed`, the case's own seed, so that CI runs the same scenario every time. Prints the
// seed and the command that reruns the case with it, and records it as the test property `seed`
// (in the XML report). A TANDEM_TEST_SEED that is not a number fails the case.
inline uint32_t TestSeed(uint32_t fixed_seed) {
  uint32_t seed = fixed_seed;
  if (const char* text = std::getenv("TANDEM_TEST_SEED"); text != nullptr && *text != '\0') {
    if (!absl::SimpleAtoi(text, &seed)) {
      ADD_FAILURE() << "TANDEM_TEST_SEED=" << text << " is not a 32-bit unsigned number";
      seed = fixed_seed;
    }
  }
  const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string name =
      test != nullptr ? absl::StrCat(test->test_suite_name(), ".", test->name()) : "";
  std::cout << "seed " << seed << "; rerun this scenario with: TANDEM_TEST_SEED=" << seed
            << " ctest -R '^" << name << "$'" << std::endl;
  ::testing::Test::RecordProperty("seed", static_cast<int>(seed));
  return seed;
}

}  // namespace tandem::testing
