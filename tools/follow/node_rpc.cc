// JSON-RPC calls to a Bitcoin Core-compatible node, over libcurl, with nlohmann-json. Every
// transport and JSON-RPC failure becomes an absl::Status here, and nowhere else.
#include "tools/follow/node_rpc.h"

#include <curl/curl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <type_traits>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tools/follow/chain_hash.h"

namespace tandem::follow {
namespace {

using nlohmann::json;

// Bitcoin Core's JSON-RPC error codes (src/rpc/protocol.h) that change what the caller does.
constexpr int kRpcInWarmup = -28;
constexpr int kRpcInvalidParameter = -8;
constexpr int kRpcInvalidAddressOrKey = -5;
constexpr int kRpcMethodNotFound = -32601;

// The longest answer accepted: a raw block is at most 4 MB (8 MB of hex) on Bitcoin; a batch of
// blocks is bounded by the follower's batch size. Past this, the node is not what we think.
constexpr size_t kMaxResponseBytes = size_t{1} << 30;

static_assert(std::is_same_v<curl_socket_t, int>, "NodeRpc::socket_ holds a curl_socket_t");

// Where libcurl writes an answer, and the socket it arrives on (NodeRpc::socket_).
struct Receiver {
  std::string* body;
  const curl_socket_t* socket;
};

size_t AppendBody(char* data, size_t size, size_t count, void* user) {
  auto* receiver = static_cast<Receiver*>(user);
  std::string* body = receiver->body;
  const size_t bytes = size * count;
  if (body->size() + bytes > kMaxResponseBytes) return 0;  // Makes curl fail the transfer.
  body->append(data, bytes);
  // Acknowledge what was read at once instead of after the delayed-ACK timeout (40 ms on Linux).
  // The node's HTTP server (libevent, no TCP_NODELAY) writes an answer in chunks of 16 KB, and
  // Nagle holds the next chunk until the previous one is acknowledged; this client, having just
  // sent its request, delays that ACK. So an answer a little over 16 KB stalled ~40 ms: a --batch
  // of 32 regtest blocks (about 23 KB of hex) made a catch-up 2.5 times slower than 16. The
  // kernel leaves quick-ACK mode by itself when the next request goes out, hence every chunk.
#ifdef TCP_QUICKACK
  if (*receiver->socket != CURL_SOCKET_BAD) {
    const int on = 1;
    setsockopt(*receiver->socket, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof(on));  // A hint only.
  }
#endif
  return bytes;
}

// libcurl's socket callbacks: they keep NodeRpc::socket_ the connection's socket (or none).
int SocketOpened(void* user, curl_socket_t socket, curlsocktype /*purpose*/) {
  *static_cast<curl_socket_t*>(user) = socket;
  return CURL_SOCKOPT_OK;
}

int SocketClosing(void* user, curl_socket_t socket) {
  auto* current = static_cast<curl_socket_t*>(user);
  if (*current == socket) *current = CURL_SOCKET_BAD;
  return close(socket);
}

// The status for a JSON-RPC error object of `method`.
absl::Status RpcErrorStatus(const std::string& method, const json& error) {
  int code = 0;
  std::string message = "(no message)";
  if (error.is_object()) {
    if (auto it = error.find("code"); it != error.end() && it->is_number_integer()) {
      code = it->get<int>();
    }
    if (auto it = error.find("message"); it != error.end() && it->is_string()) {
      message = it->get<std::string>();
    }
  }
  const std::string text = absl::StrCat(method, ": node error ", code, ": ", message);
  switch (code) {
    case kRpcInWarmup:
      return absl::UnavailableError(text);
    case kRpcInvalidParameter:
      if (method == "getblockhash") return absl::OutOfRangeError(text);
      return absl::InvalidArgumentError(text);
    case kRpcInvalidAddressOrKey:
      return absl::NotFoundError(text);
    case kRpcMethodNotFound:
      return absl::UnimplementedError(
          absl::StrCat(text, " (is this a Bitcoin Core-compatible node?)"));
    default:
      return absl::UnknownError(text);
  }
}

// The result of one JSON-RPC reply object, moved out of it (a raw block is megabytes of hex).
absl::StatusOr<json> ReplyResult(const std::string& method, json&& reply) {
  if (!reply.is_object()) {
    return absl::InternalError(absl::StrCat(method, ": the reply is not a JSON object"));
  }
  if (auto error = reply.find("error"); error != reply.end() && !error->is_null()) {
    return RpcErrorStatus(method, *error);
  }
  auto result = reply.find("result");
  if (result == reply.end()) {
    return absl::InternalError(absl::StrCat(method, ": the reply has no result"));
  }
  return std::move(*result);
}

absl::StatusOr<std::string> ResultString(const std::string& method,
                                         const absl::StatusOr<json>& result) {
  if (!result.ok()) return result.status();
  if (!result->is_string()) {
    return absl::InternalError(absl::StrCat(method, ": the result is not a string"));
  }
  return result->get<std::string>();
}

}  // namespace

NodeRpc::NodeRpc(NodeRpcOptions options) : options_(std::move(options)), curl_(curl_easy_init()) {
  if (curl_ == nullptr) return;
  curl_easy_setopt(curl_, CURLOPT_SOCKOPTFUNCTION, SocketOpened);
  curl_easy_setopt(curl_, CURLOPT_SOCKOPTDATA, &socket_);
  curl_easy_setopt(curl_, CURLOPT_CLOSESOCKETFUNCTION, SocketClosing);
  curl_easy_setopt(curl_, CURLOPT_CLOSESOCKETDATA, &socket_);
}

NodeRpc::~NodeRpc() {
  if (curl_ != nullptr) curl_easy_cleanup(curl_);
}

absl::StatusOr<std::string> NodeRpc::UserPassword() const {
  if (options_.cookie_path.empty()) return absl::StrCat(options_.user, ":", options_.password);
  std::ifstream in(options_.cookie_path);
  std::stringstream text;
  if (!in.good() || !(text << in.rdbuf())) {
    return absl::UnavailableError(absl::StrCat("cannot read the node's cookie file '",
                                               options_.cookie_path,
                                               "' (is the node running, with this datadir?)"));
  }
  std::string cookie(absl::StripAsciiWhitespace(text.str()));
  if (cookie.find(':') == std::string::npos) {
    return absl::UnauthenticatedError(
        absl::StrCat("the cookie file '", options_.cookie_path, "' holds no user:password"));
  }
  return cookie;
}

absl::StatusOr<long> NodeRpc::Post(const std::string& body, std::string* response) {
  if (curl_ == nullptr) return absl::InternalError("libcurl could not make a handle");
  absl::StatusOr<std::string> user_password = UserPassword();
  if (!user_password.ok()) return user_password.status();

  char error_buffer[CURL_ERROR_SIZE] = {0};
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  const long timeout_ms = static_cast<long>(absl::ToInt64Milliseconds(options_.timeout));
  response->clear();
  curl_easy_setopt(curl_, CURLOPT_URL, options_.url.c_str());
  curl_easy_setopt(curl_, CURLOPT_POST, 1L);
  curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl_, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
  curl_easy_setopt(curl_, CURLOPT_USERPWD, user_password->c_str());
  curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, AppendBody);
  Receiver receiver{response, &socket_};
  curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &receiver);
  curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT_MS, std::min(timeout_ms, 10'000L));
  curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);  // Timeouts without SIGALRM: threads are safe.
  curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, error_buffer);
  const CURLcode code = curl_easy_perform(curl_);
  curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(curl_, CURLOPT_USERPWD, nullptr);
  curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, nullptr);
  curl_easy_setopt(curl_, CURLOPT_WRITEDATA, nullptr);
  curl_slist_free_all(headers);
  if (code != CURLE_OK) {
    const std::string why = error_buffer[0] != 0 ? error_buffer : curl_easy_strerror(code);
    const std::string text = absl::StrCat("node at ", options_.url, ": ", why);
    if (code == CURLE_OPERATION_TIMEDOUT) return absl::DeadlineExceededError(text);
    return absl::UnavailableError(text);
  }
  long http_status = 0;
  curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &http_status);
  if (http_status == 401) {
    return absl::UnauthenticatedError(absl::StrCat(
        "the node at ", options_.url, " refused the RPC credentials (HTTP 401)",
        options_.cookie_path.empty() ? "" : absl::StrCat("; cookie ", options_.cookie_path)));
  }
  if (http_status == 403) {
    return absl::PermissionDeniedError(
        absl::StrCat("the node at ", options_.url, " forbids this client (HTTP 403: rpcallowip?)"));
  }
  return http_status;
}

