// The state root and block hash (docs/design.md, "Storage and the state root"), as pure functions.
// It must never touch the database: other nodes and tests recompute roots with exactly this code.
#include "store/state_root.h"

#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

namespace tandem::store {
namespace {

// EVP calls fail only when OpenSSL cannot allocate or has no SHA-256 at all; neither can be
// handled meaningfully by a caller, and returning a wrong root would be far worse than stopping.
void CheckEvp(int ok, const char* what) {
  if (ok != 1) {
    std::fprintf(stderr, "tandem::store: OpenSSL %s failed\n", what);
    std::abort();
  }
}

struct EvpCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

// One streaming SHA-256 computation.
class Sha256Hasher {
 public:
  Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
    if (ctx_ == nullptr) CheckEvp(0, "EVP_MD_CTX_new");
    CheckEvp(EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr), "EVP_DigestInit_ex");
  }

  void Update(std::string_view data) {
    CheckEvp(EVP_DigestUpdate(ctx_.get(), data.data(), data.size()), "EVP_DigestUpdate");
  }

  void UpdateU32(uint32_t value) {
    const char bytes[4] = {static_cast<char>(value >> 24), static_cast<char>(value >> 16),
                           static_cast<char>(value >> 8), static_cast<char>(value)};
    Update(std::string_view(bytes, 4));
  }

  std::string Finish() {
    std::string out(kHashSize, '\0');
    unsigned int size = 0;
    CheckEvp(EVP_DigestFinal_ex(ctx_.get(), reinterpret_cast<unsigned char*>(out.data()), &size),
             "EVP_DigestFinal_ex");
    return out;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, EvpCtxDeleter> ctx_;
};

}  // namespace

std::string Sha256(std::string_view data) {
  Sha256Hasher hasher;
  hasher.Update(data);
  return hasher.Finish();
}

std::string ZeroRoot() { return std::string(kHashSize, '\0'); }

struct WritesDigester::Context {
  Sha256Hasher hasher;
};

WritesDigester::WritesDigester() : context_(std::make_unique<Context>()) {}
WritesDigester::~WritesDigester() = default;

void WritesDigester::Add(std::string_view key, std::string_view value) {
  context_->hasher.UpdateU32(static_cast<uint32_t>(key.size()));
  context_->hasher.Update(key);
  context_->hasher.UpdateU32(static_cast<uint32_t>(value.size()));
  context_->hasher.Update(value);
}

std::string WritesDigester::Finish() { return context_->hasher.Finish(); }

std::string WritesDigest(const WriteSet& writes) {
  WritesDigester digester;
  for (const auto& [key, value] : writes) digester.Add(key, value);
  return digester.Finish();
}

std::string ChainStateRoot(std::string_view prev_root, uint32_t height,
                           std::string_view writes_digest) {
  Sha256Hasher hasher;
  hasher.Update(prev_root);
  hasher.UpdateU32(height);
  hasher.Update(writes_digest);
  return hasher.Finish();
}

std::string ComputeStateRoot(std::string_view prev_root, uint32_t height, const WriteSet& writes) {
  return ChainStateRoot(prev_root, height, WritesDigest(writes));
}

}  // namespace tandem::store
