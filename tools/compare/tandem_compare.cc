// tandem-compare: compares the state roots of two tandemd nodes over a range of heights and names
// the first height where they differ. It speaks only gRPC (Indexer.GetTip and GetBlock).
//
// Usage: tandem-compare --a HOST:PORT --b HOST:PORT [--from H] [--to H] [--bisect] [--json]
//                       [--timeout SECONDS]
// The range defaults to the heights both nodes hold: from the later start height to the lower
// tip. Every height is compared (GetBlock on both nodes); a height committed on one node and not
// on the other is a difference. With --bisect only O(log n) heights are read: root(h) chains
// root(h-1), so on nodes with the same start height equal roots at h mean equal roots below h.
// Exit status: 0 the roots are equal over the range; 1 they differ (the first height is printed);
// 2 usage error; 3 a node could not be reached or answered with an unexpected error.
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"
#include "tandem/v1/tandem.grpc.pb.h"

namespace tandem::tools {
namespace {

constexpr int kExitEqual = 0;
constexpr int kExitDiffer = 1;
constexpr int kExitUsage = 2;
constexpr int kExitRpc = 3;

constexpr char kUsage[] =
    "Usage: tandem-compare --a HOST:PORT --b HOST:PORT [--from H] [--to H] [--bisect] [--json]\n"
    "                      [--timeout SECONDS]\n"
    "Compares the state roots (Indexer.GetBlock) of two tandemd nodes at every height of the\n"
    "range and prints the first height where they differ. The range defaults to the heights both\n"
    "nodes hold. --bisect reads O(log n) heights instead (nodes with the same start height).\n"
    "Exit status: 0 equal, 1 differ, 2 usage error, 3 RPC error.\n";

struct Options {
  std::string a;
  std::string b;
  std::optional<uint32_t> from;
  std::optional<uint32_t> to;
  bool bisect = false;
  bool json = false;
  int timeout_seconds = 30;
};

// An RPC failure other than NOT_FOUND: the comparison cannot go on.
struct RpcFailure {
  std::string node;
  grpc::Status status;
};

// One node's answer at one height: the record, or nothing when the height is not committed.
struct Lookup {
  std::optional<tandem::v1::BlockRecord> record;
};

class NodeClient {
 public:
  NodeClient(std::string name, const std::string& address, int timeout_seconds)
      : name_(std::move(name)), address_(address), timeout_seconds_(timeout_seconds) {
    grpc::ChannelArguments arguments;
    arguments.SetMaxReceiveMessageSize(-1);
    stub_ = tandem::v1::Indexer::NewStub(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), arguments));
  }

  const std::string& name() const { return name_; }
  const std::string& address() const { return address_; }

  // The tip response, or the failure.
  bool GetTip(tandem::v1::GetTipResponse* response, std::optional<RpcFailure>* failure) {
    grpc::ClientContext context;
    SetDeadline(context);
    grpc::Status status = stub_->GetTip(&context, tandem::v1::GetTipRequest(), response);
    if (status.ok()) return true;
    *failure = RpcFailure{name_, status};
    return false;
  }

  // The record at `height`, nothing when NOT_FOUND; false (with the failure) on any other error.
  bool GetBlock(uint32_t height, Lookup* lookup, std::optional<RpcFailure>* failure) {
    grpc::ClientContext context;
    SetDeadline(context);
    tandem::v1::GetBlockRequest request;
    request.set_height(height);
    tandem::v1::GetBlockResponse response;
    grpc::Status status = stub_->GetBlock(&context, request, &response);
    if (status.ok()) {
      lookup->record = response.block();
      return true;
    }
    if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
      lookup->record.reset();
      return true;
    }
    *failure = RpcFailure{name_, status};
    return false;
  }

 private:
  void SetDeadline(grpc::ClientContext& context) const {
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(timeout_seconds_));
  }

  std::string name_;
  std::string address_;
  int timeout_seconds_;
  std::unique_ptr<tandem::v1::Indexer::Stub> stub_;
};

std::string Hex(const std::string& bytes) { return absl::BytesToHexString(bytes); }

