// tandemctl: the operators' command line for tandemd. It speaks only gRPC (the generated tandem.v1
// client); it never links the server, the engine or the store.
//
// Usage: tandemctl [flags] <command> [arguments]; `tandemctl --help` lists everything.
// Exit status: 0 success; 1 the server answered with an error or could not be reached (the gRPC
// status is printed); 2 usage error (unknown command or flag, bad value); 3 input error (a file
// that cannot be read, a line that is not hex).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "tandem/v1/tandem.grpc.pb.h"

ABSL_FLAG(std::string, addr, "127.0.0.1:50051", "Address of tandemd's public listener (Indexer).");
ABSL_FLAG(std::string, admin_addr, "127.0.0.1:50052",
          "Address of tandemd's admin listener (status, swap, watch, init).");
ABSL_FLAG(std::string, token, "", "Bearer token sent with every call (tandemd --token).");
ABSL_FLAG(std::string, admin_token, "",
          "Bearer token for Admin calls (tandemd --admin_token); default: --token.");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM file of the CA (or self-signed certificate) to trust; turns TLS on.");
ABSL_FLAG(std::string, tls_server_name, "",
          "Name to verify in the server's certificate, when it differs from the address's host.");
ABSL_FLAG(bool, json, false, "Print one JSON object per result (scripts) instead of text.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(60),
          "Deadline of each unary call (status, swap, init, view, tip, block, rollback).");
// submit
ABSL_FLAG(bool, raw, false,
          "submit: each FILE holds one raw block (default: one hex block per line).");
ABSL_FLAG(int64_t, start_height, -1,
          "submit: height of the first block (default: the tip + 1; required on an empty store).");
ABSL_FLAG(bool, progress, true, "submit: report progress on stderr about once a second.");
// view
ABSL_FLAG(int64_t, height, -1, "view: the height to answer at (default: the tip).");
ABSL_FLAG(std::string, request_hex, "", "view: the request bytes, in hex.");
ABSL_FLAG(std::string, request, "", "view: the request bytes, as text.");
// init
ABSL_FLAG(std::string, payload_hex, "", "init: the payload, in hex.");
ABSL_FLAG(std::string, payload, "", "init: the payload, as text.");
// swap
ABSL_FLAG(absl::Duration, wait, absl::Seconds(10), "swap: how long to wait for a READY standby.");
// watch
ABSL_FLAG(int64_t, count, 0, "watch: stop after this many events (0: until interrupted).");

