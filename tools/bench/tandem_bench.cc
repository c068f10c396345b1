// tandem-bench: end-to-end load over gRPC. It starts its own tandemd per run (a fresh temporary
// database, the chosen module and swap policy, loopback ports), ingests the same blocks under
// each policy, and reports blocks/s, block latency, swap pauses, peak RSS and views/s as JSON
// and a Markdown table. It speaks only gRPC and never links the server, engine or store.
//
// Usage: tandem-bench [--blocks=300] [--policies=none,sync,block,threshold] [--json_out=FILE]
//                     [--markdown_out=FILE] ...   (`tandem-bench --help` lists every flag)
// Every child tandemd is killed when tandem-bench exits, is interrupted, or dies (PDEATHSIG).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "tandem/v1/tandem.grpc.pb.h"
#include "tools/bench/bitcoin_blocks.h"
#include "tools/bench/ceiling.h"
#include "tools/client/connection.h"
#include "tools/client/json.h"
#include "tools/client/proto_time.h"
#include "util/command_line.h"

ABSL_FLAG(std::string, tandemd, TANDEM_BENCH_DEFAULT_TANDEMD,
          "Path of the tandemd binary to start.");
ABSL_FLAG(std::string, guest_dir, TANDEM_BENCH_DEFAULT_GUEST_DIR,
          "Folder of the built guests (bitcoin_indexer.wasm, bench_guest.wasm).");
ABSL_FLAG(std::string, guests, "bitcoin_indexer,bench_guest",
          "Guests to run, by file name without .wasm (the small example indexer, the 2-3 MB "
          "benchmark guest).");
ABSL_FLAG(std::string, fixtures, TANDEM_BENCH_DEFAULT_FIXTURES,
          "tests/data/bitcoin_blocks.json: real blocks that start the `mixed` block set.");
ABSL_FLAG(std::string, policies, "none,sync,block,threshold",
          "Swap policies to compare, each on its own tandemd. `none` and `sync` are the baselines "
          "of the ratios.");
ABSL_FLAG(std::string, ceiling, TANDEM_BENCH_DEFAULT_CEILING,
          "The ingest_ceiling binary (benchmarks/): the `real` block set's guest over an in-memory "
          "map in-process, one instance reused. The `real` runs report their ratio to it. Empty "
          "or missing: no ceiling.");
ABSL_FLAG(std::string, block_sets, "small,mixed,real",
          "`small`: synthetic blocks of a coinbase and up to 3 spends (~300-700 bytes). `mixed`: "
          "the 20 real fixture blocks (215 bytes to 1.38 MB), then synthetic ones. `real`: the "
          "fixture blocks over and over, renumbered 1, 2, ... (run unary and over StreamBlocks "
          "for every policy of --stream_policies, and against the ceiling).");
ABSL_FLAG(int, blocks, 300, "Blocks per ingest run (heights 1..N).");
ABSL_FLAG(absl::Duration, run_timeout, absl::Seconds(60),
          "Upper bound of one ingest run; a run that hits it reports the blocks it did.");
ABSL_FLAG(std::string, stream_policies, "none,block",
          "Policies whose `small` ingest is repeated over StreamBlocks (unary vs stream).");
ABSL_FLAG(std::string, view_policies, "block",
          "Policies under which views/s are measured while ingest runs.");
ABSL_FLAG(std::string, view_clients, "1,8,32", "Concurrent view clients of the view runs.");
ABSL_FLAG(absl::Duration, view_duration, absl::Seconds(4), "Length of each view run.");
ABSL_FLAG(bool, fsync, true, "Passed to tandemd --fsync (its default: fsync on every commit).");
ABSL_FLAG(std::string, extra_tandemd_flags, "",
          "More tandemd flags, space-separated (e.g. --memory_limit=256MiB).");
ABSL_FLAG(std::string, json_out, "tandem-bench.json", "Where to write the JSON results.");
ABSL_FLAG(std::string, markdown_out, "", "Where to write the Markdown table (also printed).");

