// tandem-follow: indexes a live chain from a Bitcoin Core-compatible node (bitcoind, litecoind
// and their forks) into tandemd, reorgs included. It reads blocks over the node's JSON-RPC and
// submits them through tandemd's gRPC API (tools/client); it links nothing of the server.
//
// Usage: tandem-follow --rpc_url=URL (--rpc_cookie=FILE | --rpc_user=U --rpc_password=P)
//                      [--addr=HOST:PORT] [--start_height=H] [flags]; --help lists them all.
// Exit status: 0 stopped by SIGINT/SIGTERM, or caught up with --exit_at_tip; 1 a failure that a
// retry cannot heal (tandemd refused a block, credentials refused); 2 usage error; 3 an input
// file cannot be used (--tls_ca) or the metrics address cannot be served; 4 a reorg deeper than
// --max_reorg_depth (nothing rolled back).
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "tools/client/connection.h"
#include "tools/client/connection_flags.h"
#include "tools/follow/block_notifier.h"
#include "tools/follow/follow_metrics.h"
#include "tools/follow/follower.h"
#include "tools/follow/node_rpc.h"
#include "tools/follow/progress_log.h"
#include "tools/follow/wakeup.h"
#include "util/command_line.h"

// The node.
ABSL_FLAG(std::string, rpc_url, "http://127.0.0.1:8332/",
          "The node's JSON-RPC endpoint (bitcoind mainnet 8332, testnet 18332, regtest 18443; "
          "litecoind 9332, 19332, 19443).");
ABSL_FLAG(std::string, rpc_cookie, "",
          "The node's cookie file (<datadir>/.cookie, or <datadir>/regtest/.cookie), read again "
          "for every request since the node writes a new one at each start. Preferred to "
          "--rpc_user/--rpc_password.");
ABSL_FLAG(std::string, rpc_user, "", "RPC user (rpcuser, or a user of an rpcauth line).");
ABSL_FLAG(std::string, rpc_password, "",
          "RPC password. Visible in the process list: prefer --rpc_cookie, or pass it in a "
          "--flagfile readable only by the follower's user.");
ABSL_FLAG(absl::Duration, rpc_timeout, absl::Seconds(30), "Deadline of one request to the node.");
ABSL_FLAG(std::string, zmq, "",
          "The node's ZMQ hashblock endpoint (the node's -zmqpubhashblock, e.g. "
          "tcp://127.0.0.1:28332): new blocks are noticed at once instead of at the next poll.");
ABSL_FLAG(absl::Duration, poll_interval, absl::Milliseconds(500),
          "How often the node is asked for its best block while caught up.");
// tandemd.
ABSL_FLAG(std::string, addr, "127.0.0.1:50051", "Address of tandemd's public listener.");
ABSL_FLAG(std::string, token, "", "Bearer token for reads (tandemd --token).");
ABSL_FLAG(std::string, ingest_token, "",
          "Bearer token for writes: StreamBlocks and Rollback (tandemd --ingest_token); default: "
          "--token. Also used for reads when --token is empty.");
// Following.
ABSL_FLAG(int64_t, start_height, -1,
          "The first height to index when tandemd's store is empty (required then; ignored "
          "otherwise: the follower resumes at tandemd's tip + 1).");
ABSL_FLAG(int64_t, max_reorg_depth, 100,
          "The deepest reorg rolled back without an operator: a deeper one stops the follower "
          "with exit status 4, nothing rolled back.");
ABSL_FLAG(int64_t, fetch_ahead, 256, "Blocks read from the node ahead of tandemd at most.");
ABSL_FLAG(int64_t, fetch_ahead_mib, 64,
          "MiB of blocks read from the node ahead of tandemd at most (at least one block is).");
ABSL_FLAG(int64_t, batch, 128, "Blocks asked of the node in one batched JSON-RPC request at most.");
ABSL_FLAG(int64_t, batch_mib, 4,
          "MiB one batched JSON-RPC request should bring back: each batch is sized from the "
          "previous one's blocks, up to --batch.");
ABSL_FLAG(absl::Duration, max_retry_delay, absl::Seconds(5),
          "Longest delay between retries while the node or tandemd is unreachable (the first is "
          "250ms, doubled per failure).");
ABSL_FLAG(bool, exit_at_tip, false,
          "Exit (status 0) once tandemd has every block the node has, instead of following.");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9465",
          "host:port of the follower's Prometheus /metrics. Empty: none.");
ABSL_FLAG(absl::Duration, progress_interval, absl::Seconds(5),
          "How often a progress line is written while blocks stream in.");

