// The committed state of an in-process ingest as one map, for benchmarks that run a guest
// without the store: blocks run one after another, so the map as it stands is the state at
// height - 1, which is what every block reads. Benchmark-only.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/call_types.h"
#include "engine/state_reader.h"

namespace tandem::bench {

class MapReader final : public engine::StateReader {
 public:
  absl::StatusOr<std::optional<std::string>> Get(absl::string_view key,
                                                 uint32_t /*height*/) const override {
    auto it = state_.find(key);
    if (it == state_.end()) return std::nullopt;
    return it->second;
  }

  // Applies a block's writes (an empty value deletes), moving the values out of `writes`.
  void Apply(engine::BlockWrites& writes) {
    for (auto& [key, value] : writes) {
      if (value.empty()) {
        state_.erase(key);
      } else {
        state_.insert_or_assign(key, std::move(value));
      }
    }
  }

  size_t size() const { return state_.size(); }

 private:
  std::map<std::string, std::string, std::less<>> state_;
};

}  // namespace tandem::bench
