// Helpers shared by the engine tests: guest bytes, a versioned in-memory StateReader, V8 set-up.
// Test-only; it must never be linked into the product.
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "engine/module.h"
#include "engine/platform.h"
#include "engine/state_reader.h"
#include "engine/worker_pool.h"
#include "gtest/gtest.h"
#include "util/mutex.h"

namespace tandem::engine::testing {

inline std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// The bytes of a guest built by guests/ or tests/engine/modules/ (NAME.wasm).
inline std::string GuestBytes(absl::string_view name) {
  return ReadFileOrDie(absl::StrCat(TANDEM_GUEST_DIR, "/", name, ".wasm"));
}

inline void InitializeV8OrDie() { ASSERT_TRUE(InitializeV8().ok()); }

// The worker pool the engine tests share. Test-only: the product hands pools to whoever needs
// one, and never keeps a process-wide pool.
inline WorkerPool& TestWorkers() {
  static WorkerPool* const pool = new WorkerPool(WorkerPoolOptions{});
  return *pool;
}

inline std::unique_ptr<Module> LoadGuestOrDie(
    absl::string_view name, uint64_t memory_limit_bytes = kDefaultMemoryLimitBytes) {
  InitializeV8OrDie();
  absl::StatusOr<std::unique_ptr<Module>> module =
      Module::Load(GuestBytes(name), ModuleOptions{memory_limit_bytes});
  EXPECT_TRUE(module.ok()) << name << ": " << module.status();
  return module.ok() ? *std::move(module) : nullptr;
}

// A versioned key-value map with the store's read semantics (latest write at or below the height;
// an empty value is a delete), small enough to be obviously right. Thread-safe.
class MemoryStateReader : public StateReader {
 public:
  void Put(uint32_t height, absl::string_view key, absl::string_view value) {
    util::MutexLock lock(&mu_);
    versions_[std::string(key)][height] = std::string(value);
  }
  void FailReadsWith(absl::Status status) {
    util::MutexLock lock(&mu_);
    failure_ = std::move(status);
  }
  int reads() const {
    util::MutexLock lock(&mu_);
    return reads_;
  }

  absl::StatusOr<std::optional<std::string>> Get(absl::string_view key,
                                                 uint32_t height) const override {
    util::MutexLock lock(&mu_);
    ++reads_;
    if (!failure_.ok()) return failure_;
    auto entry = versions_.find(std::string(key));
    if (entry == versions_.end()) return std::nullopt;
    auto version = entry->second.upper_bound(height);
    if (version == entry->second.begin()) return std::nullopt;
    --version;
    if (version->second.empty()) return std::nullopt;
    return version->second;
  }

 private:
  mutable util::Mutex mu_;
  std::map<std::string, std::map<uint32_t, std::string>> versions_ ABSL_GUARDED_BY(mu_);
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  mutable int reads_ ABSL_GUARDED_BY(mu_) = 0;
};

inline std::string U32Le(uint32_t value) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  return out;
}

inline uint32_t ReadU32Le(absl::string_view bytes, size_t offset = 0) {
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) value |= uint32_t{static_cast<uint8_t>(bytes[offset + i])} << (8 * i);
  return value;
}

inline uint64_t ReadU64Le(absl::string_view bytes, size_t offset = 0) {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value |= uint64_t{static_cast<uint8_t>(bytes[offset + i])} << (8 * i);
  return value;
}

}  // namespace tandem::engine::testing