namespace tandem::tools {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitRpc = 1;
constexpr int kExitUsage = 2;
constexpr int kExitInput = 3;

constexpr char kUsage[] =
    "operates a tandemd server.\n"
    "Usage: tandemctl [flags] <command> [arguments]\n"
    "Commands:\n"
    "  status                 both instances, policy, tip, replay log (Admin.Status)\n"
    "  swap [--wait=10s]      publish the standby as the active (Admin.Swap)\n"
    "  watch [--count=N]      stream the pair's events (Admin.WatchEvents)\n"
    "  init NAME [--payload=TEXT | --payload_hex=HEX]\n"
    "                         run an init call and record it in the replay log\n"
    "  submit [FILE...|-] [--raw] [--start_height=H]\n"
    "                         stream blocks (one hex block per line; --raw: one raw block per\n"
    "                         file; no FILE or '-': stdin) through Indexer.StreamBlocks\n"
    "  view NAME [--height=H] [--request=TEXT | --request_hex=HEX]\n"
    "                         call a view export; prints the answer in hex\n"
    "  tip                    the committed tip\n"
    "  block HEIGHT           hash and state root of a committed height\n"
    "  rollback HEIGHT        undo every height above HEIGHT\n"
    "Exit status: 0 ok, 1 the server refused or could not be reached, 2 usage error, 3 input "
    "error.";

// abseil exits with status 1 on a flag it cannot parse, and after --help; tandemctl promises 2
// for usage errors and 0 for help, so while parsing an exit handler replaces the status.
std::atomic<int> exit_status_while_parsing{-1};
void ExitWithParsingStatus() {
  int status = exit_status_while_parsing.load();
  if (status < 0) return;
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(status);
}

int UsageError(absl::string_view message) {
  std::cerr << "tandemctl: " << message << " (see --help)\n";
  return kExitUsage;
}

std::string Hex(absl::string_view bytes) { return absl::BytesToHexString(bytes); }

// JSON string literal.
std::string Quote(absl::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (c < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  return out + "\"";
}

std::string FormatDuration(const google::protobuf::Duration& d) {
  return absl::FormatDuration(absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos()));
}

std::string ProtoJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

// Decodes hex; false when `text` is not an even number of hex digits.
bool DecodeHex(absl::string_view text, std::string* bytes) {
  if (text.size() % 2 != 0) return false;
  for (char c : text) {
    if (!absl::ascii_isxdigit(c)) return false;
  }
  *bytes = absl::HexStringToBytes(text);
  return true;
}

bool ReadWholeFile(const std::string& path, std::string* out) {
  if (path == "-") {
    std::stringstream buffer;
    buffer << std::cin.rdbuf();
    *out = buffer.str();
    return true;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in.good()) return false;
  std::stringstream buffer;
  buffer << in.rdbuf();
  *out = buffer.str();
  return true;
}

class Client {
 public:
  Client() {
    std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    std::string ca_path = absl::GetFlag(FLAGS_tls_ca);
    if (!ca_path.empty()) {
      std::string ca;
      if (!ReadWholeFile(ca_path, &ca)) {
        error_ = absl::StrCat("cannot read --tls_ca '", ca_path, "'");
        return;
      }
      grpc::SslCredentialsOptions options;
      options.pem_root_certs = ca;
      credentials = grpc::SslCredentials(options);
      std::string name = absl::GetFlag(FLAGS_tls_server_name);
      if (!name.empty()) args.SetSslTargetNameOverride(name);
    }
    indexer_ = tandem::v1::Indexer::NewStub(
        grpc::CreateCustomChannel(absl::GetFlag(FLAGS_addr), credentials, args));
    admin_ = tandem::v1::Admin::NewStub(
        grpc::CreateCustomChannel(absl::GetFlag(FLAGS_admin_addr), credentials, args));
  }

  const std::string& error() const { return error_; }
  tandem::v1::Indexer::Stub& indexer() { return *indexer_; }
  tandem::v1::Admin::Stub& admin() { return *admin_; }

  // A context with the token and, for unary calls, the --timeout deadline.
  std::unique_ptr<grpc::ClientContext> Context(bool admin, bool unary) {
    auto context = std::make_unique<grpc::ClientContext>();
    std::string token = absl::GetFlag(FLAGS_token);
    if (admin && !absl::GetFlag(FLAGS_admin_token).empty())
      token = absl::GetFlag(FLAGS_admin_token);
    if (!token.empty()) context->AddMetadata("authorization", absl::StrCat("Bearer ", token));
    if (unary) {
      context->set_deadline(std::chrono::system_clock::now() +
                            absl::ToChronoMilliseconds(absl::GetFlag(FLAGS_timeout)));
    }
    return context;
  }

 private:
  std::string error_;
  std::unique_ptr<tandem::v1::Indexer::Stub> indexer_;
  std::unique_ptr<tandem::v1::Admin::Stub> admin_;
};

absl::string_view CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

// Prints a failed call (text on stderr, or a JSON object on stdout) and returns kExitRpc.
int RpcError(absl::string_view what, const grpc::Status& status,
             absl::string_view extra_json = "") {
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << "{\"error\":{\"call\":" << Quote(what)
              << ",\"code\":" << Quote(CodeName(status.error_code()))
              << ",\"message\":" << Quote(status.error_message()) << "}" << extra_json << "}\n";
  } else {
    std::cerr << "tandemctl: " << what << " failed: " << CodeName(status.error_code()) << ": "
              << status.error_message() << "\n";
  }
  return kExitRpc;
}

