// A client of a chain node's JSON-RPC in Bitcoin Core's dialect (bitcoind, litecoind and their
// forks): the few calls tandem-follow needs, over HTTP with libcurl and JSON with nlohmann-json.
// It never writes to the node and never parses HTTP or JSON by hand.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

typedef void CURL;

namespace tandem::follow {

struct NodeRpcOptions {
  // The node's RPC endpoint, e.g. http://127.0.0.1:8332/ (bitcoind mainnet), :9332 (litecoind).
  std::string url;
  // Credentials: a user and password (rpcuser / rpcpassword or an rpcauth entry) or the node's
  // cookie file (`<datadir>/.cookie`), which is read again for every request because the node
  // writes a new one whenever it starts.
  std::string user;
  std::string password;
  std::string cookie_path;
  // The deadline of one HTTP request (connecting included).
  absl::Duration timeout = absl::Seconds(30);
};

// What a failed call returns. The code says what the caller should do; the message is for people
// and names the node, the call and the node's own message:
//   UNAVAILABLE        the node cannot be reached, is starting up (RPC_IN_WARMUP), answered an
//                      HTTP error without a JSON-RPC body (e.g. 503, work queue full), or its
//                      cookie file cannot be read (not started yet): try again later.
//   DEADLINE_EXCEEDED  no answer within NodeRpcOptions::timeout: try again later.
//   UNAUTHENTICATED    HTTP 401: the node refused the credentials.
//   PERMISSION_DENIED  HTTP 403 (rpcallowip, rpcwhitelist).
//   OUT_OF_RANGE       getblockhash of a height above the node's tip.
//   NOT_FOUND          no such block (RPC_INVALID_ADDRESS_OR_KEY).
//   UNIMPLEMENTED      no such method: not a Bitcoin Core-compatible node.
//   INTERNAL           an answer that is not the JSON-RPC the call expects.
//   UNKNOWN            any other JSON-RPC error (its code and message are in the text).
//
// Threading: one thread at a time (it owns one libcurl handle, whose connection it keeps alive
// between calls). Make one NodeRpc per thread. curl_global_init must have run before the first
// NodeRpc is made (main does it).
class NodeRpc {
 public:
  explicit NodeRpc(NodeRpcOptions options);
  ~NodeRpc();
  NodeRpc(const NodeRpc&) = delete;
  NodeRpc& operator=(const NodeRpc&) = delete;

  // The height of the node's best chain (getblockcount).
  absl::StatusOr<int64_t> GetBlockCount();
  // The hash of the node's best block, internal byte order (getbestblockhash).
  absl::StatusOr<std::string> GetBestBlockHash();
  // The hashes of heights first .. first+count-1 on the node's best chain, internal byte order,
  // in one batched request. OUT_OF_RANGE when one of them is above the node's tip.
  absl::StatusOr<std::vector<std::string>> GetBlockHashes(int64_t first, int64_t count);
  // The serialized blocks with these hashes (internal order), in one batched request of
  // `getblock <hash> 0`. NOT_FOUND when the node does not have one (pruned, or never seen).
  absl::StatusOr<std::vector<std::string>> GetRawBlocks(const std::vector<std::string>& hashes);

  const NodeRpcOptions& options() const { return options_; }

 private:
  using Call = std::pair<std::string, nlohmann::json>;  // method, params
  // Runs the calls as one JSON-RPC batch and returns their results in order, or the first error.
  absl::StatusOr<std::vector<nlohmann::json>> CallBatch(const std::vector<Call>& calls);
  // One call (not batched: nodes answer single calls with HTTP 500 and a JSON body on errors).
  absl::StatusOr<nlohmann::json> CallOne(const std::string& method, nlohmann::json params);
  // POSTs `body`; returns the HTTP status and sets `response` (the body).
  absl::StatusOr<long> Post(const std::string& body, std::string* response);
  absl::StatusOr<std::string> UserPassword() const;

  const NodeRpcOptions options_;
  CURL* const curl_;
  // The socket of curl_'s connection to the node, kept by libcurl's open and close callbacks;
  // -1 (CURL_SOCKET_BAD) when there is none. Post uses it to acknowledge answers at once.
  int socket_ = -1;
  int64_t next_id_ = 1;
};

}  // namespace tandem::follow
