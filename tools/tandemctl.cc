// tandemctl: the operators' command line for tandemd. It speaks only gRPC (the generated tandem.v1
// client, through tools/client); it never links the server, the engine or the store.
//
// Usage: tandemctl [flags] <command> [arguments]; `tandemctl --help` lists everything.
// Exit status: 0 success; 1 the server answered with an error or could not be reached (the gRPC
// status is printed); 2 usage error (unknown command or flag, bad value); 3 input error (a file
// that cannot be read, a line that is not hex).
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "tandem/v1/tandem.grpc.pb.h"
#include "tools/client/call_status.h"
#include "tools/client/connection.h"
#include "tools/client/connection_flags.h"
#include "tools/client/json.h"
#include "tools/client/proto_time.h"
#include "util/command_line.h"

ABSL_FLAG(std::string, addr, "127.0.0.1:50051", "Address of tandemd's public listener (Indexer).");
ABSL_FLAG(std::string, admin_addr, "127.0.0.1:50052",
          "Address of tandemd's admin listener (status, swap, watch, init).");
ABSL_FLAG(std::string, token, "", "Bearer token sent with every call (tandemd --token).");
ABSL_FLAG(std::string, ingest_token, "",
          "Bearer token for writes: submit and rollback (tandemd --ingest_token); default: "
          "--token. Also used for reads when --token is empty.");
ABSL_FLAG(std::string, admin_token, "",
          "Bearer token for Admin calls (tandemd --admin_token); default: --token.");
ABSL_FLAG(bool, json, false, "Print one JSON object per result (scripts) instead of text.");
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
ABSL_FLAG(bool, reset, false,
          "init: reset the replay log instead (Admin.ResetReplayLog): drop every call after the "
          "first --keep, re-warm every instance.");
ABSL_FLAG(int64_t, keep, 0, "init --reset: how many calls to keep, from the first (default 0).");
// swap
ABSL_FLAG(absl::Duration, wait, absl::Seconds(10), "swap: how long to wait for a READY standby.");
// watch
ABSL_FLAG(int64_t, count, 0, "watch: stop after this many events (0: until interrupted).");

namespace tandem::tools {
namespace {

using client::Connection;
using client::Json;

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
    "  init --reset [--keep=N]\n"
    "                         drop the replay log's calls after the first N (all by default)\n"
    "                         and re-warm: the way out of a log that no longer replays\n"
    "  submit [FILE...|-] [--raw] [--start_height=H]\n"
    "                         stream blocks (one hex block per line; --raw: one raw block per\n"
    "                         file; no FILE or '-': stdin) through Indexer.StreamBlocks\n"
    "  view NAME [--height=H] [--request=TEXT | --request_hex=HEX]\n"
    "                         call a view export; prints the answer in hex\n"
    "  snapshot DIR           take a snapshot of the database into DIR, a new folder on the\n"
    "                         server's machine (a relative DIR is taken from this folder);\n"
    "                         start tandemd with --db=DIR to resume from its tip\n"
    "  tip                    the committed tip\n"
    "  block HEIGHT           hash and state root of a committed height\n"
    "  rollback HEIGHT        undo every height above HEIGHT\n"
    "  rollback empty         undo every block (the chain becomes empty)\n"
    "Exit status: 0 ok, 1 the server refused or could not be reached, 2 usage error, 3 input "
    "error.";

int UsageError(absl::string_view message) {
  std::cerr << "tandemctl: " << message << " (see --help)\n";
  return kExitUsage;
}

std::string Hex(absl::string_view bytes) { return absl::BytesToHexString(bytes); }

std::string FormatDuration(const google::protobuf::Duration& duration) {
  return absl::FormatDuration(client::FromProto(duration));
}

void PrintJson(const Json& document) { std::cout << client::DumpJson(document) << "\n"; }

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

// The connections of one tandemctl run, one per principal: readers and writers on the public
// listener (--addr; --token, and --ingest_token for writes) and the admin listener (--admin_addr,
// --admin_token, default --token).
//
// Threading: constant after Open; used by the command's thread and, during submit, its writer
// thread (Connection is thread-safe).
class Client {
 public:
  // Returns the shared flags' error when --tls_ca cannot be used.
  static absl::StatusOr<std::unique_ptr<Client>> Open() {
    const std::string token = absl::GetFlag(FLAGS_token);
    std::string ingest_token = absl::GetFlag(FLAGS_ingest_token);
    if (ingest_token.empty()) ingest_token = token;
    std::string admin_token = absl::GetFlag(FLAGS_admin_token);
    if (admin_token.empty()) admin_token = token;
    absl::StatusOr<client::ConnectionOptions> public_options = client::ConnectionOptionsFromFlags(
        absl::GetFlag(FLAGS_addr), token.empty() ? ingest_token : token);
    if (!public_options.ok()) return public_options.status();
    absl::StatusOr<client::ConnectionOptions> writer_options =
        client::ConnectionOptionsFromFlags(absl::GetFlag(FLAGS_addr), ingest_token);
    if (!writer_options.ok()) return writer_options.status();
    absl::StatusOr<client::ConnectionOptions> admin_options =
        client::ConnectionOptionsFromFlags(absl::GetFlag(FLAGS_admin_addr), admin_token);
    if (!admin_options.ok()) return admin_options.status();
    return std::unique_ptr<Client>(new Client(
        *std::move(public_options), *std::move(writer_options), *std::move(admin_options)));
  }

