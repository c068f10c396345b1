// A client's connection to one tandemd listener.
#include "tools/client/connection.h"

#include <chrono>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tandem::client {
namespace {

std::shared_ptr<grpc::Channel> MakeChannel(const ConnectionOptions& options) {
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(options.max_message_bytes);
  arguments.SetMaxSendMessageSize(options.max_message_bytes);
  if (options.own_connection) arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!options.tls_ca_pem.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_ca_pem;
    credentials = grpc::SslCredentials(ssl);
    if (!options.tls_server_name.empty()) {
      arguments.SetSslTargetNameOverride(options.tls_server_name);
    }
  }
  return grpc::CreateCustomChannel(options.address, credentials, arguments);
}

}  // namespace

absl::StatusOr<std::string> ReadTlsCa(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream pem;
  if (!in.good() || !(pem << in.rdbuf())) {
    return absl::NotFoundError(absl::StrCat("cannot read the TLS CA file '", path, "'"));
  }
  if (!absl::StrContains(pem.str(), "-----BEGIN CERTIFICATE-----")) {
    return absl::InvalidArgumentError(
        absl::StrCat("the TLS CA file '", path, "' holds no PEM certificate"));
  }
  return pem.str();
}

Connection::Connection(ConnectionOptions options)
    : options_(std::move(options)),
      channel_(MakeChannel(options_)),
      indexer_(tandem::v1::Indexer::NewStub(channel_)),
      admin_(tandem::v1::Admin::NewStub(channel_)) {}

std::unique_ptr<grpc::ClientContext> Connection::StreamContext() const {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!options_.token.empty()) {
    context->AddMetadata("authorization", absl::StrCat("Bearer ", options_.token));
  }
  return context;
}

std::unique_ptr<grpc::ClientContext> Connection::UnaryContext(absl::Duration timeout) const {
  std::unique_ptr<grpc::ClientContext> context = StreamContext();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return context;
}

std::unique_ptr<grpc::ClientContext> Connection::UnaryContext() const {
  return UnaryContext(options_.call_timeout);
}

}  // namespace tandem::client
