// The command-line flags every tandem client shares to reach a server.
#include "tools/client/connection_flags.h"

#include <utility>

#include "absl/flags/flag.h"
#include "absl/status/status.h"

ABSL_FLAG(std::string, tls_ca, "",
          "PEM file of the CA (or self-signed certificate) that signed tandemd's --tls_cert; "
          "turns TLS on. Default: plaintext.");
ABSL_FLAG(std::string, tls_server_name, "",
          "The name to verify in the server's certificate, when it differs from the address's "
          "host (e.g. the certificate names `localhost` and the address is 127.0.0.1).");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(60),
          "Deadline of each unary call (e.g. 5s, 1m); past it the call fails with "
          "DEADLINE_EXCEEDED.");

namespace tandem::client {

absl::Status ValidateConnectionFlags() {
  if (absl::GetFlag(FLAGS_timeout) <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--timeout must be positive");
  }
  if (absl::GetFlag(FLAGS_tls_ca).empty() && !absl::GetFlag(FLAGS_tls_server_name).empty()) {
    return absl::InvalidArgumentError("--tls_server_name needs --tls_ca (TLS)");
  }
  return absl::OkStatus();
}

absl::StatusOr<ConnectionOptions> ConnectionOptionsFromFlags(std::string address,
                                                             std::string token) {
  ConnectionOptions options;
  options.address = std::move(address);
  options.token = std::move(token);
  options.call_timeout = absl::GetFlag(FLAGS_timeout);
  if (const std::string path = absl::GetFlag(FLAGS_tls_ca); !path.empty()) {
    absl::StatusOr<std::string> pem = ReadTlsCa(path);
    if (!pem.ok()) return pem.status();
    options.tls_ca_pem = *std::move(pem);
    options.tls_server_name = absl::GetFlag(FLAGS_tls_server_name);
  }
  return options;
}

}  // namespace tandem::client
