// The port file: where a running tandemd tells scripts and tests which addresses it listens on
// (the ports it got when asked for port 0). It only writes, reads and removes that one file.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem::server {

// The addresses a running server listens on, ports resolved; empty for a listener that is off.
struct BoundAddresses {
  std::string listen;          // Indexer (and health, reflection).
  std::string admin_listen;    // Admin.
  std::string metrics_listen;  // Prometheus /metrics.

  bool operator==(const BoundAddresses&) const = default;
};

// The file's text: one `name=host:port` line per listener, named after its flag, in the order
// listen, admin_listen, metrics_listen; a listener that is off has an empty value:
//   listen=127.0.0.1:40123
//   admin_listen=127.0.0.1:40124
//   metrics_listen=
std::string FormatPortFile(const BoundAddresses& addresses);

// Parses FormatPortFile's text. INVALID_ARGUMENT naming the line when a line is not
// `name=value`, names none of the three, or a name repeats. Missing names stay empty.
absl::StatusOr<BoundAddresses> ParsePortFile(absl::string_view text);

// Writes the file atomically (a temporary file in the same folder, then rename), so a reader that
// sees the file sees all of it: its existence means every listener is up. UNAVAILABLE naming the
// path when it cannot be written.
absl::Status WritePortFile(const std::string& path, const BoundAddresses& addresses);

// Removes the file if it exists (a missing file is OK). UNAVAILABLE when it cannot be removed.
absl::Status RemovePortFile(const std::string& path);

}  // namespace tandem::server
