// Who may call what: bearer-token checks for the gRPC services, and the split between readers and
// writers of the Indexer. It only compares metadata and addresses; it never logs a token.
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/status.h"

namespace tandem::server {

// Returns OK when `expected` is empty (no token required) or `authorization` is exactly
// `Bearer <expected>`; otherwise UNAUTHENTICATED ("missing token" / "wrong token"). The comparison
// takes the same time wherever the tokens differ.
grpc::Status CheckBearerToken(absl::string_view authorization, absl::string_view expected);

// The same, reading the call's `authorization` metadata (absent counts as empty).
grpc::Status CheckBearerToken(const grpc::ServerContextBase& context, absl::string_view expected);

// Readers and writers of the Indexer are different principals. Readers call View, GetTip and
// GetBlock; writers call SubmitBlock, StreamBlocks and Rollback, which can erase or fork the chain.
//   - With an ingest token, a write needs `Bearer <ingest_token>`; the read token is refused
//     (PERMISSION_DENIED), a missing or unknown one is UNAUTHENTICATED. The ingest token also
//     reads: a writer may check the tip it writes to.
//   - Without one, writes are accepted only on a listener that other hosts cannot reach (a
//     loopback address), under the read token when there is one: a public read endpoint
//     (--listen=0.0.0.0:...) never accepts writes unless the operator gave writers a token.
//   - Reads need the read token when there is one (or the ingest token); otherwise anyone reads.
struct IndexerAccess {
  std::string read_token;    // tandemd --token; empty: reads are public.
  std::string ingest_token;  // tandemd --ingest_token; empty: none.
  // Whether the listener is reachable only from this host (IsLoopbackAddress of --listen).
  bool local_listener = true;
};

// OK, or UNAUTHENTICATED ("missing token" / "wrong token").
grpc::Status CheckReader(const grpc::ServerContextBase& context, const IndexerAccess& access);
// OK, UNAUTHENTICATED (missing or unknown token) or PERMISSION_DENIED (a read token, or no ingest
// token configured on a listener other hosts can reach), each message saying what writes need.
grpc::Status CheckWriter(const grpc::ServerContextBase& context, const IndexerAccess& access);
// The same decisions on an `authorization` value, for tests.
grpc::Status CheckReader(absl::string_view authorization, const IndexerAccess& access);
grpc::Status CheckWriter(absl::string_view authorization, const IndexerAccess& access);

// Whether a listen address `host:port` (or `unix:path`) is reachable from this host only:
// localhost, 127.0.0.0/8, [::1] or a Unix socket. 0.0.0.0, [::], other addresses and names: no.
bool IsLoopbackAddress(absl::string_view address);

}  // namespace tandem::server
