// Adapts the block store to the engine's StateReader, so neither layer knows the other.
// It only reads; it must never write.
#pragma once

#include "engine/state_reader.h"
#include "store/block_store.h"

namespace tandem::proxy {

// Threading: as thread-safe as BlockStore::Get (fully).
class StoreReader final : public engine::StateReader {
 public:
  // REQUIRES: `store` outlives the reader.
  explicit StoreReader(const store::BlockStore& store) : store_(store) {}

  absl::StatusOr<std::optional<std::string>> Get(absl::string_view key,
                                                 uint32_t height) const override {
    return store_.Get(std::string_view(key.data(), key.size()), height);
  }

 private:
  const store::BlockStore& store_;
};

}  // namespace tandem::proxy