std::string JsonString(absl::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      out += absl::StrCat("\\u00", absl::BytesToHexString(std::string(1, static_cast<char>(c))));
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

bool SameRoot(const Lookup& a, const Lookup& b) {
  if (!a.record.has_value() || !b.record.has_value()) {
    return a.record.has_value() == b.record.has_value();
  }
  return a.record->state_root() == b.record->state_root();
}

std::string DescribeText(const Lookup& lookup) {
  if (!lookup.record.has_value()) return "not committed";
  return absl::StrCat("root ", Hex(lookup.record->state_root()), " hash ",
                      Hex(lookup.record->hash()));
}

std::string DescribeJson(const Lookup& lookup) {
  if (!lookup.record.has_value()) return "{\"committed\":false}";
  return absl::StrCat("{\"committed\":true,\"root\":\"", Hex(lookup.record->state_root()),
                      "\",\"hash\":\"", Hex(lookup.record->hash()), "\"}");
}

std::string TipJson(const tandem::v1::GetTipResponse& tip) {
  if (!tip.has_tip()) return "null";
  return absl::StrCat(tip.tip().height());
}

std::string TipText(const tandem::v1::GetTipResponse& tip) {
  if (!tip.has_tip()) return "empty";
  return absl::StrCat(tip.start_height(), "..", tip.tip().height());
}

int UsageError(absl::string_view message) {
  std::cerr << "tandem-compare: " << message << "\n" << kUsage;
  return kExitUsage;
}

// Parses argv into options; returns an exit status on error or help, nothing to go on.
std::optional<int> ParseArguments(int argc, char** argv, Options* options) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return kExitEqual;
    }
    if (arg == "--json") {
      options->json = true;
      continue;
    }
    if (arg == "--bisect") {
      options->bisect = true;
      continue;
    }
    std::string name = arg;
    std::string value;
    size_t equals = arg.find('=');
    if (equals != std::string::npos) {
      name = arg.substr(0, equals);
      value = arg.substr(equals + 1);
    } else if (absl::StartsWith(arg, "--")) {
      if (i + 1 >= argc) return UsageError(absl::StrCat(arg, " needs a value"));
      value = argv[++i];
    }
    if (name == "--a" || name == "--b") {
      if (value.empty()) return UsageError(absl::StrCat(name, " must be HOST:PORT"));
      (name == "--a" ? options->a : options->b) = value;
    } else if (name == "--from" || name == "--to") {
      uint32_t height = 0;
      if (!absl::SimpleAtoi(value, &height)) {
        return UsageError(absl::StrCat(name, " must be a height (0..4294967295), not '", value,
                                       "'"));
      }
      (name == "--from" ? options->from : options->to) = height;
    } else if (name == "--timeout") {
      if (!absl::SimpleAtoi(value, &options->timeout_seconds) || options->timeout_seconds <= 0) {
        return UsageError(absl::StrCat("--timeout must be a positive number of seconds, not '",
                                       value, "'"));
      }
    } else {
      return UsageError(absl::StrCat("unknown argument '", arg, "'"));
    }
  }
  if (options->a.empty() || options->b.empty()) return UsageError("--a and --b are required");
  if (options->from && options->to && *options->from > *options->to) {
    return UsageError("--from is above --to");
  }
  return std::nullopt;
}

int RpcError(const Options& options, const RpcFailure& failure, const std::string& address) {
  std::string message =
      absl::StrCat("node ", failure.node, " (", address, "): ",
                   failure.status.error_code(), " ", failure.status.error_message());
  if (options.json) {
    std::cout << "{\"error\":" << JsonString(message) << "}\n";
  } else {
    std::cerr << "tandem-compare: " << message << "\n";
  }
  return kExitRpc;
}