namespace tandem::bench {
namespace {

using Clock = std::chrono::steady_clock;
namespace v1 = ::tandem::v1;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double Quantile(std::vector<double> samples, double q) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  size_t rank = static_cast<size_t>(q * static_cast<double>(samples.size()));
  return samples[std::min(rank, samples.size() - 1)];
}

double DurationMicros(const google::protobuf::Duration& d) {
  return absl::ToDoubleMicroseconds(client::FromProto(d));
}

std::vector<std::string> SplitList(const std::string& text) {
  return absl::StrSplit(text, ',', absl::SkipEmpty());
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// ---------------------------------------------------------------------------------------------
// Child processes: every tandemd started is killed on exit, on SIGINT/SIGTERM, and (through
// PR_SET_PDEATHSIG) when tandem-bench itself dies.

constexpr int kMaxChildren = 16;
// Signal handlers read these: lock-free atomics, set before the child can outlive us.
std::atomic<pid_t> g_children[kMaxChildren];

void RegisterChild(pid_t pid) {
  for (auto& slot : g_children) {
    pid_t expected = 0;
    if (slot.compare_exchange_strong(expected, pid)) return;
  }
}
void UnregisterChild(pid_t pid) {
  for (auto& slot : g_children) {
    pid_t expected = pid;
    if (slot.compare_exchange_strong(expected, 0)) return;
  }
}
void KillChildren() {
  for (auto& slot : g_children) {
    pid_t pid = slot.exchange(0);
    if (pid > 0) kill(pid, SIGKILL);
  }
}
void OnSignal(int signal) {
  KillChildren();
  _exit(128 + signal);
}

// A free loopback port (bound and released; tandemd binds it right after).
absl::StatusOr<int> PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::UnavailableError("socket() failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t len = sizeof address;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &len) != 0) {
    close(fd);
    return absl::UnavailableError("could not bind a loopback port");
  }
  int port = ntohs(address.sin_port);
  close(fd);
  return port;
}

// One tandemd with its own temporary database and loopback ports.
class Tandemd {
 public:
  struct Config {
    std::string module_path;
    std::string policy;
  };

  // Starts tandemd and waits (up to 60 s) until its pair has an instance ready to serve.
  static absl::StatusOr<std::unique_ptr<Tandemd>> Start(const Config& config) {
    auto server = std::unique_ptr<Tandemd>(new Tandemd());
    std::string pattern = (std::filesystem::temp_directory_path() / "tandem-bench-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) return absl::UnavailableError("mkdtemp failed");
    server->dir_ = pattern;
    absl::StatusOr<int> port = PickFreePort();
    absl::StatusOr<int> admin_port = PickFreePort();
    if (!port.ok()) return port.status();
    if (!admin_port.ok()) return admin_port.status();
    server->addr_ = absl::StrCat("127.0.0.1:", *port);
    server->admin_addr_ = absl::StrCat("127.0.0.1:", *admin_port);
    server->log_path_ = (server->dir_ / "tandemd.log").string();

    std::vector<std::string> args = {
        absl::GetFlag(FLAGS_tandemd),
        absl::StrCat("--module=", config.module_path),
        absl::StrCat("--db=", (server->dir_ / "db").string()),
        absl::StrCat("--listen=", server->addr_),
        absl::StrCat("--admin_listen=", server->admin_addr_),
        "--metrics_listen=",
        absl::StrCat("--swap_policy=", config.policy),
        absl::StrCat("--fsync=", absl::GetFlag(FLAGS_fsync) ? "true" : "false"),
    };
    for (absl::string_view extra :
         absl::StrSplit(absl::GetFlag(FLAGS_extra_tandemd_flags), ' ', absl::SkipEmpty())) {
      args.emplace_back(extra);
    }
    pid_t pid = fork();
    if (pid < 0) return absl::UnavailableError("fork failed");
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      FILE* log = std::fopen(server->log_path_.c_str(), "w");
      if (log != nullptr) {
        dup2(fileno(log), STDOUT_FILENO);
        dup2(fileno(log), STDERR_FILENO);
      }
      std::vector<char*> argv;
      for (std::string& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      std::perror("execv tandemd");
      _exit(127);
    }
    server->pid_ = pid;
    RegisterChild(pid);

    client::ConnectionOptions options;
    options.address = server->addr_;
    options.call_timeout = absl::Seconds(120);
    server->public_ = std::make_unique<client::Connection>(options);
    options.address = server->admin_addr_;
    server->admin_ = std::make_unique<client::Connection>(options);

    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      int wstatus;
      if (waitpid(pid, &wstatus, WNOHANG) == pid) {
        UnregisterChild(pid);
        server->pid_ = 0;
        return absl::UnavailableError(
            absl::StrCat("tandemd exited during start-up: ", server->LogTail()));
      }
      auto context = server->admin_->UnaryContext(absl::Milliseconds(500));
      v1::StatusResponse status;
      // Ready once an instance can serve: the active, or (before the first call promotes it)
      // a READY standby.
      if (server->admin_->admin().Status(context.get(), v1::StatusRequest(), &status).ok() &&
          (status.active().present() || status.standby_state() == v1::STANDBY_STATE_READY)) {
        return server;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return absl::DeadlineExceededError(
        absl::StrCat("tandemd did not become ready within 60 s: ", server->LogTail()));
  }

  // Closes the client connections, sends SIGTERM, then SIGKILL after 10 s; removes the database.
  ~Tandemd() {
    public_.reset();
    admin_.reset();
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      const absl::Time deadline = absl::Now() + absl::Seconds(10);
      int wstatus;
      while (waitpid(pid_, &wstatus, WNOHANG) != pid_) {
        if (absl::Now() > deadline) {
          std::fprintf(stderr, "(tandemd %d did not exit within 10 s of SIGTERM; killed) ", pid_);
          kill(pid_, SIGKILL);
          waitpid(pid_, &wstatus, 0);
          break;
        }
        absl::SleepFor(absl::Milliseconds(10));
      }
      UnregisterChild(pid_);
    }
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }

  // VmHWM of the process: its peak resident set, in bytes (0 when unreadable).
  uint64_t PeakRssBytes() const {
    std::ifstream status(absl::StrCat("/proc/", pid_, "/status"));
    std::string line;
    while (std::getline(status, line)) {
      if (absl::StartsWith(line, "VmHWM:")) {
        uint64_t kib = 0;
        std::string number(absl::StripAsciiWhitespace(absl::StripSuffix(line.substr(6), "kB")));
        absl::SimpleAtoi(absl::StripAsciiWhitespace(number), &kib);
        return kib * 1024;
      }
    }
    return 0;
  }

  std::string LogTail() const {
    std::string log = ReadFile(log_path_);
    if (log.size() > 2000) log = log.substr(log.size() - 2000);
    return absl::StrCat("(log ", log_path_, ")\n", log);
  }

  // The public listener (Indexer) and the admin listener (Admin), plaintext on loopback.
  client::Connection& public_connection() { return *public_; }
  client::Connection& admin_connection() { return *admin_; }
  v1::Indexer::Stub& indexer() { return public_->indexer(); }
  v1::Admin::Stub& admin() { return admin_->admin(); }

 private:
  Tandemd() = default;

  std::filesystem::path dir_;
  std::string addr_, admin_addr_, log_path_;
  pid_t pid_ = 0;
  std::unique_ptr<client::Connection> public_;
  std::unique_ptr<client::Connection> admin_;
};

// Collects swap pauses and warm durations from Admin.WatchEvents on its own thread.
class EventWatcher {
 public:
  explicit EventWatcher(client::Connection& admin) : context_(admin.StreamContext()) {
    thread_ = std::thread([this, &admin] {
      std::unique_ptr<grpc::ClientReader<v1::PairEvent>> reader =
          admin.admin().WatchEvents(context_.get(), v1::WatchEventsRequest());
      v1::PairEvent event;
      while (reader->Read(&event)) {
        std::lock_guard<std::mutex> lock(mu_);
        if (event.kind() == v1::PairEvent::KIND_SWAP && event.reason() != v1::SWAP_REASON_STARTUP) {
          pauses_us_.push_back(DurationMicros(event.pause()));
        } else if (event.kind() == v1::PairEvent::KIND_WARM_READY) {
          warms_us_.push_back(DurationMicros(event.duration()));
        }
        dropped_ += event.dropped_before();
      }
      reader->Finish();
    });
  }
  ~EventWatcher() { Stop(); }
  void Stop() {
    if (!thread_.joinable()) return;
    absl::SleepFor(absl::Milliseconds(50));  // Let the last events of the run arrive.
    context_->TryCancel();
    thread_.join();
  }
  std::vector<double> pauses_us() {
    std::lock_guard<std::mutex> lock(mu_);
    return pauses_us_;
  }
  std::vector<double> warms_us() {
    std::lock_guard<std::mutex> lock(mu_);
    return warms_us_;
  }
  uint64_t dropped() {
    std::lock_guard<std::mutex> lock(mu_);
    return dropped_;
  }