absl::StatusOr<json> NodeRpc::CallOne(const std::string& method, json params) {
  json request = {{"jsonrpc", "1.0"}, {"id", next_id_++}, {"method", method}, {"params", params}};
  std::string body;
  absl::StatusOr<long> http_status = Post(request.dump(), &body);
  if (!http_status.ok()) return http_status.status();
  json reply = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (reply.is_discarded()) {
    // Errors of the HTTP server itself (503 when the work queue is full, 500 while shutting
    // down) come without a JSON-RPC body.
    return absl::UnavailableError(absl::StrCat("node at ", options_.url, ": HTTP ", *http_status,
                                               " without a JSON-RPC answer to ", method));
  }
  return ReplyResult(method, std::move(reply));
}

absl::StatusOr<std::vector<json>> NodeRpc::CallBatch(const std::vector<Call>& calls) {
  if (calls.empty()) return std::vector<json>{};
  const int64_t first_id = next_id_;
  json request = json::array();
  for (const auto& [method, params] : calls) {
    request.push_back(
        {{"jsonrpc", "1.0"}, {"id", next_id_++}, {"method", method}, {"params", params}});
  }
  std::string body;
  absl::StatusOr<long> http_status = Post(request.dump(), &body);
  if (!http_status.ok()) return http_status.status();
  json reply = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (reply.is_discarded() || !reply.is_array()) {
    if (reply.is_object()) return ReplyResult(calls.front().first, std::move(reply)).status();
    return absl::UnavailableError(absl::StrCat("node at ", options_.url, ": HTTP ", *http_status,
                                               " without a JSON-RPC answer to a batch of ",
                                               calls.size(), " calls"));
  }
  // Replies may come in any order: match them to the calls by id.
  std::vector<json*> by_call(calls.size(), nullptr);
  for (json& item : reply) {
    if (!item.is_object()) continue;
    auto id = item.find("id");
    if (id == item.end() || !id->is_number_integer()) continue;
    const int64_t index = id->get<int64_t>() - first_id;
    if (index >= 0 && index < static_cast<int64_t>(calls.size())) by_call[index] = &item;
  }
  std::vector<json> results;
  results.reserve(calls.size());
  for (size_t i = 0; i < calls.size(); ++i) {
    if (by_call[i] == nullptr) {
      return absl::InternalError(
          absl::StrCat(calls[i].first, ": the node's batch reply lacks call ", i));
    }
    absl::StatusOr<json> result = ReplyResult(calls[i].first, std::move(*by_call[i]));
    if (!result.ok()) return result.status();
    results.push_back(*std::move(result));
  }
  return results;
}

