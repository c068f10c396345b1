// The identity of this tandemd, from compile definitions (server/CMakeLists.txt), V8 and the
// module's bytes.
#include "server/build_info.h"

#include "absl/strings/escaping.h"
#include "engine/platform.h"
#include "store/state_root.h"

#ifndef TANDEM_VERSION
#error "TANDEM_VERSION must be defined (server/CMakeLists.txt)"
#endif
#ifndef TANDEM_GIT_COMMIT
#error "TANDEM_GIT_COMMIT must be defined (server/CMakeLists.txt)"
#endif

namespace tandem::server {

BuildInfo CurrentBuildInfo(std::string_view module_bytes) {
  BuildInfo info;
  info.version = TANDEM_VERSION;
  info.git_commit = TANDEM_GIT_COMMIT;
  info.v8_version = engine::V8Version();
  info.module_sha256 = absl::BytesToHexString(store::Sha256(module_bytes));
  return info;
}

}  // namespace tandem::server