 private:
  const std::unique_ptr<grpc::ClientContext> context_;
  std::mutex mu_;
  std::vector<double> pauses_us_;  // Guarded by mu_.
  std::vector<double> warms_us_;   // Guarded by mu_.
  uint64_t dropped_ = 0;           // Guarded by mu_.
  std::thread thread_;
};

// Clients calling a view at the tip in a loop, each on its own thread.
class ViewClients {
 public:
  ViewClients(client::Connection& connection, const std::string& view, int clients) {
    for (int i = 0; i < clients; ++i) {
      threads_.emplace_back([this, &connection, view] {
        while (!stop_.load(std::memory_order_relaxed)) {
          auto context = connection.UnaryContext(absl::Seconds(10));
          v1::ViewRequest request;
          request.set_name(view);
          v1::ViewResponse response;
          grpc::Status status = connection.indexer().View(context.get(), request, &response);
          (status.ok() ? ok_ : failed_).fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
  }
  ~ViewClients() { Stop(); }
  void Stop() {
    stop_ = true;
    for (std::thread& thread : threads_) thread.join();
    threads_.clear();
  }
  uint64_t ok() const { return ok_.load(); }
  uint64_t failed() const { return failed_.load(); }

 private:
  // Atomics: a stop flag and counters, read only to stop and to report.
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> ok_{0};
  std::atomic<uint64_t> failed_{0};
  std::vector<std::thread> threads_;
};

// ---------------------------------------------------------------------------------------------
// Runs.

struct RunSpec {
  std::string guest;
  std::string block_set;
  std::string policy;
  bool stream = false;
  int view_clients = 0;
};

struct RunResult {
  RunSpec spec;
  std::string error;
  int blocks = 0;
  double seconds = 0;
  double blocks_per_s = 0;
  double latency_p50_ms = 0, latency_p99_ms = 0;
  double server_block_p50_ms = 0;
  size_t swaps = 0;
  double pause_p50_us = 0, pause_p99_us = 0, pause_max_us = 0;
  size_t warms = 0;
  double warm_p50_ms = 0;
  uint64_t events_dropped = 0;
  double peak_rss_mb = 0;
  uint64_t views = 0, view_failures = 0;
  double views_per_s = 0;
  std::optional<double> vs_none, vs_sync;
  std::optional<double> vs_ceiling;  // `real` runs: blocks/s over the ceiling's (same guest)
};

// Hands out block `height` of a block set, making synthetic blocks on demand (every run of a
// set sees the same bytes at the same height).
class BlockSource {
 public:
  BlockSource(std::vector<std::string> prefix) : blocks_(std::move(prefix)) {}
  const std::string& At(uint32_t height) {
    std::lock_guard<std::mutex> lock(mu_);
    while (blocks_.size() < height) {
      blocks_.push_back(generator_.Next(static_cast<uint32_t>(blocks_.size() + 1)));
    }
    return blocks_[height - 1];
  }

 private:
  std::mutex mu_;
  std::vector<std::string> blocks_;  // Guarded by mu_; height h at index h - 1.
  SyntheticBlocks generator_{42};    // Guarded by mu_.
};

std::string ViewOf(const std::string& guest) {
  return guest == "bench_guest" ? "stats" : "block_summary";
}

RunResult Run(const RunSpec& spec, BlockSource& source) {
  RunResult result;
  result.spec = spec;
  Tandemd::Config config;
  config.module_path = absl::StrCat(absl::GetFlag(FLAGS_guest_dir), "/", spec.guest, ".wasm");
  config.policy = spec.policy;
  absl::StatusOr<std::unique_ptr<Tandemd>> server = Tandemd::Start(config);
  if (!server.ok()) {
    result.error = server.status().ToString();
    return result;
  }
  Tandemd& tandemd = **server;
  EventWatcher events(tandemd.admin_connection());
  absl::SleepFor(absl::Milliseconds(100));  // The watch is registered before the first block.

  const bool view_run = spec.view_clients > 0;
  const int max_blocks = view_run ? 1'000'000 : absl::GetFlag(FLAGS_blocks);
  const absl::Duration limit =
      view_run ? absl::GetFlag(FLAGS_view_duration) : absl::GetFlag(FLAGS_run_timeout);
  std::vector<double> latencies_ms, server_ms;
  std::unique_ptr<ViewClients> views;
  if (view_run) {
    // One block first, so that views at the tip have a height to answer at.
    const std::string& bytes = source.At(1);
    auto context = tandemd.public_connection().UnaryContext();
    v1::SubmitBlockRequest request;
    request.set_height(1);
    request.set_block(bytes);
    v1::SubmitBlockResponse response;
    grpc::Status status = tandemd.indexer().SubmitBlock(context.get(), request, &response);
    if (!status.ok()) {
      result.error = absl::StrCat("block 1: ", status.error_message());
      return result;
    }
    views = std::make_unique<ViewClients>(tandemd.public_connection(), ViewOf(spec.guest),
                                          spec.view_clients);
  }
  const uint32_t first = view_run ? 2 : 1;
  const auto start = Clock::now();
  const absl::Time end = absl::Now() + limit;
  uint32_t height = first;
  if (!spec.stream) {
    for (; height < first + static_cast<uint32_t>(max_blocks) && absl::Now() < end; ++height) {
      auto context = tandemd.public_connection().UnaryContext();
      v1::SubmitBlockRequest request;
      request.set_height(height);
      request.set_block(source.At(height));
      v1::SubmitBlockResponse response;
      const auto sent = Clock::now();
      grpc::Status status = tandemd.indexer().SubmitBlock(context.get(), request, &response);
      latencies_ms.push_back(SecondsSince(sent) * 1e3);
      if (!status.ok()) {
        result.error = absl::StrCat("block ", height, ": ", status.error_message());
        break;
      }
      server_ms.push_back(DurationMicros(response.duration()) / 1e3);
    }
  } else {
    // Pipelined: a writer thread sends every block; responses come back in order.
    auto context = tandemd.public_connection().StreamContext();
    auto stream = tandemd.indexer().StreamBlocks(context.get());
    const int count = max_blocks;
    // Send times in steady-clock nanoseconds: written by the writer, read by this thread.
    std::vector<std::atomic<int64_t>> sent(count);
    for (int i = 0; i < count; ++i) source.At(first + i);  // Made before timing starts.
    std::thread writer([&] {
      for (int i = 0; i < count; ++i) {
        v1::SubmitBlockRequest request;
        request.set_height(first + i);
        request.set_block(source.At(first + i));
        sent[i] = Clock::now().time_since_epoch().count();
        if (!stream->Write(request)) break;
      }
      stream->WritesDone();
    });
    v1::SubmitBlockResponse response;
    int received = 0;
    while (received < count && stream->Read(&response)) {
      const Clock::time_point sent_at{Clock::duration(sent[received].load())};
      latencies_ms.push_back(std::chrono::duration<double>(Clock::now() - sent_at).count() * 1e3);
      server_ms.push_back(DurationMicros(response.duration()) / 1e3);
      ++received;
    }
    writer.join();
    grpc::Status status = stream->Finish();
    if (!status.ok()) result.error = absl::StrCat("StreamBlocks: ", status.error_message());
    height = first + received;
  }
  result.seconds = SecondsSince(start);
  if (views) {
    views->Stop();
    result.views = views->ok();
    result.view_failures = views->failed();
    result.views_per_s = static_cast<double>(result.views) / result.seconds;
  }
  events.Stop();
  result.blocks = static_cast<int>(latencies_ms.size());
  result.blocks_per_s = result.blocks / result.seconds;
  result.latency_p50_ms = Quantile(latencies_ms, 0.5);
  result.latency_p99_ms = Quantile(latencies_ms, 0.99);
  result.server_block_p50_ms = Quantile(server_ms, 0.5);
  std::vector<double> pauses = events.pauses_us();
  result.swaps = pauses.size();
  result.pause_p50_us = Quantile(pauses, 0.5);
  result.pause_p99_us = Quantile(pauses, 0.99);
  result.pause_max_us = Quantile(pauses, 1.0);
  result.warms = events.warms_us().size();
  result.warm_p50_ms = Quantile(events.warms_us(), 0.5) / 1e3;
  result.events_dropped = events.dropped();
  result.peak_rss_mb = static_cast<double>(tandemd.PeakRssBytes()) / (1 << 20);
  return result;
}

// ---------------------------------------------------------------------------------------------
// The machine and the report.

struct Machine {
  unsigned cores = 0;
  std::string cpu;
  double ram_gib = 0;
  std::string date;
  std::string load_before, load_after;
};

std::string LoadAverage() {
  std::string text = ReadFile("/proc/loadavg");
  std::vector<std::string> parts = absl::StrSplit(text, ' ');
  if (parts.size() < 3) return "?";
  return absl::StrCat(parts[0], " ", parts[1], " ", parts[2]);
}

Machine DescribeMachine() {
  Machine machine;
  machine.cores = std::thread::hardware_concurrency();
  std::istringstream cpuinfo(ReadFile("/proc/cpuinfo"));
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (absl::StartsWith(line, "model name")) {
      machine.cpu = std::string(absl::StripAsciiWhitespace(line.substr(line.find(':') + 1)));
      break;
    }
  }
  std::istringstream meminfo(ReadFile("/proc/meminfo"));
  while (std::getline(meminfo, line)) {
    if (absl::StartsWith(line, "MemTotal:")) {
      double kib = 0;
      std::string number(absl::StripAsciiWhitespace(
          absl::StripSuffix(absl::StripAsciiWhitespace(line.substr(9)), "kB")));
      absl::SimpleAtod(absl::StripAsciiWhitespace(number), &kib);
      machine.ram_gib = kib / (1 << 20);
    }
  }
  machine.date = absl::FormatTime("%Y-%m-%d %H:%M UTC", absl::Now(), absl::UTCTimeZone());
  machine.load_before = LoadAverage();
  return machine;
}

// A figure rounded to `digits` decimals, so the JSON reads like the table (nlohmann writes the
// shortest text that round-trips, so 1164.73 stays "1164.73").
double Rounded(double value, int digits) {
  const double scale = std::pow(10.0, digits);
  return std::round(value * scale) / scale;
}

client::Json RatioJson(const std::optional<double>& ratio) {
  return ratio ? client::Json(Rounded(*ratio, 3)) : client::Json(nullptr);
}

// `extra`: more top-level members (the ceiling).
std::string Json(const Machine& machine, const std::vector<RunResult>& results,
                 const std::string& command, const client::Json& extra) {
  client::Json document;
  document["machine"] = {{"cores", machine.cores},
                         {"cpu", machine.cpu},
                         {"ram_gib", Rounded(machine.ram_gib, 1)},
                         {"date", machine.date},
                         {"load_before", machine.load_before},
                         {"load_after", machine.load_after}};
  document["command"] = command;
  client::Json runs = client::Json::array();
  for (const RunResult& r : results) {
    client::Json run;
    run["guest"] = r.spec.guest;
    run["block_set"] = r.spec.block_set;
    run["policy"] = r.spec.policy;
    run["mode"] = r.spec.stream ? "stream" : "unary";
    run["view_clients"] = r.spec.view_clients;
    run["error"] = r.error;
    run["blocks"] = r.blocks;
    run["seconds"] = Rounded(r.seconds, 3);
    run["blocks_per_s"] = Rounded(r.blocks_per_s, 2);
    run["latency_p50_ms"] = Rounded(r.latency_p50_ms, 3);
    run["latency_p99_ms"] = Rounded(r.latency_p99_ms, 3);
    run["server_block_p50_ms"] = Rounded(r.server_block_p50_ms, 3);
    run["swaps"] = r.swaps;
    run["swap_pause_p50_us"] = Rounded(r.pause_p50_us, 2);
    run["swap_pause_p99_us"] = Rounded(r.pause_p99_us, 2);
    run["swap_pause_max_us"] = Rounded(r.pause_max_us, 2);
    run["warms"] = r.warms;
    run["warm_p50_ms"] = Rounded(r.warm_p50_ms, 3);
    run["events_dropped"] = r.events_dropped;
    run["peak_rss_mib"] = Rounded(r.peak_rss_mb, 1);
    run["views"] = r.views;
    run["view_failures"] = r.view_failures;
    run["views_per_s"] = Rounded(r.views_per_s, 1);
    run["vs_none"] = RatioJson(r.vs_none);
    run["vs_sync"] = RatioJson(r.vs_sync);
    run["vs_ceiling"] = RatioJson(r.vs_ceiling);
    runs.push_back(std::move(run));
  }
  document["runs"] = std::move(runs);
  for (const auto& [key, value] : extra.items()) document[key] = value;
  return client::DumpJson(document, /*indent=*/2) + "\n";
}

// The first line of an error, for a table cell or a list item.
std::string OneLine(const std::string& error) {
  std::string line = error.substr(0, error.find('\n'));
  std::replace(line.begin(), line.end(), '|', '/');
  return line;
}

std::string Ratio(const std::optional<double>& ratio) {
  return ratio ? absl::StrFormat("%.2f", *ratio) : "";
}

std::string Markdown(const Machine& machine, const std::vector<RunResult>& results,
                     const std::string& command) {
  std::string out = absl::StrFormat(
      "Machine: %u cores, %s, %.1f GiB RAM; %s; load average before %s, after %s.\n\n",
      machine.cores, machine.cpu, machine.ram_gib, machine.date, machine.load_before,
      machine.load_after);
  absl::StrAppend(&out, "Command: `", command, "`\n\n");
  absl::StrAppend(&out,
                  "| guest | blocks | policy | mode | blocks/s | vs none | vs sync | latency p50 / "
                  "p99 ms | swaps | swap pause p50 / p99 / max µs | warm p50 ms | peak RSS MiB |\n"
                  "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const RunResult& r : results) {
    if (r.spec.view_clients > 0) continue;
    if (!r.error.empty() && r.blocks == 0) {
      absl::StrAppend(&out, "| ", r.spec.guest, " | ", r.spec.block_set, " | ", r.spec.policy,
                      " | ", r.spec.stream ? "stream" : "unary", " | failed: ", OneLine(r.error),
                      " | | | | | | | |\n");
      continue;
    }
    absl::StrAppendFormat(&out,
                          "| %s | %s ×%d | %s | %s | %.1f | %s | %s | %.2f / %.2f | %d | %.1f / "
                          "%.1f / %.1f | %.2f | %.0f |\n",
                          r.spec.guest, r.spec.block_set, r.blocks, r.spec.policy,
                          r.spec.stream ? "stream" : "unary", r.blocks_per_s, Ratio(r.vs_none),
                          Ratio(r.vs_sync), r.latency_p50_ms, r.latency_p99_ms,
                          static_cast<int>(r.swaps), r.pause_p50_us, r.pause_p99_us, r.pause_max_us,
                          r.warm_p50_ms, r.peak_rss_mb);
  }
  absl::StrAppend(&out,
                  "\nViews while ingest runs (small blocks, unary ingest):\n\n"
                  "| guest | policy | view clients | views/s | view failures | blocks/s during | "
                  "swap pause p50 / p99 / max µs | peak RSS MiB |\n"
                  "|---|---|---:|---:|---:|---:|---:|---:|\n");
  for (const RunResult& r : results) {
    if (r.spec.view_clients == 0) continue;
    if (!r.error.empty() && r.blocks == 0) {
      absl::StrAppend(&out, "| ", r.spec.guest, " | ", r.spec.policy, " | ", r.spec.view_clients,
                      " | failed: ", OneLine(r.error), " | | | | |\n");
      continue;
    }
    absl::StrAppendFormat(&out, "| %s | %s | %d | %.0f | %d | %.1f | %.1f / %.1f / %.1f | %.0f |\n",
                          r.spec.guest, r.spec.policy, r.spec.view_clients, r.views_per_s,
                          static_cast<int>(r.view_failures), r.blocks_per_s, r.pause_p50_us,
                          r.pause_p99_us, r.pause_max_us, r.peak_rss_mb);
  }
  std::vector<std::string> errors;
  for (const RunResult& r : results) {
    if (!r.error.empty()) {
      errors.push_back(absl::StrCat(
          "- ", r.spec.guest, " ", r.spec.block_set, " ", r.spec.policy,
          r.spec.stream ? " stream" : "",
          r.spec.view_clients > 0 ? absl::StrCat(" ", r.spec.view_clients, " view clients") : "",
          ": ", OneLine(r.error)));
    }
  }
  if (!errors.empty()) absl::StrAppend(&out, "\nErrors:\n", absl::StrJoin(errors, "\n"), "\n");
  return out;
}

// ---------------------------------------------------------------------------------------------
// The `real` block set against the ceiling (tools/bench/ceiling.h).

// Sets vs_ceiling on every `real` run whose guest has a ceiling.
void AddCeilingRatios(const std::vector<CeilingResult>& ceilings, std::vector<RunResult>& results) {
  for (RunResult& r : results) {
    if (r.spec.block_set != "real" || r.blocks == 0) continue;
    for (const CeilingResult& ceiling : ceilings) {
      if (ceiling.guest == r.spec.guest && ceiling.error.empty() && ceiling.blocks_per_s > 0) {
        r.vs_ceiling = r.blocks_per_s / ceiling.blocks_per_s;
      }
    }
  }
}

std::string CeilingMarkdown(const std::vector<CeilingResult>& ceilings,
                            const std::vector<RunResult>& results) {
  if (ceilings.empty()) return "";
  std::string out =
      "\nReal blocks (the fixtures repeated, renumbered) against the ceiling (the same guest and "
      "blocks in-process over an in-memory map, one instance reused, no RocksDB or gRPC):\n\n"
      "| guest | policy | mode | blocks/s | ceiling blocks/s | vs ceiling |\n"
      "|---|---|---|---:|---:|---:|\n";
  for (const CeilingResult& ceiling : ceilings) {
    if (!ceiling.error.empty()) {
      absl::StrAppend(&out, "| ", ceiling.guest, " | ceiling failed: ", OneLine(ceiling.error),
                      " | | | | |\n");
      continue;
    }
    for (const RunResult& r : results) {
      if (r.spec.block_set != "real" || r.spec.guest != ceiling.guest || r.blocks == 0) continue;
      absl::StrAppendFormat(&out, "| %s | %s | %s | %.1f | %.1f | %s |\n", r.spec.guest,
                            r.spec.policy, r.spec.stream ? "stream" : "unary", r.blocks_per_s,
                            ceiling.blocks_per_s, Ratio(r.vs_ceiling));
    }
  }
  return out;
}

int Main(int argc, char** argv) {
  util::CommandLineOptions command_line;
  command_line.usage =
      "end-to-end load over gRPC: starts tandemd per swap policy and guest, ingests the same "
      "blocks, reports JSON and Markdown.\nUsage: tandem-bench [flags]";
  command_line.help_flag_files = {"tools/bench/tandem_bench.cc"};
  std::vector<char*> rest = util::ParseCommandLineOrExit(argc, argv, command_line);
  if (rest.size() > 1) {
    std::fprintf(stderr, "tandem-bench takes no arguments, only flags (see --help)\n");
    return 2;
  }
  std::string command = "tandem-bench";
  for (int i = 1; i < argc; ++i) absl::StrAppend(&command, " ", argv[i]);

  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  signal(SIGHUP, OnSignal);
  std::atexit(KillChildren);

  if (access(absl::GetFlag(FLAGS_tandemd).c_str(), X_OK) != 0) {
    std::fprintf(stderr, "tandem-bench: no tandemd at %s (build it, or pass --tandemd)\n",
                 absl::GetFlag(FLAGS_tandemd).c_str());
    return 1;
  }
  std::vector<std::string> fixtures = LoadFixtureBlocks(absl::GetFlag(FLAGS_fixtures));
  if (fixtures.empty()) {
    std::fprintf(stderr, "tandem-bench: no fixture blocks in %s\n",
                 absl::GetFlag(FLAGS_fixtures).c_str());
    return 1;
  }
  std::map<std::string, std::unique_ptr<BlockSource>> sources;
  sources["small"] = std::make_unique<BlockSource>(std::vector<std::string>());
  sources["mixed"] = std::make_unique<BlockSource>(fixtures);
  sources["real"] =
      std::make_unique<BlockSource>(RealBlockSet(fixtures, absl::GetFlag(FLAGS_blocks)));

  Machine machine = DescribeMachine();
  const std::vector<std::string> policies = SplitList(absl::GetFlag(FLAGS_policies));
  std::vector<RunSpec> specs;
  for (const std::string& guest : SplitList(absl::GetFlag(FLAGS_guests))) {
    for (const std::string& set : SplitList(absl::GetFlag(FLAGS_block_sets))) {
      if (sources.count(set) == 0) {
        std::fprintf(stderr, "tandem-bench: unknown block set %s\n", set.c_str());
        return 2;
      }
      for (const std::string& policy : policies) specs.push_back({guest, set, policy, false, 0});
    }
    for (const std::string& policy : SplitList(absl::GetFlag(FLAGS_stream_policies))) {
      specs.push_back({guest, "small", policy, true, 0});
    }
    if (absl::StrContains(absl::GetFlag(FLAGS_block_sets), "real")) {
      for (const std::string& policy : SplitList(absl::GetFlag(FLAGS_stream_policies))) {
        specs.push_back({guest, "real", policy, true, 0});
      }
    }
    for (const std::string& policy : SplitList(absl::GetFlag(FLAGS_view_policies))) {
      for (const std::string& clients : SplitList(absl::GetFlag(FLAGS_view_clients))) {
        int n = 0;
        if (!absl::SimpleAtoi(clients, &n) || n <= 0) {
          std::fprintf(stderr, "tandem-bench: bad --view_clients entry %s\n", clients.c_str());
          return 2;
        }
        specs.push_back({guest, "small", policy, false, n});
      }
    }
  }

  // The ceiling first, while no tandemd runs beside it.
  std::vector<CeilingResult> ceilings;
  if (absl::StrContains(absl::GetFlag(FLAGS_block_sets), "real")) {
    for (const std::string& guest : SplitList(absl::GetFlag(FLAGS_guests))) {
      std::fprintf(stderr, "ceiling: %s, real blocks ... ", guest.c_str());
      ceilings.push_back(RunCeiling(
          absl::GetFlag(FLAGS_ceiling), guest,
          absl::StrCat(absl::GetFlag(FLAGS_guest_dir), "/", guest, ".wasm"),
          absl::GetFlag(FLAGS_fixtures), absl::GetFlag(FLAGS_blocks), absl::Minutes(10)));
      std::fprintf(stderr, "%.1f blocks/s%s%s\n", ceilings.back().blocks_per_s,
                   ceilings.back().error.empty() ? "" : ", error: ", ceilings.back().error.c_str());
    }
  }

  std::vector<RunResult> results;
  for (const RunSpec& spec : specs) {
    std::fprintf(stderr, "run: %s, %s blocks, %s, %s%s ... ", spec.guest.c_str(),
                 spec.block_set.c_str(), spec.policy.c_str(), spec.stream ? "stream" : "unary",
                 spec.view_clients > 0
                     ? absl::StrCat(", ", spec.view_clients, " view clients").c_str()
                     : "");
    RunResult result = Run(spec, *sources[spec.block_set]);
    std::fprintf(stderr, "%d blocks, %.1f blocks/s%s%s\n", result.blocks, result.blocks_per_s,
                 result.error.empty() ? "" : ", error: ", result.error.c_str());
    results.push_back(std::move(result));
  }
  // Ratios against the baselines of the same guest, block set and mode.
  for (RunResult& r : results) {
    if (r.spec.view_clients > 0 || r.blocks == 0) continue;
    for (const RunResult& base : results) {
      if (base.spec.view_clients > 0 || base.blocks == 0 || base.spec.guest != r.spec.guest ||
          base.spec.block_set != r.spec.block_set || base.spec.stream != r.spec.stream ||
          &base == &r) {
        continue;
      }
      if (base.spec.policy == "none") r.vs_none = r.blocks_per_s / base.blocks_per_s;
      if (base.spec.policy == "sync") r.vs_sync = r.blocks_per_s / base.blocks_per_s;
    }
  }
  machine.load_after = LoadAverage();
  AddCeilingRatios(ceilings, results);

  client::Json extra;
  if (!ceilings.empty()) extra["ceiling"] = CeilingJson(ceilings);
  const std::string json = Json(machine, results, command, extra);
  const std::string markdown =
      Markdown(machine, results, command) + CeilingMarkdown(ceilings, results);
  std::cout << markdown;
  if (const std::string path = absl::GetFlag(FLAGS_json_out); !path.empty()) {
    std::ofstream(path) << json;
    std::fprintf(stderr, "JSON written to %s\n", path.c_str());
  }
  if (const std::string path = absl::GetFlag(FLAGS_markdown_out); !path.empty()) {
    std::ofstream(path) << markdown;
  }
  bool failed = false;
  for (const RunResult& r : results) failed |= !r.error.empty();
  return failed ? 1 : 0;
}

}  // namespace
}  // namespace tandem::bench

int main(int argc, char** argv) { return tandem::bench::Main(argc, argv); }