std::string RecordJson(const tandem::v1::BlockRecord& record) {
  return absl::StrCat("{\"height\":", record.height(), ",\"hash\":", Quote(Hex(record.hash())),
                      ",\"state_root\":", Quote(Hex(record.state_root())),
                      ",\"write_count\":", record.write_count(), "}");
}

std::string RecordText(const tandem::v1::BlockRecord& record) {
  return absl::StrCat("height ", record.height(), "\n  hash        ", Hex(record.hash()),
                      "\n  state root  ", Hex(record.state_root()), "\n  writes      ",
                      record.write_count());
}

std::string SlotText(const tandem::v1::SlotStatus& slot) {
  if (!slot.present()) return "none";
  return absl::StrFormat("generation %d, memory %d bytes (%.1f%% of the cap), %d calls",
                         slot.generation(), slot.memory_bytes(), 100 * slot.memory_ratio(),
                         slot.calls_completed());
}

absl::string_view StandbyStateText(tandem::v1::StandbyState state) {
  switch (state) {
    case tandem::v1::STANDBY_STATE_EMPTY:
      return "EMPTY";
    case tandem::v1::STANDBY_STATE_WARMING:
      return "WARMING";
    case tandem::v1::STANDBY_STATE_READY:
      return "READY";
    case tandem::v1::STANDBY_STATE_FAILED:
      return "FAILED";
    default:
      return "UNSPECIFIED";
  }
}

absl::string_view PolicyText(tandem::v1::SwapPolicy policy) {
  switch (policy) {
    case tandem::v1::SWAP_POLICY_BLOCK:
      return "block";
    case tandem::v1::SWAP_POLICY_THRESHOLD:
      return "threshold";
    case tandem::v1::SWAP_POLICY_NONE:
      return "none";
    case tandem::v1::SWAP_POLICY_SYNC:
      return "sync";
    default:
      return "unspecified";
  }
}

int Status(Client& client) {
  tandem::v1::StatusResponse response;
  auto context = client.Context(/*admin=*/true, /*unary=*/true);
  grpc::Status status = client.admin().Status(context.get(), {}, &response);
  if (!status.ok()) return RpcError("status", status);
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << ProtoJson(response) << "\n";
    return kExitOk;
  }
  std::cout << absl::StrFormat("policy      %s (warm at %.0f%%, swap at %.0f%% of the cap)\n",
                               PolicyText(response.policy()), 100 * response.warm_at(),
                               100 * response.swap_at())
            << "memory cap  " << response.memory_limit_bytes() << " bytes\n"
            << "tip         "
            << (response.has_tip_height() ? absl::StrCat(response.tip_height()) : "none") << "\n"
            << "active      " << SlotText(response.active()) << "\n"
            << "standby     " << StandbyStateText(response.standby_state());
  if (response.standby().present()) std::cout << ": " << SlotText(response.standby());
  if (!response.standby_failure().empty()) std::cout << " (" << response.standby_failure() << ")";
  std::cout << "\n";
  if (response.swap_due()) std::cout << "swap due    waiting for a READY standby\n";
  std::cout << "replay log  " << response.replay_log_calls() << " calls, "
            << response.replay_log_bytes() << " bytes\n"
            << "module      " << response.module_path() << "\n";
  return kExitOk;
}

int Swap(Client& client) {
  tandem::v1::SwapRequest request;
  absl::Duration wait = absl::GetFlag(FLAGS_wait);
  request.mutable_wait()->set_seconds(absl::ToInt64Seconds(wait));
  request.mutable_wait()->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(wait - absl::Seconds(absl::ToInt64Seconds(wait)))));
  tandem::v1::SwapResponse response;
  auto context = client.Context(true, false);
  context->set_deadline(std::chrono::system_clock::now() +
                        absl::ToChronoMilliseconds(wait + absl::GetFlag(FLAGS_timeout)));
  grpc::Status status = client.admin().Swap(context.get(), request, &response);
  if (!status.ok()) return RpcError("swap", status);
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << ProtoJson(response) << "\n";
  } else {
    std::cout << "swapped generation " << response.previous_generation() << " -> "
              << response.generation() << ": waited " << FormatDuration(response.waited())
              << ", pause " << FormatDuration(response.pause()) << "\n";
  }
  return kExitOk;
}