namespace tandem::follow {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitInput = 3;
constexpr int kExitReorgTooDeep = 4;

constexpr char kUsage[] =
    "indexes a live chain from a Bitcoin Core-compatible node (bitcoind, litecoind) into "
    "tandemd, reorgs included.\n"
    "Usage: tandem-follow --rpc_url=URL (--rpc_cookie=FILE | --rpc_user=U --rpc_password=P)\n"
    "                     [--addr=HOST:PORT] [--start_height=H] [--zmq=tcp://HOST:PORT] [flags]\n"
    "Starts at tandemd's tip + 1 (--start_height on an empty store), streams the blocks the node "
    "has, then follows new ones (polling, or ZMQ hashblock). On a reorg it rolls tandemd back to "
    "the fork point and indexes the new branch.\n"
    "Exit status: 0 stopped (SIGINT/SIGTERM) or caught up (--exit_at_tip); 1 a failure a retry "
    "cannot heal; 2 usage error; 3 input error; 4 reorg deeper than --max_reorg_depth.";

int UsageError(absl::string_view message) {
  std::cerr << "tandem-follow: " << message << " (see --help)\n";
  return kExitUsage;
}

// Options of the follower from the flags, or a usage error's message.
absl::StatusOr<FollowerOptions> FollowerOptionsFromFlags() {
  FollowerOptions options;
  const int64_t start = absl::GetFlag(FLAGS_start_height);
  if (start > 0xFFFFFFFFll)
    return absl::InvalidArgumentError("--start_height is larger than a u32");
  if (start >= 0) options.start_height = static_cast<uint32_t>(start);
  const int64_t depth = absl::GetFlag(FLAGS_max_reorg_depth);
  if (depth < 0 || depth > 0xFFFFFFFFll) {
    return absl::InvalidArgumentError("--max_reorg_depth must be 0..4294967295");
  }
  options.max_reorg_depth = static_cast<uint32_t>(depth);
  options.poll_interval = absl::GetFlag(FLAGS_poll_interval);
  if (options.poll_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--poll_interval must be positive");
  }
  options.max_retry_delay = absl::GetFlag(FLAGS_max_retry_delay);
  if (options.max_retry_delay <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--max_retry_delay must be positive");
  }
  options.min_retry_delay = std::min(options.min_retry_delay, options.max_retry_delay);
  options.progress_interval = absl::GetFlag(FLAGS_progress_interval);
  const int64_t fetch_ahead = absl::GetFlag(FLAGS_fetch_ahead);
  const int64_t fetch_ahead_mib = absl::GetFlag(FLAGS_fetch_ahead_mib);
  const int64_t batch = absl::GetFlag(FLAGS_batch);
  const int64_t batch_mib = absl::GetFlag(FLAGS_batch_mib);
  if (fetch_ahead < 1 || fetch_ahead > 100000) {
    return absl::InvalidArgumentError("--fetch_ahead must be 1..100000");
  }
  if (fetch_ahead_mib < 1 || fetch_ahead_mib > 65536) {
    return absl::InvalidArgumentError("--fetch_ahead_mib must be 1..65536");
  }
  if (batch < 1 || batch > 1000) return absl::InvalidArgumentError("--batch must be 1..1000");
  if (batch_mib < 1 || batch_mib > 1024) {
    return absl::InvalidArgumentError("--batch_mib must be 1..1024");
  }
  options.fetch.capacity = static_cast<size_t>(fetch_ahead);
  options.fetch.capacity_bytes = static_cast<uint64_t>(fetch_ahead_mib) << 20;
  options.fetch.batch = static_cast<int>(batch);
  options.fetch.batch_bytes = static_cast<uint64_t>(batch_mib) << 20;
  options.exit_at_tip = absl::GetFlag(FLAGS_exit_at_tip);
  options.node_name = absl::GetFlag(FLAGS_rpc_url);
  options.tandem_name = absl::GetFlag(FLAGS_addr);
  return options;
}

absl::StatusOr<NodeRpcOptions> NodeRpcOptionsFromFlags() {
  NodeRpcOptions options;
  options.url = absl::GetFlag(FLAGS_rpc_url);
  options.cookie_path = absl::GetFlag(FLAGS_rpc_cookie);
  options.user = absl::GetFlag(FLAGS_rpc_user);
  options.password = absl::GetFlag(FLAGS_rpc_password);
  options.timeout = absl::GetFlag(FLAGS_rpc_timeout);
  if (options.url.empty()) return absl::InvalidArgumentError("--rpc_url is empty");
  if (!options.cookie_path.empty() && (!options.user.empty() || !options.password.empty())) {
    return absl::InvalidArgumentError("give --rpc_cookie or --rpc_user/--rpc_password, not both");
  }
  if (options.cookie_path.empty() && options.user.empty()) {
    return absl::InvalidArgumentError(
        "the node needs credentials: --rpc_cookie=<datadir>/.cookie or --rpc_user and "
        "--rpc_password");
  }
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--rpc_timeout must be positive");
  }
  return options;
}

