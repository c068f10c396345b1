// A client's connection to one tandemd listener: the channel (plaintext or TLS), the bearer token
// and the deadline every call carries. Shared by tandemctl, tandem-bench, tandem-compare and
// tandem-follow; it speaks only the generated tandem.v1 client and never links the server.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "tandem/v1/tandem.grpc.pb.h"

namespace tandem::client {

struct ConnectionOptions {
  // host:port of the listener (tandemd --listen or --admin_listen).
  std::string address;
  // Sent as `authorization: Bearer <token>` with every call; empty: no authorization metadata.
  std::string token;
  // PEM of the CA (or self-signed certificate) to trust. Empty: plaintext; otherwise TLS.
  std::string tls_ca_pem;
  // The name to verify in the server's certificate when it differs from the address's host.
  std::string tls_server_name;
  // The deadline of unary calls made with UnaryContext().
  absl::Duration call_timeout = absl::Seconds(60);
  // The largest message received or sent; -1 lets the server's own limit decide.
  int max_message_bytes = -1;
  // A TCP connection of this channel's own. gRPC otherwise shares one connection among the
  // channels of a process to the same address; load tools that stand for separate clients set it.
  bool own_connection = false;
};

// Reads a PEM file for ConnectionOptions::tls_ca_pem. Returns NOT_FOUND naming the path when it
// cannot be read, INVALID_ARGUMENT when it holds no PEM certificate.
absl::StatusOr<std::string> ReadTlsCa(const std::string& path);

// One channel to one listener, with stubs of both services (which of them the listener serves is
// the server's choice: Admin answers UNIMPLEMENTED on a listener without it).
//
// Threading: thread-safe. The stubs are gRPC's (safe for concurrent calls); the contexts it makes
// belong to the caller, one per call.
class Connection {
 public:
  // Creates the channel. It connects lazily, on the first call: an unreachable address shows up as
  // UNAVAILABLE (or DEADLINE_EXCEEDED) from that call, not here.
  explicit Connection(ConnectionOptions options);

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  tandem::v1::Indexer::Stub& indexer() { return *indexer_; }
  tandem::v1::Admin::Stub& admin() { return *admin_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  const ConnectionOptions& options() const { return options_; }

  // A context for one unary call: the token, and a deadline of `call_timeout` from now.
  std::unique_ptr<grpc::ClientContext> UnaryContext() const;
  // The same with another deadline (a call that waits on purpose, like Admin.Swap).
  std::unique_ptr<grpc::ClientContext> UnaryContext(absl::Duration timeout) const;
  // A context for a stream that may stay open as long as the caller wants (StreamBlocks,
  // WatchEvents): the token and no deadline. End it with TryCancel() or by finishing the stream.
  std::unique_ptr<grpc::ClientContext> StreamContext() const;

 private:
  const ConnectionOptions options_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<tandem::v1::Indexer::Stub> indexer_;
  const std::unique_ptr<tandem::v1::Admin::Stub> admin_;
};

}  // namespace tandem::client