std::string EventText(const tandem::v1::PairEvent& event) {
  std::string kind = tandem::v1::PairEvent::Kind_Name(event.kind());
  if (absl::StartsWith(kind, "KIND_")) kind = absl::AsciiStrToLower(kind.substr(5));
  absl::Time time =
      absl::FromUnixSeconds(event.time().seconds()) + absl::Nanoseconds(event.time().nanos());
  std::string text =
      absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", time, absl::UTCTimeZone()), " ", kind);
  if (event.generation() != 0) absl::StrAppend(&text, " generation ", event.generation());
  if (event.kind() == tandem::v1::PairEvent::KIND_SWAP) {
    std::string reason = tandem::v1::SwapReason_Name(event.reason());
    if (absl::StartsWith(reason, "SWAP_REASON_")) reason = absl::AsciiStrToLower(reason.substr(12));
    absl::StrAppend(&text, " (from ", event.previous_generation(), ", ", reason, ", pause ",
                    FormatDuration(event.pause()), ")");
  }
  if (event.kind() == tandem::v1::PairEvent::KIND_BLOCK_COMMITTED ||
      event.kind() == tandem::v1::PairEvent::KIND_BLOCK_FAILED ||
      event.kind() == tandem::v1::PairEvent::KIND_ROLLED_BACK) {
    absl::StrAppend(&text, " height ", event.height());
  }
  if (event.has_duration()) absl::StrAppend(&text, " in ", FormatDuration(event.duration()));
  if (!event.cause().empty()) absl::StrAppend(&text, ": ", event.cause());
  if (event.has_retry_in())
    absl::StrAppend(&text, " (retry in ", FormatDuration(event.retry_in()), ")");
  if (event.dropped_before() != 0)
    absl::StrAppend(&text, " [", event.dropped_before(), " events dropped before]");
  return text;
}

int Watch(Client& client) {
  auto context = client.Context(true, false);
  std::unique_ptr<grpc::ClientReader<tandem::v1::PairEvent>> reader =
      client.admin().WatchEvents(context.get(), {});
  int64_t limit = absl::GetFlag(FLAGS_count);
  int64_t seen = 0;
  tandem::v1::PairEvent event;
  while ((limit == 0 || seen < limit) && reader->Read(&event)) {
    ++seen;
    std::cout << (absl::GetFlag(FLAGS_json) ? ProtoJson(event) : EventText(event)) << std::endl;
  }
  if (limit != 0 && seen >= limit) {
    context->TryCancel();
    reader->Finish();
    return kExitOk;
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return RpcError("watch", status);
  return kExitOk;
}

// Returns the bytes of --<text_flag> or --<hex_flag>; false (after printing) on bad hex.
bool BytesFromFlags(absl::string_view name, const std::string& text, const std::string& hex,
                    std::string* out) {
  if (!text.empty() && !hex.empty()) {
    UsageError(absl::StrCat("give --", name, " or --", name, "_hex, not both"));
    return false;
  }
  if (!hex.empty()) {
    if (!DecodeHex(hex, out)) {
      UsageError(absl::StrCat("--", name, "_hex is not hex"));
      return false;
    }
    return true;
  }
  *out = text;
  return true;
}

int Init(Client& client, const std::vector<std::string>& args) {
  if (args.size() != 1) return UsageError("init takes one argument: the export's name");
  tandem::v1::InitializeRequest request;
  request.set_name(args[0]);
  std::string payload;
  if (!BytesFromFlags("payload", absl::GetFlag(FLAGS_payload), absl::GetFlag(FLAGS_payload_hex),
                      &payload)) {
    return kExitUsage;
  }
  request.set_payload(payload);
  tandem::v1::InitializeResponse response;
  auto context = client.Context(true, true);
  grpc::Status status = client.admin().Initialize(context.get(), request, &response);
  if (!status.ok()) return RpcError("init", status);
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << "{\"answer\":" << Quote(Hex(response.answer()))
              << ",\"digest\":" << Quote(Hex(response.digest()))
              << ",\"replay_log_calls\":" << response.replay_log_calls() << "}\n";
  } else {
    std::cout << "answer      " << Hex(response.answer()) << " (" << response.answer().size()
              << " bytes)\ndigest      " << Hex(response.digest()) << "\nreplay log  "
              << response.replay_log_calls() << " calls\n";
  }
  return kExitOk;
}