// Turns SIGINT and SIGTERM into Follower::Stop on a thread of its own (sigwait), so nothing runs
// in a signal handler. The signals are blocked in every thread: construct it before any other
// thread starts.
class SignalWatcher {
 public:
  explicit SignalWatcher(ProgressLog& log) : log_(log) {
    sigemptyset(&signals_);
    sigaddset(&signals_, SIGINT);
    sigaddset(&signals_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
  }
  ~SignalWatcher() {
    if (!thread_.joinable()) return;
    done_ = true;
    pthread_kill(thread_.native_handle(), SIGTERM);  // Wakes sigwait; done_ says it is ours.
    thread_.join();
  }

  void Watch(Follower& follower) {
    thread_ = std::thread([this, &follower] {
      for (;;) {
        int signal = 0;
        if (sigwait(&signals_, &signal) != 0) continue;
        if (done_) return;
        log_.Line(absl::StrCat(signal == SIGINT ? "SIGINT" : "SIGTERM",
                               ": stopping once the blocks already sent are answered"));
        follower.Stop();
      }
    });
  }

 private:
  ProgressLog& log_;
  sigset_t signals_;
  std::atomic<bool> done_{false};  // Set before the wake-up signal the destructor sends.
  std::thread thread_;
};

int Run(int argc, char** argv) {
  util::CommandLineOptions command_line;
  command_line.usage = kUsage;
  command_line.help_flag_files = {"tools/follow/tandem_follow.cc", client::kConnectionFlagsFile};
  command_line.usage_error_status = kExitUsage;
  std::vector<char*> positional = util::ParseCommandLineOrExit(argc, argv, command_line);
  if (positional.size() > 1) return UsageError("takes no arguments, only flags");

  if (absl::Status flags = client::ValidateConnectionFlags(); !flags.ok()) {
    return UsageError(flags.message());
  }
  absl::StatusOr<FollowerOptions> options = FollowerOptionsFromFlags();
  if (!options.ok()) return UsageError(options.status().message());
  absl::StatusOr<NodeRpcOptions> node_options = NodeRpcOptionsFromFlags();
  if (!node_options.ok()) return UsageError(node_options.status().message());

  const std::string token = absl::GetFlag(FLAGS_token);
  const std::string ingest_token = absl::GetFlag(FLAGS_ingest_token);
  absl::StatusOr<client::ConnectionOptions> reader_options = client::ConnectionOptionsFromFlags(
      absl::GetFlag(FLAGS_addr), token.empty() ? ingest_token : token);
  if (!reader_options.ok()) {
    std::cerr << "tandem-follow: " << reader_options.status().message() << "\n";
    return kExitInput;
  }
  client::ConnectionOptions writer_options = *reader_options;
  if (!ingest_token.empty()) writer_options.token = ingest_token;

  // libcurl's global set-up must run while no other thread does (curl_global_init(3)): before
  // the signal watcher, the metrics server, the ZMQ notifier and gRPC start theirs. It is never
  // undone: curl_global_cleanup has the same rule, and gRPC's threads live until the process exits.
  if (const CURLcode curl = curl_global_init(CURL_GLOBAL_DEFAULT); curl != CURLE_OK) {
    std::cerr << "tandem-follow: cannot set up libcurl: " << curl_easy_strerror(curl) << "\n";
    return kExitFailed;
  }
  ProgressLog log(std::cerr);
  SignalWatcher signals(log);  // Before any thread starts, so every thread blocks the signals.

  FollowMetrics metrics;
  if (const std::string address = absl::GetFlag(FLAGS_metrics_listen); !address.empty()) {
    if (absl::Status served = metrics.Serve(address); !served.ok()) {
      std::cerr << "tandem-follow: " << served.message() << "\n";
      return kExitInput;
    }
  }
  Wakeup wakeup;
  std::unique_ptr<BlockNotifier> notifier;
  if (const std::string endpoint = absl::GetFlag(FLAGS_zmq); !endpoint.empty()) {
    absl::StatusOr<std::unique_ptr<BlockNotifier>> started = BlockNotifier::Start(endpoint, wakeup);
    if (!started.ok()) return UsageError(started.status().message());
    notifier = *std::move(started);
  }

  int exit_status = kExitOk;
  {
    NodeRpc node(*node_options);
    client::Connection reader(*reader_options);
    std::optional<client::Connection> writer;
    if (writer_options.token != reader_options->token) writer.emplace(writer_options);
    Follower follower(*options, node, reader, writer.has_value() ? *writer : reader, metrics,
                      wakeup, log);
    signals.Watch(follower);
    log.Line(absl::StrCat("following the node at ", node_options->url, " into tandemd at ",
                          options->tandem_name, "; new blocks by ",
                          notifier ? absl::StrCat("ZMQ ", absl::GetFlag(FLAGS_zmq), " and ") : "",
                          "polling every ", absl::FormatDuration(options->poll_interval),
                          "; max reorg depth ", options->max_reorg_depth));
    const FollowResult result = follower.Run();
    notifier.reset();
    switch (result.exit) {
      case FollowExit::kStopped:
      case FollowExit::kCaughtUp:
        log.Line(result.message);
        exit_status = kExitOk;
        break;
      case FollowExit::kReorgTooDeep:
        log.Line(absl::StrCat("stopping: ", result.message));
        exit_status = kExitReorgTooDeep;
        break;
      case FollowExit::kFailed:
        log.Line(absl::StrCat("stopping: ", result.message));
        exit_status = kExitFailed;
        break;
    }
  }
  return exit_status;
}

}  // namespace
}  // namespace tandem::follow

int main(int argc, char** argv) { return tandem::follow::Run(argc, argv); }
