// The identity of this tandemd: its version and commit, the V8 it runs, and its guest module.
// Read once at start for tandem_build_info; it decides nothing.
#pragma once

#include <string_view>

#include "server/metrics.h"

namespace tandem::server {

// tandem's version and git commit (fixed when the build was configured), V8's version, and the
// SHA-256 of `module_bytes` in lower-case hex.
// REQUIRES: `module_bytes` are the guest module the process serves.
BuildInfo CurrentBuildInfo(std::string_view module_bytes);

}  // namespace tandem::server