int View(Client& client, const std::vector<std::string>& args) {
  if (args.size() != 1) return UsageError("view takes one argument: the export's name");
  tandem::v1::ViewRequest request;
  request.set_name(args[0]);
  int64_t height = absl::GetFlag(FLAGS_height);
  if (height > 0xFFFFFFFFll) return UsageError("--height is larger than a u32");
  if (height >= 0) request.set_height(static_cast<uint32_t>(height));
  std::string bytes;
  if (!BytesFromFlags("request", absl::GetFlag(FLAGS_request), absl::GetFlag(FLAGS_request_hex),
                      &bytes)) {
    return kExitUsage;
  }
  request.set_request(bytes);
  tandem::v1::ViewResponse response;
  auto context = client.Context(false, true);
  grpc::Status status = client.indexer().View(context.get(), request, &response);
  if (!status.ok()) return RpcError("view", status);
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << "{\"height\":" << response.height() << ",\"generation\":" << response.generation()
              << ",\"answer\":" << Quote(Hex(response.answer())) << "}\n";
  } else {
    std::cout << "height " << response.height() << ", " << response.answer().size() << " bytes\n"
              << Hex(response.answer()) << "\n";
  }
  return kExitOk;
}

// The tip, or std::nullopt for an empty chain; `status` set on failure.
std::optional<tandem::v1::GetTipResponse> FetchTip(Client& client, grpc::Status* status) {
  tandem::v1::GetTipResponse response;
  auto context = client.Context(false, true);
  *status = client.indexer().GetTip(context.get(), {}, &response);
  if (!status->ok()) return std::nullopt;
  return response;
}

int Tip(Client& client) {
  grpc::Status status;
  std::optional<tandem::v1::GetTipResponse> response = FetchTip(client, &status);
  if (!status.ok()) return RpcError("tip", status);
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << "{\"tip\":" << (response->has_tip() ? RecordJson(response->tip()) : "null")
              << ",\"start_height\":"
              << (response->has_start_height() ? absl::StrCat(response->start_height()) : "null")
              << "}\n";
  } else if (!response->has_tip()) {
    std::cout << "no blocks committed\n";
  } else {
    std::cout << "tip " << RecordText(response->tip()) << "\n  start       "
              << response->start_height() << "\n";
  }
  return kExitOk;
}

bool ParseHeightArg(const std::vector<std::string>& args, absl::string_view command,
                    uint32_t* height) {
  if (args.size() != 1 || !absl::SimpleAtoi(args[0], height)) {
    UsageError(absl::StrCat(command, " takes one argument: a height (0..4294967295)"));
    return false;
  }
  return true;
}

int Block(Client& client, const std::vector<std::string>& args) {
  uint32_t height = 0;
  if (!ParseHeightArg(args, "block", &height)) return kExitUsage;
  tandem::v1::GetBlockRequest request;
  request.set_height(height);
  tandem::v1::GetBlockResponse response;
  auto context = client.Context(false, true);
  grpc::Status status = client.indexer().GetBlock(context.get(), request, &response);
  if (!status.ok()) return RpcError("block", status);
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << RecordJson(response.block()) << "\n";
  } else {
    std::cout << "block " << RecordText(response.block()) << "\n";
  }
  return kExitOk;
}

