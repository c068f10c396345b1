// Finds out, before the servers start, whether an address can be listened on, and why not: the
// gRPC and civetweb servers only say that they could not. It binds a probe socket and releases it
// at once; it never holds a port.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tandem::server {

// OK when a TCP socket can bind `address` (host:port, the host a name, an IPv4 address or a
// bracketed IPv6 address; port 0 always can). Otherwise UNAVAILABLE naming `flag`, the address and
// the system's reason: "cannot listen on --listen=127.0.0.1:50051: Address already in use".
// INVALID_ARGUMENT when `address` is not host:port or the host does not resolve.
absl::Status CheckCanListen(absl::string_view flag, absl::string_view address);

}  // namespace tandem::server
