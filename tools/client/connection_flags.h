// The command-line flags every tandem client shares to reach a server: TLS (--tls_ca,
// --tls_server_name) and the deadline of unary calls (--timeout). Addresses and tokens stay with
// each tool, since tools reach different listeners as different principals.
#pragma once

#include <string>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tools/client/connection.h"

ABSL_DECLARE_FLAG(std::string, tls_ca);
ABSL_DECLARE_FLAG(std::string, tls_server_name);
ABSL_DECLARE_FLAG(absl::Duration, timeout);

namespace tandem::client {

// The path of the file that defines the shared flags, for util::CommandLineOptions's
// help_flag_files (so --help lists them beside the tool's own).
inline constexpr char kConnectionFlagsFile[] = "tools/client/connection_flags.cc";

// Checks the shared flags' values: INVALID_ARGUMENT naming the flag when one is out of range (a
// usage error), OK otherwise. It reads no file.
absl::Status ValidateConnectionFlags();

// Options to reach `address` with `token`, with TLS and the timeout from the shared flags.
// Returns ReadTlsCa's error when --tls_ca cannot be used.
// REQUIRES: ValidateConnectionFlags() is OK.
absl::StatusOr<ConnectionOptions> ConnectionOptionsFromFlags(std::string address,
                                                             std::string token);

}  // namespace tandem::client