int Rollback(Client& client, const std::vector<std::string>& args) {
  uint32_t height = 0;
  if (!ParseHeightArg(args, "rollback", &height)) return kExitUsage;
  tandem::v1::RollbackRequest request;
  request.set_height(height);
  tandem::v1::RollbackResponse response;
  auto context = client.Context(false, true);
  grpc::Status status = client.indexer().Rollback(context.get(), request, &response);
  if (!status.ok()) return RpcError("rollback", status);
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << "{\"tip\":" << (response.has_tip() ? RecordJson(response.tip()) : "null") << "}\n";
  } else if (response.has_tip()) {
    std::cout << "rolled back; tip " << RecordText(response.tip()) << "\n";
  } else {
    std::cout << "rolled back; no blocks committed\n";
  }
  return kExitOk;
}

// Yields the blocks of the submit inputs one at a time, so a large file is never held whole.
class BlockSource {
 public:
  BlockSource(std::vector<std::string> paths, bool raw) : paths_(std::move(paths)), raw_(raw) {
    if (paths_.empty()) paths_.push_back("-");
  }

  // True with the next block in `block`; false at the end or on an error (then error() says).
  bool Next(std::string* block) {
    for (;;) {
      if (raw_) {
        if (next_path_ >= paths_.size()) return false;
        const std::string& path = paths_[next_path_++];
        if (!ReadWholeFile(path, block)) return Fail(absl::StrCat("cannot read '", path, "'"));
        return true;
      }
      if (in_ == nullptr) {
        if (next_path_ >= paths_.size()) return false;
        path_ = paths_[next_path_++];
        line_number_ = 0;
        if (path_ == "-") {
          in_ = &std::cin;
        } else {
          file_ = std::make_unique<std::ifstream>(path_);
          if (!file_->good()) return Fail(absl::StrCat("cannot read '", path_, "'"));
          in_ = file_.get();
        }
      }
      std::string line;
      if (!std::getline(*in_, line)) {
        in_ = nullptr;
        file_.reset();
        continue;
      }
      ++line_number_;
      absl::string_view text = absl::StripAsciiWhitespace(line);
      if (text.empty() || absl::StartsWith(text, "#")) continue;
      if (!DecodeHex(text, block)) {
        return Fail(absl::StrCat(path_ == "-" ? "stdin" : path_, ":", line_number_,
                                 ": not a hex block (use --raw for binary files)"));
      }
      return true;
    }
  }

  const std::string& error() const { return error_; }

 private:
  bool Fail(std::string error) {
    error_ = std::move(error);
    return false;
  }

  std::vector<std::string> paths_;
  const bool raw_;
  size_t next_path_ = 0;
  std::string path_;
  std::unique_ptr<std::ifstream> file_;
  std::istream* in_ = nullptr;
  int line_number_ = 0;
  std::string error_;
};

