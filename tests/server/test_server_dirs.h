// A scratch folder for tests that do not link the server library. Test-only.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace tandem::server::testing {

// A fresh temporary folder, removed with the object.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "tandem-proc-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace tandem::server::testing
