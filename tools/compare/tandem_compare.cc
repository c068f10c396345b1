// tandem-compare: compares the state roots of two tandemd nodes over a range of heights and names
// the first height where they differ. It speaks only gRPC (Indexer.GetTip and GetBlock), through
// the tools' client library.
//
// Usage: tandem-compare --a HOST:PORT --b HOST:PORT [--from H] [--to H] [--bisect] [--json]
//                       [--timeout 30s] [--token T] [--tls_ca PEM [--tls_server_name NAME]]
// The range defaults to the heights both nodes hold: from the later start height to the lower
// tip. Every height is compared (GetBlock on both nodes); a height committed on one node and not
// on the other is a difference. With --bisect only O(log n) heights are read: root(h) chains
// root(h-1), so on nodes with the same start height equal roots at h mean equal roots below h.
// The nodes' module digests and memory caps (GetTip) are compared too: when the roots differ and
// so do those, the tool reports "different module" / "different cap" (the cause) rather than a
// block; when the roots are equal but those differ, it warns that they may diverge later.
// Exit status: 0 the roots are equal over the range; 1 they differ (the first height, or the
// different module or cap, is printed); 2 usage error; 3 a node could not be reached or answered
// with an unexpected error.
#include <algorithm>
#include <cstdint>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"
#include "tandem/v1/tandem.grpc.pb.h"
#include "tools/client/call_status.h"
#include "tools/client/connection.h"
#include "tools/client/connection_flags.h"
#include "tools/client/json.h"
#include "util/command_line.h"

ABSL_FLAG(std::string, a, "", "host:port of the first node's public listener (required).");
ABSL_FLAG(std::string, b, "", "host:port of the second node's public listener (required).");
ABSL_FLAG(int64_t, from, -1, "First height to compare (default: the later start height).");
ABSL_FLAG(int64_t, to, -1, "Last height to compare (default: the lower tip).");
ABSL_FLAG(bool, bisect, false,
          "Read O(log n) heights instead of every one (nodes with the same start height).");
ABSL_FLAG(bool, json, false, "Print the result as one JSON object.");
ABSL_FLAG(std::string, token, "", "Bearer token sent to both nodes (tandemd --token).");

namespace tandem::tools {
namespace {

using client::Json;

constexpr int kExitEqual = 0;
constexpr int kExitDiffer = 1;
constexpr int kExitUsage = 2;
constexpr int kExitRpc = 3;
constexpr uint32_t kMaxHeight = 0xFFFFFFFF;

constexpr char kUsage[] =
    "compares the state roots of two tandemd nodes.\n"
    "Usage: tandem-compare --a HOST:PORT --b HOST:PORT [--from H] [--to H] [--bisect] [--json]\n"
    "Compares the state roots (Indexer.GetBlock) of two tandemd nodes at every height of the\n"
    "range and prints the first height where they differ. The range defaults to the heights both\n"
    "nodes hold. --bisect reads O(log n) heights instead (nodes with the same start height).\n"
    "Roots that differ because the nodes run different modules or memory caps are reported as\n"
    "\"different module\" / \"different cap\".\n"
    "Exit status: 0 equal, 1 differ, 2 usage error, 3 RPC error.";

struct Options {
  std::string a;
  std::string b;
  std::optional<uint32_t> from;
  std::optional<uint32_t> to;
  bool bisect = false;
  bool json = false;
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

// One node, by name ("a" or "b"), over its connection.
class NodeClient {
 public:
  NodeClient(std::string name, client::ConnectionOptions options)
      : name_(std::move(name)), connection_(std::move(options)) {}

  const std::string& name() const { return name_; }
  const std::string& address() const { return connection_.options().address; }

  // The tip response, or the failure.
  bool GetTip(tandem::v1::GetTipResponse* response, std::optional<RpcFailure>* failure) {
    auto context = connection_.UnaryContext();
    grpc::Status status =
        connection_.indexer().GetTip(context.get(), tandem::v1::GetTipRequest(), response);
    if (status.ok()) return true;
    *failure = RpcFailure{name_, status};
    return false;
  }