  // Views, the tip and block records.
  Connection& reader() { return public_; }
  // Submit and rollback.
  Connection& writer() { return writer_; }
  // Status, swap, watch and init calls.
  Connection& admin_connection() { return admin_; }

 private:
  Client(client::ConnectionOptions public_options, client::ConnectionOptions writer_options,
         client::ConnectionOptions admin_options)
      : public_(std::move(public_options)),
        writer_(std::move(writer_options)),
        admin_(std::move(admin_options)) {}

  Connection public_;
  Connection writer_;  // The public listener again, with the writers' token.
  Connection admin_;
};

// Prints a failed call (text on stderr, or a JSON object on stdout) and returns kExitRpc. `extra`
// holds more members of the JSON object (what was done before the failure).
int RpcError(absl::string_view what, const grpc::Status& status, const Json& extra = {}) {
  if (absl::GetFlag(FLAGS_json)) {
    Json document;
    document["error"] = client::FailedCallJson(what, status);
    if (extra.is_object()) document.update(extra);
    PrintJson(document);
  } else {
    std::cerr << "tandemctl: " << what << " failed: " << client::DescribeStatus(status) << "\n";
  }
  return kExitRpc;
}

Json RecordJsonOrNull(const tandem::v1::BlockRecord* record) {
  return record == nullptr ? Json(nullptr) : client::BlockRecordJson(*record);
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

// An enum value's name without its type's prefix, in lower case: ("SWAP_POLICY_BLOCK",
// "SWAP_POLICY_") -> "block". Unknown values (a newer server) keep their number.
std::string EnumLabel(const std::string& name, absl::string_view prefix, int number) {
  if (name.empty()) return absl::StrCat(number);
  return absl::AsciiStrToLower(absl::StripPrefix(name, prefix));
}

std::string StandbyStateText(tandem::v1::StandbyState state) {
  return absl::AsciiStrToUpper(
      EnumLabel(tandem::v1::StandbyState_Name(state), "STANDBY_STATE_", state));
}

std::string PolicyText(tandem::v1::SwapPolicy policy) {
  return EnumLabel(tandem::v1::SwapPolicy_Name(policy), "SWAP_POLICY_", policy);
}

int Status(Client& client) {
  tandem::v1::StatusResponse response;
  auto context = client.admin_connection().UnaryContext();
  grpc::Status status = client.admin_connection().admin().Status(context.get(), {}, &response);
  if (!status.ok()) return RpcError("status", status);
  if (absl::GetFlag(FLAGS_json)) {
    Json json = client::ProtoJson(response);
    // Hex, as every digest tandemctl prints (protobuf's JSON would say base64).
    json["module_sha256"] = Hex(response.module_sha256());
    PrintJson(json);
    return kExitOk;
  }
  std::cout << absl::StrFormat("policy      %s (warm at %.0f%%, swap at %.0f%% of the cap)\n",
                               PolicyText(response.policy()), 100 * response.warm_at(),
                               100 * response.swap_at())
            << "memory cap  " << response.memory_limit_bytes() << " bytes\n"
            << absl::StrFormat("host budget %d bytes (%s); guest memory committed %d bytes",
                               response.host_memory_budget_bytes(),
                               response.host_memory_budget_source(),
                               response.guest_memory_committed_bytes());
  if (response.host_memory_refusals() > 0) {
    std::cout << "; " << response.host_memory_refusals()
              << " commits refused (calls failed with UNAVAILABLE)";
  }
  std::cout << "\n"
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
            << "module      " << response.module_path() << "\n"
            << "module hash " << Hex(response.module_sha256()) << " (SHA-256)\n";
  return kExitOk;
}

int Swap(Client& client) {
  tandem::v1::SwapRequest request;
  const absl::Duration wait = absl::GetFlag(FLAGS_wait);
  *request.mutable_wait() = client::ToProtoDuration(wait);
  tandem::v1::SwapResponse response;
  // The swap may wait for a READY standby first: the deadline covers that wait too.
  auto context = client.admin_connection().UnaryContext(
      wait + client.admin_connection().options().call_timeout);
  grpc::Status status = client.admin_connection().admin().Swap(context.get(), request, &response);
  if (!status.ok()) return RpcError("swap", status);
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(client::ProtoJson(response));
  } else {
    std::cout << "swapped generation " << response.previous_generation() << " -> "
              << response.generation() << ": waited " << FormatDuration(response.waited())
              << ", pause " << FormatDuration(response.pause()) << "\n";
  }
  return kExitOk;
}

std::string EventText(const tandem::v1::PairEvent& event) {
  const std::string kind =
      EnumLabel(tandem::v1::PairEvent::Kind_Name(event.kind()), "KIND_", event.kind());
  const absl::Time time = client::FromProto(event.time());
  std::string text =
      absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", time, absl::UTCTimeZone()), " ", kind);
  if (event.generation() != 0) absl::StrAppend(&text, " generation ", event.generation());
  if (event.kind() == tandem::v1::PairEvent::KIND_SWAP) {
    const std::string reason =
        EnumLabel(tandem::v1::SwapReason_Name(event.reason()), "SWAP_REASON_", event.reason());
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
  auto context = client.admin_connection().StreamContext();
  std::unique_ptr<grpc::ClientReader<tandem::v1::PairEvent>> reader =
      client.admin_connection().admin().WatchEvents(context.get(), {});
  int64_t limit = absl::GetFlag(FLAGS_count);
  int64_t seen = 0;
  tandem::v1::PairEvent event;
  while ((limit == 0 || seen < limit) && reader->Read(&event)) {
    ++seen;
    if (absl::GetFlag(FLAGS_json)) {
      PrintJson(client::ProtoJson(event));
    } else {
      std::cout << EventText(event) << "\n";
    }
    std::cout.flush();  // Events are read as they happen, often through a pipe.
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

int ResetReplayLog(Client& client, const std::vector<std::string>& args) {
  if (!args.empty()) return UsageError("init --reset takes no export name");
  const int64_t keep = absl::GetFlag(FLAGS_keep);
  if (keep < 0) return UsageError("--keep must be 0 or more");
  tandem::v1::ResetReplayLogRequest request;
  if (keep > 0) request.set_keep_calls(static_cast<uint64_t>(keep));
  tandem::v1::ResetReplayLogResponse response;
  auto context = client.admin_connection().UnaryContext();
  grpc::Status status =
      client.admin_connection().admin().ResetReplayLog(context.get(), request, &response);
  if (!status.ok()) return RpcError("init --reset", status);
  if (absl::GetFlag(FLAGS_json)) {
    Json json;
    json["dropped_calls"] = response.dropped_calls();
    json["replay_log_calls"] = response.replay_log_calls();
    PrintJson(json);
  } else {
    std::cout << "dropped     " << response.dropped_calls() << " calls\nreplay log  "
              << response.replay_log_calls() << " calls\n";
  }
  return kExitOk;
}

int Init(Client& client, const std::vector<std::string>& args) {
  if (absl::GetFlag(FLAGS_reset)) return ResetReplayLog(client, args);
  if (absl::GetFlag(FLAGS_keep) != 0) return UsageError("--keep goes with init --reset");
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
  auto context = client.admin_connection().UnaryContext();
  grpc::Status status =
      client.admin_connection().admin().Initialize(context.get(), request, &response);
  if (!status.ok()) return RpcError("init", status);
  if (absl::GetFlag(FLAGS_json)) {
    Json json;
    json["answer"] = Hex(response.answer());
    json["digest"] = Hex(response.digest());
    json["replay_log_calls"] = response.replay_log_calls();
    PrintJson(json);
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
  auto context = client.reader().UnaryContext();
  grpc::Status status = client.reader().indexer().View(context.get(), request, &response);
  if (!status.ok()) return RpcError("view", status);
  if (absl::GetFlag(FLAGS_json)) {
    Json json;
    json["height"] = response.height();
    json["generation"] = response.generation();
    json["answer"] = Hex(response.answer());
    PrintJson(json);
  } else {
    std::cout << "height " << response.height() << ", " << response.answer().size() << " bytes\n"
              << Hex(response.answer()) << "\n";
  }
  return kExitOk;
}

// The tip, or std::nullopt for an empty chain; `status` set on failure.
std::optional<tandem::v1::GetTipResponse> FetchTip(Client& client, grpc::Status* status) {
  tandem::v1::GetTipResponse response;
  auto context = client.reader().UnaryContext();
  *status = client.reader().indexer().GetTip(context.get(), {}, &response);
  if (!status->ok()) return std::nullopt;
  return response;
}

int Tip(Client& client) {
  grpc::Status status;
  std::optional<tandem::v1::GetTipResponse> response = FetchTip(client, &status);
  if (!status.ok()) return RpcError("tip", status);
  if (absl::GetFlag(FLAGS_json)) {
    Json json;
    json["tip"] = RecordJsonOrNull(response->has_tip() ? &response->tip() : nullptr);
    json["start_height"] =
        response->has_start_height() ? Json(response->start_height()) : Json(nullptr);
    json["module_sha256"] = Hex(response->module_sha256());
    json["memory_limit_bytes"] = response->memory_limit_bytes();
    PrintJson(json);
  } else {
    if (!response->has_tip()) {
      std::cout << "no blocks committed\n";
    } else {
      std::cout << "tip " << RecordText(response->tip()) << "\n  start       "
                << response->start_height() << "\n";
    }
    std::cout << "  module      " << Hex(response->module_sha256()) << " (SHA-256)\n"
              << "  memory cap  " << response->memory_limit_bytes() << " bytes\n";
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
  auto context = client.reader().UnaryContext();
  grpc::Status status = client.reader().indexer().GetBlock(context.get(), request, &response);
  if (!status.ok()) return RpcError("block", status);
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(client::BlockRecordJson(response.block()));
  } else {
    std::cout << "block " << RecordText(response.block()) << "\n";
  }
  return kExitOk;
}

int Snapshot(Client& client, const std::vector<std::string>& args) {
  if (args.size() != 1) return UsageError("snapshot takes one argument: the folder to create");
  // The server wants an absolute path on its machine; a relative one is taken as relative to
  // this command's folder, which is what an operator on that machine means.
  std::error_code error;
  const std::filesystem::path directory = std::filesystem::absolute(args[0], error);
  if (error) return UsageError(absl::StrCat("cannot resolve '", args[0], "': ", error.message()));
  tandem::v1::SnapshotRequest request;
  request.set_directory(directory.string());
  tandem::v1::SnapshotResponse response;
  auto context = client.admin_connection().UnaryContext(absl::Minutes(30));
  grpc::Status status =
      client.admin_connection().admin().Snapshot(context.get(), request, &response);
  if (!status.ok()) return RpcError("snapshot", status);
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(Json{{"directory", directory.string()},
                   {"tip", RecordJsonOrNull(response.has_tip() ? &response.tip() : nullptr)},
                   {"start_height",
                    response.has_start_height() ? Json(response.start_height()) : Json(nullptr)},
                   {"module_sha256", Hex(response.module_sha256())},
                   {"memory_limit_bytes", response.memory_limit_bytes()},
                   {"format_version", response.format_version()},
                   {"files", response.files()},
                   {"bytes", response.bytes()}});
  } else {
    std::cout << "snapshot    " << directory.string() << " (" << response.files() << " files, "
              << response.bytes() << " bytes)\n"
              << "tip         " << (response.has_tip() ? RecordText(response.tip()) : "none")
              << "\nmodule      " << Hex(response.module_sha256()) << " (SHA-256)\nmemory cap  "
              << response.memory_limit_bytes() << " bytes\n";
  }
  return kExitOk;
}

int Rollback(Client& client, const std::vector<std::string>& args) {
  tandem::v1::RollbackRequest request;
  if (args.size() == 1 && args[0] == "empty") {
    request.set_empty(true);
  } else {
    uint32_t height = 0;
    if (!ParseHeightArg(args, "rollback", &height)) return kExitUsage;
    request.set_height(height);
  }
  tandem::v1::RollbackResponse response;
  auto context = client.writer().UnaryContext();
  grpc::Status status = client.writer().indexer().Rollback(context.get(), request, &response);
  if (!status.ok()) return RpcError("rollback", status);
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(Json{{"tip", RecordJsonOrNull(response.has_tip() ? &response.tip() : nullptr)}});
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
  auto context = client.writer().StreamContext();
  std::unique_ptr<
      grpc::ClientReaderWriter<tandem::v1::SubmitBlockRequest, tandem::v1::SubmitBlockResponse>>
      stream = client.writer().indexer().StreamBlocks(context.get());

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
      Json json;
      json["block"] = client::BlockRecordJson(response.block());
      json["already_committed"] = response.already_committed();
      json["generation"] = response.generation();
      PrintJson(json);
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
    return RpcError("submit", status, Json{{"committed", committed}});
  }
  if (json) {
    Json json;
    json["committed"] = committed;
    json["seconds"] = absl::ToDoubleSeconds(took);
    json["tip"] = RecordJsonOrNull(last.has_value() ? &*last : nullptr);
    PrintJson(json);
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
  util::CommandLineOptions command_line;
  command_line.usage = kUsage;
  command_line.help_flag_files = {"tools/tandemctl.cc", client::kConnectionFlagsFile};
  command_line.usage_error_status = kExitUsage;
  std::vector<char*> positional = util::ParseCommandLineOrExit(argc, argv, command_line);

  if (positional.size() < 2) return UsageError("no command given");
  std::string command = positional[1];
  std::vector<std::string> args(positional.begin() + 2, positional.end());

  if (absl::Status flags = client::ValidateConnectionFlags(); !flags.ok()) {
    return UsageError(flags.message());
  }
  absl::StatusOr<std::unique_ptr<Client>> opened = Client::Open();
  if (!opened.ok()) {
    std::cerr << "tandemctl: " << opened.status().message() << "\n";
    return kExitInput;
  }
  Client& client = **opened;
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
  if (command == "snapshot") return Snapshot(client, args);
  return UsageError(absl::StrCat("unknown command '", command, "'"));
}

}  // namespace
}  // namespace tandem::tools

int main(int argc, char** argv) { return tandem::tools::Run(argc, argv); }