int Submit(Client& client, const std::vector<std::string>& args) {
  const bool json = absl::GetFlag(FLAGS_json);
  int64_t start = absl::GetFlag(FLAGS_start_height);
  if (start > 0xFFFFFFFFll) return UsageError("--start_height is larger than a u32");
  if (start < 0) {
    grpc::Status status;
    std::optional<tandem::v1::GetTipResponse> tip = FetchTip(client, &status);
    if (!status.ok()) return RpcError("tip", status);
    if (!tip->has_tip()) return UsageError("the store is empty: give --start_height");
    start = int64_t{tip->tip().height()} + 1;
  }

  BlockSource source(args, absl::GetFlag(FLAGS_raw));
  auto context = client.Context(false, false);
  std::unique_ptr<
      grpc::ClientReaderWriter<tandem::v1::SubmitBlockRequest, tandem::v1::SubmitBlockResponse>>
      stream = client.indexer().StreamBlocks(context.get());

  // The writer thread streams the blocks while this thread reads the answers: the server runs one
  // block while it already receives the next ones.
  std::atomic<int64_t> sent{0};
  std::atomic<bool> input_failed{false};
  std::thread writer([&] {
    std::string block;
    uint32_t height = static_cast<uint32_t>(start);
    tandem::v1::SubmitBlockRequest request;
    while (source.Next(&block)) {
      request.set_height(height++);
      request.set_block(std::move(block));
      if (!stream->Write(request)) return;  // The server ended the stream; Finish says why.
      sent.fetch_add(1);
    }
    if (!source.error().empty()) {
      input_failed = true;
      context->TryCancel();
      return;
    }
    stream->WritesDone();
  });

  const bool progress = absl::GetFlag(FLAGS_progress);
  const absl::Time started = absl::Now();
  absl::Time last_report = started;
  int64_t committed = 0;
  tandem::v1::SubmitBlockResponse response;
  std::optional<tandem::v1::BlockRecord> first, last;
  while (stream->Read(&response)) {
    ++committed;
    if (!first.has_value()) first = response.block();
    last = response.block();
    if (json) {
      std::cout << "{\"block\":" << RecordJson(response.block())
                << ",\"already_committed\":" << (response.already_committed() ? "true" : "false")
                << ",\"generation\":" << response.generation() << "}\n";
    }
    absl::Time now = absl::Now();
    if (progress && now - last_report >= absl::Seconds(1)) {
      last_report = now;
      std::cerr << absl::StrFormat(
          "submit: %d blocks committed (%d sent), height %d, %.1f blocks/s\n", committed,
          sent.load(), response.block().height(), committed / absl::ToDoubleSeconds(now - started));
    }
  }
  writer.join();
  grpc::Status status = stream->Finish();
  absl::Duration took = absl::Now() - started;
  if (input_failed) {
    std::cerr << "tandemctl: submit: " << source.error() << "; " << committed
              << " blocks committed before it\n";
    return kExitInput;
  }
  if (!status.ok()) {
    return RpcError("submit", status, absl::StrCat(",\"committed\":", committed));
  }
  if (json) {
    std::cout << "{\"committed\":" << committed << ",\"seconds\":" << absl::ToDoubleSeconds(took)
              << ",\"tip\":" << (last.has_value() ? RecordJson(*last) : "null") << "}\n";
  } else if (committed == 0) {
    std::cout << "no blocks submitted\n";
  } else {
    std::cout << absl::StrFormat("submitted %d blocks (heights %d..%d) in %s\n", committed,
                                 first->height(), last->height(), absl::FormatDuration(took))
              << "tip " << RecordText(*last) << "\n";
  }
  return kExitOk;
}

int Run(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "tools/tandemctl.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  bool help = false;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    help = help || arg == "--help" || arg == "-help" || arg == "--helpfull" ||
           absl::StartsWith(arg, "--help=");
  }
  exit_status_while_parsing = help ? kExitOk : kExitUsage;
  std::atexit(ExitWithParsingStatus);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  exit_status_while_parsing = -1;

  if (positional.size() < 2) return UsageError("no command given");
  std::string command = positional[1];
  std::vector<std::string> args(positional.begin() + 2, positional.end());

  Client client;
  if (!client.error().empty()) {
    std::cerr << "tandemctl: " << client.error() << "\n";
    return kExitInput;
  }
  auto no_args = [&](int (*run)(Client&)) {
    if (!args.empty()) return UsageError(absl::StrCat(command, " takes no arguments"));
    return run(client);
  };
  if (command == "status") return no_args(Status);
  if (command == "swap") return no_args(Swap);
  if (command == "watch") return no_args(Watch);
  if (command == "tip") return no_args(Tip);
  if (command == "init") return Init(client, args);
  if (command == "submit") return Submit(client, args);
  if (command == "view") return View(client, args);
  if (command == "block") return Block(client, args);
  if (command == "rollback") return Rollback(client, args);
  return UsageError(absl::StrCat("unknown command '", command, "'"));
}

}  // namespace
}  // namespace tandem::tools

int main(int argc, char** argv) { return tandem::tools::Run(argc, argv); }