int Run(const Options& options) {
  NodeClient a("a", options.a, options.timeout_seconds);
  NodeClient b("b", options.b, options.timeout_seconds);
  std::optional<RpcFailure> failure;
  auto fail = [&]() {
    return RpcError(options, *failure, failure->node == "a" ? a.address() : b.address());
  };

  tandem::v1::GetTipResponse tip_a;
  tandem::v1::GetTipResponse tip_b;
  if (!a.GetTip(&tip_a, &failure) || !b.GetTip(&tip_b, &failure)) return fail();

  // The default range: the heights both nodes hold. When one node is empty, the other's chain.
  uint32_t from = 0;
  uint32_t to = 0;
  bool empty_range = false;
  if (tip_a.has_tip() && tip_b.has_tip()) {
    from = std::max(tip_a.start_height(), tip_b.start_height());
    to = std::min(tip_a.tip().height(), tip_b.tip().height());
  } else if (tip_a.has_tip() || tip_b.has_tip()) {
    const tandem::v1::GetTipResponse& only = tip_a.has_tip() ? tip_a : tip_b;
    from = only.start_height();
    to = only.tip().height();
  } else {
    empty_range = !options.from.has_value() || !options.to.has_value();
  }
  if (options.from) from = *options.from;
  if (options.to) to = *options.to;
  if (from > to) empty_range = true;

  std::optional<uint32_t> first_difference;
  Lookup lookup_a;
  Lookup lookup_b;
  uint64_t compared = 0;
  auto differs_at = [&](uint32_t height, bool* differ) {
    ++compared;
    if (!a.GetBlock(height, &lookup_a, &failure) || !b.GetBlock(height, &lookup_b, &failure)) {
      return false;
    }
    *differ = !SameRoot(lookup_a, lookup_b);
    return true;
  };

  if (!empty_range && options.bisect) {
    // Invariant: roots are equal below `low` (or low == from), and differ at `high` if high <= to.
    bool differ = false;
    if (!differs_at(to, &differ)) return fail();
    if (differ) {
      uint64_t low = from;
      uint64_t high = to;
      while (low < high) {
        uint64_t middle = low + (high - low) / 2;
        if (!differs_at(static_cast<uint32_t>(middle), &differ)) return fail();
        if (differ) {
          high = middle;
        } else {
          low = middle + 1;
        }
      }
      first_difference = static_cast<uint32_t>(high);
      if (!differs_at(*first_difference, &differ)) return fail();  // Reload its records.
    }
  } else if (!empty_range) {
    for (uint64_t height = from; height <= to; ++height) {
      bool differ = false;
      if (!differs_at(static_cast<uint32_t>(height), &differ)) return fail();
      if (differ) {
        first_difference = static_cast<uint32_t>(height);
        break;
      }
    }
  }

  if (options.json) {
    std::string out = absl::StrCat("{\"equal\":", first_difference ? "false" : "true",
                                   ",\"from\":", from, ",\"to\":", to, ",\"compared\":", compared,
                                   ",\"tip_a\":", TipJson(tip_a), ",\"tip_b\":", TipJson(tip_b));
    if (first_difference) {
      absl::StrAppend(&out, ",\"first_difference\":", *first_difference,
                      ",\"a\":", DescribeJson(lookup_a), ",\"b\":", DescribeJson(lookup_b));
    }
    std::cout << out << "}\n";
  } else if (first_difference) {
    std::cout << "first difference at height " << *first_difference << "\n"
              << "  a " << options.a << ": " << DescribeText(lookup_a) << "\n"
              << "  b " << options.b << ": " << DescribeText(lookup_b) << "\n";
  } else if (empty_range) {
    std::cout << "equal: no heights to compare (a " << TipText(tip_a) << ", b " << TipText(tip_b)
              << ")\n";
  } else {
    std::cout << "equal: heights " << from << ".." << to << " (" << compared
              << " compared; a " << TipText(tip_a) << ", b " << TipText(tip_b) << ")\n";
  }
  return first_difference ? kExitDiffer : kExitEqual;
}

}  // namespace
}  // namespace tandem::tools

int main(int argc, char** argv) {
  tandem::tools::Options options;
  if (std::optional<int> exit = tandem::tools::ParseArguments(argc, argv, &options)) return *exit;
  return tandem::tools::Run(options);
}