  // The record at `height`, nothing when NOT_FOUND; false (with the failure) on any other error.
  bool GetBlock(uint32_t height, Lookup* lookup, std::optional<RpcFailure>* failure) {
    auto context = connection_.UnaryContext();
    tandem::v1::GetBlockRequest request;
    request.set_height(height);
    tandem::v1::GetBlockResponse response;
    grpc::Status status = connection_.indexer().GetBlock(context.get(), request, &response);
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
  std::string name_;
  client::Connection connection_;
};

std::string Hex(const std::string& bytes) { return absl::BytesToHexString(bytes); }

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

Json DescribeJson(const Lookup& lookup) {
  if (!lookup.record.has_value()) return Json{{"committed", false}};
  return Json{{"committed", true},
              {"root", Hex(lookup.record->state_root())},
              {"hash", Hex(lookup.record->hash())}};
}

Json TipJson(const tandem::v1::GetTipResponse& tip) {
  if (!tip.has_tip()) return nullptr;
  return tip.tip().height();
}

std::string TipText(const tandem::v1::GetTipResponse& tip) {
  if (!tip.has_tip()) return "empty";
  return absl::StrCat(tip.start_height(), "..", tip.tip().height());
}

// "module", "cap" or "module and cap" when the nodes' roots depend on different inputs besides
// the blocks (GetTip's module digest and memory cap). std::nullopt when they agree, or a node is
// too old to say.
std::optional<std::string> DifferentIdentity(const tandem::v1::GetTipResponse& a,
                                             const tandem::v1::GetTipResponse& b) {
  const bool module = !a.module_sha256().empty() && !b.module_sha256().empty() &&
                      a.module_sha256() != b.module_sha256();
  const bool cap = a.memory_limit_bytes() != 0 && b.memory_limit_bytes() != 0 &&
                   a.memory_limit_bytes() != b.memory_limit_bytes();
  if (module && cap) return "module and cap";
  if (module) return "module";
  if (cap) return "cap";
  return std::nullopt;
}

Json IdentityJson(const tandem::v1::GetTipResponse& tip) {
  return Json{{"module_sha256", Hex(tip.module_sha256())},
              {"memory_limit_bytes", tip.memory_limit_bytes()},
              {"tip", TipJson(tip)}};
}

std::string IdentityText(const tandem::v1::GetTipResponse& tip) {
  return absl::StrCat("module SHA-256 ", Hex(tip.module_sha256()), ", memory cap ",
                      tip.memory_limit_bytes(), " bytes, heights ", TipText(tip));
}

int UsageError(absl::string_view message) {
  std::cerr << "tandem-compare: " << message << " (see --help)\n";
  return kExitUsage;
}

// A height flag: unset (negative) or 0..kMaxHeight.
std::optional<int> ReadHeightFlag(absl::string_view name, int64_t value,
                                  std::optional<uint32_t>* height) {
  if (value < 0) return std::nullopt;
  if (value > kMaxHeight) {
    return UsageError(absl::StrCat("--", name, " must be a height (0..4294967295)"));
  }
  *height = static_cast<uint32_t>(value);
  return std::nullopt;
}

// The options the parsed flags describe; an exit status when they are not usable.
std::optional<int> OptionsFromFlags(const std::vector<char*>& positional, Options* options) {
  if (positional.size() > 1) {
    return UsageError(absl::StrCat("unexpected argument '", positional[1], "'"));
  }
  options->a = absl::GetFlag(FLAGS_a);
  options->b = absl::GetFlag(FLAGS_b);
  if (options->a.empty() || options->b.empty()) return UsageError("--a and --b are required");
  if (auto exit = ReadHeightFlag("from", absl::GetFlag(FLAGS_from), &options->from)) return exit;
  if (auto exit = ReadHeightFlag("to", absl::GetFlag(FLAGS_to), &options->to)) return exit;
  if (options->from && options->to && *options->from > *options->to) {
    return UsageError("--from is above --to");
  }
  if (absl::Status flags = client::ValidateConnectionFlags(); !flags.ok()) {
    return UsageError(flags.message());
  }
  options->bisect = absl::GetFlag(FLAGS_bisect);
  options->json = absl::GetFlag(FLAGS_json);
  return std::nullopt;
}

int RpcError(const Options& options, const RpcFailure& failure, const std::string& address) {
  const std::string message = absl::StrCat("node ", failure.node, " (", address,
                                           "): ", client::DescribeStatus(failure.status));
  if (options.json) {
    std::cout << client::DumpJson(Json{{"error", message}}) << "\n";
  } else {
    std::cerr << "tandem-compare: " << message << "\n";
  }
  return kExitRpc;
}

int Compare(const Options& options) {
  absl::StatusOr<client::ConnectionOptions> a_options =
      client::ConnectionOptionsFromFlags(options.a, absl::GetFlag(FLAGS_token));
  absl::StatusOr<client::ConnectionOptions> b_options =
      client::ConnectionOptionsFromFlags(options.b, absl::GetFlag(FLAGS_token));
  if (!a_options.ok() || !b_options.ok()) {
    return UsageError((a_options.ok() ? b_options : a_options).status().message());
  }
  NodeClient a("a", *std::move(a_options));
  NodeClient b("b", *std::move(b_options));
  std::optional<RpcFailure> failure;
  auto fail = [&]() {
    return RpcError(options, *failure, failure->node == "a" ? a.address() : b.address());
  };

  tandem::v1::GetTipResponse tip_a;
  tandem::v1::GetTipResponse tip_b;
  if (!a.GetTip(&tip_a, &failure) || !b.GetTip(&tip_b, &failure)) return fail();
  const std::optional<std::string> different = DifferentIdentity(tip_a, tip_b);

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
    Json result;
    result["equal"] = !first_difference.has_value();
    result["from"] = from;
    result["to"] = to;
    result["compared"] = compared;
    result["tip_a"] = TipJson(tip_a);
    result["tip_b"] = TipJson(tip_b);
    if (first_difference) {
      result["first_difference"] = *first_difference;
      result["a"] = DescribeJson(lookup_a);
      result["b"] = DescribeJson(lookup_b);
    }
    if (different) {
      result["different"] = *different;
      result["identity_a"] = IdentityJson(tip_a);
      result["identity_b"] = IdentityJson(tip_b);
    }
    std::cout << client::DumpJson(result) << "\n";
  } else if (first_difference && different) {
    // The roots cannot agree: say why rather than point at a block.
    std::cout << "different " << *different << ": the roots first differ at height "
              << *first_difference << ", and the nodes run different inputs besides the blocks\n"
              << "  a " << options.a << ": " << IdentityText(tip_a) << "\n"
              << "  b " << options.b << ": " << IdentityText(tip_b) << "\n";
  } else if (first_difference) {
    std::cout << "first difference at height " << *first_difference << "\n"
              << "  a " << options.a << ": " << DescribeText(lookup_a) << "\n"
              << "  b " << options.b << ": " << DescribeText(lookup_b) << "\n";
  } else if (empty_range) {
    std::cout << "equal: no heights to compare (a " << TipText(tip_a) << ", b " << TipText(tip_b)
              << ")\n";
  } else {
    std::cout << "equal: heights " << from << ".." << to << " (" << compared << " compared; a "
              << TipText(tip_a) << ", b " << TipText(tip_b) << ")\n";
  }
  if (!options.json && !first_difference && different) {
    // Equal so far, e.g. a guest that never came near the lower cap; nothing promises it stays so.
    std::cout << "warning: different " << *different << ": the roots may diverge on a later block\n"
              << "  a " << options.a << ": " << IdentityText(tip_a) << "\n"
              << "  b " << options.b << ": " << IdentityText(tip_b) << "\n";
  }
  return first_difference ? kExitDiffer : kExitEqual;
}

int Run(int argc, char** argv) {
  util::CommandLineOptions command_line;
  command_line.usage = kUsage;
  command_line.help_flag_files = {"tools/compare/tandem_compare.cc", client::kConnectionFlagsFile};
  command_line.usage_error_status = kExitUsage;
  std::vector<char*> positional = util::ParseCommandLineOrExit(argc, argv, command_line);
  Options options;
  if (std::optional<int> exit = OptionsFromFlags(positional, &options)) return *exit;
  return Compare(options);
}

}  // namespace
}  // namespace tandem::tools

int main(int argc, char** argv) { return tandem::tools::Run(argc, argv); }
