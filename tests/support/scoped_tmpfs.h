// A tmpfs mounted for a test's lifetime: a file system that really fills up or really refuses
// writes, for tests of what the store does when the disk fails. Test-only.
#pragma once

#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

namespace tandem::testing {

// A tmpfs mounted on a fresh folder (`size=...` in `options`, MS_RDONLY in `flags`), unmounted with
// the object: not a permission bit, which root ignores. Mounting needs CAP_SYS_ADMIN; tests that
// cannot mount skip (mounted() is false, error() says why).
class ScopedTmpfs {
 public:
  ScopedTmpfs(const std::filesystem::path& where, const std::string& options, unsigned long flags)
      : where_(where) {
    std::filesystem::create_directories(where_);
    if (::mount("tandem-test", where_.c_str(), "tmpfs", flags, options.c_str()) == 0) {
      mounted_ = true;
    } else {
      error_ = std::strerror(errno);
    }
  }
  ~ScopedTmpfs() {
    if (mounted_) ::umount2(where_.c_str(), MNT_DETACH);
  }
  ScopedTmpfs(const ScopedTmpfs&) = delete;
  ScopedTmpfs& operator=(const ScopedTmpfs&) = delete;

  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }

 private:
  std::filesystem::path where_;
  bool mounted_ = false;
  std::string error_;
};

}  // namespace tandem::testing