absl::StatusOr<int64_t> NodeRpc::GetBlockCount() {
  absl::StatusOr<json> result = CallOne("getblockcount", json::array());
  if (!result.ok()) return result.status();
  if (!result->is_number_integer() || result->get<int64_t>() < 0) {
    return absl::InternalError("getblockcount: the result is not a height");
  }
  return result->get<int64_t>();
}

absl::StatusOr<std::string> NodeRpc::GetBestBlockHash() {
  absl::StatusOr<std::string> hex =
      ResultString("getbestblockhash", CallOne("getbestblockhash", json::array()));
  if (!hex.ok()) return hex.status();
  absl::StatusOr<std::string> hash = HashFromDisplayHex(*hex);
  if (!hash.ok())
    return absl::InternalError(absl::StrCat("getbestblockhash: ", hash.status().message()));
  return hash;
}

absl::StatusOr<std::vector<std::string>> NodeRpc::GetBlockHashes(int64_t first, int64_t count) {
  std::vector<Call> calls;
  for (int64_t height = first; height < first + count; ++height) {
    calls.emplace_back("getblockhash", json::array({height}));
  }
  absl::StatusOr<std::vector<json>> results = CallBatch(calls);
  if (!results.ok()) return results.status();
  std::vector<std::string> hashes;
  for (const json& result : *results) {
    absl::StatusOr<std::string> hex = ResultString("getblockhash", result);
    if (!hex.ok()) return hex.status();
    absl::StatusOr<std::string> hash = HashFromDisplayHex(*hex);
    if (!hash.ok())
      return absl::InternalError(absl::StrCat("getblockhash: ", hash.status().message()));
    hashes.push_back(*std::move(hash));
  }
  return hashes;
}

absl::StatusOr<std::vector<std::string>> NodeRpc::GetRawBlocks(
    const std::vector<std::string>& hashes) {
  std::vector<Call> calls;
  for (const std::string& hash : hashes) {
    calls.emplace_back("getblock", json::array({DisplayHex(hash), 0}));
  }
  absl::StatusOr<std::vector<json>> results = CallBatch(calls);
  if (!results.ok()) return results.status();
  std::vector<std::string> blocks;
  for (size_t i = 0; i < results->size(); ++i) {
    const json& hex = (*results)[i];
    if (!hex.is_string()) return absl::InternalError("getblock: the result is not a string");
    absl::StatusOr<std::string> bytes = DecodeHex(hex.get_ref<const std::string&>());
    if (!bytes.ok()) {
      return absl::InternalError(
          absl::StrCat("getblock ", DisplayHex(hashes[i]), ": ", bytes.status().message()));
    }
    blocks.push_back(*std::move(bytes));
  }
  return blocks;
}

}  // namespace tandem::follow
