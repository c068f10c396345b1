// Helpers shared by the store tests: temporary directories and an independent state-root model.
// It must never call the store's own root code: the reference is written again from docs/design.md.
#pragma once

#include <openssl/sha.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <system_error>

namespace tandem::store::testing {

// A fresh directory under /tmp, removed with everything in it when the object goes away.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "tandem-store-XXXXXX").string();
    char* made = mkdtemp(pattern.data());
    if (made == nullptr) std::abort();
    path_ = made;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Every file under `dir` with its bytes, to check that a refused open changed nothing.
inline std::map<std::string, std::string> SnapshotDirectory(const std::filesystem::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    files[std::filesystem::relative(entry.path(), dir).string()] =
        std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return files;
}

// docs/design.md's formula, spelled out again with OpenSSL's one-shot SHA256 over a built buffer:
//   root(h) = SHA-256(root(h-1) ‖ u32 BE h ‖ SHA-256(Σ u32 BE len(k) ‖ k ‖ u32 BE len(v) ‖ v))
// with the writes sorted by key as unsigned bytes.
inline std::string ReferenceSha256(const std::string& data) {
  unsigned char out[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out);
  return std::string(reinterpret_cast<const char*>(out), sizeof(out));
}

inline void ReferenceAppendBe32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}

// `Writes`: any map of string keys to string values (the store's WriteSet, a std::map).
template <typename Writes>
std::string ReferenceRoot(const std::string& prev_root, uint32_t height, const Writes& writes) {
  // std::map<std::string> already orders by unsigned bytes (char_traits<char>::lt compares as
  // unsigned char); sort explicitly anyway so the reference does not lean on that.
  std::map<std::basic_string<unsigned char>, std::string> sorted;
  for (const auto& [k, v] : writes) {
    sorted[std::basic_string<unsigned char>(k.begin(), k.end())] = v;
  }
  std::string body;
  for (const auto& [k, v] : sorted) {
    ReferenceAppendBe32(body, static_cast<uint32_t>(k.size()));
    body.append(k.begin(), k.end());
    ReferenceAppendBe32(body, static_cast<uint32_t>(v.size()));
    body.append(v);
  }
  std::string outer = prev_root;
  ReferenceAppendBe32(outer, height);
  outer += ReferenceSha256(body);
  return ReferenceSha256(outer);
}

inline std::string ReferenceZeroRoot() { return std::string(32, '\0'); }

}  // namespace tandem::store::testing
