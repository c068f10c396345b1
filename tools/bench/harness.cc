// What tandem-bench's runs share: tandemd as a child process with its own database and ports,
// the pair's events watched over gRPC, view clients, and small statistics helpers.
// It speaks only gRPC and never links the server, engine or store.
#include "tools/bench/harness.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tools/client/proto_time.h"
#include "util/proc_stat.h"

namespace tandem::bench {

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

double DurationMicros(const google::protobuf::Duration& duration) {
  return absl::ToDoubleMicroseconds(client::FromProto(duration));
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

namespace {

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

// `HOST:PORT` of `key=` in tandemd's --port_file, or "" while it is not there.
std::string PortFileEntry(const std::string& path, absl::string_view key) {
  for (absl::string_view line : absl::StrSplit(ReadFile(path), '\n')) {
    if (absl::ConsumePrefix(&line, key) && absl::ConsumePrefix(&line, "=")) {
      return std::string(absl::StripAsciiWhitespace(line));
    }
  }
  return "";
}

}  // namespace

void KillChildrenOnExit() {
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  signal(SIGHUP, OnSignal);
  std::atexit(KillChildren);
}

// ---------------------------------------------------------------------------------------------
// Tandemd

absl::StatusOr<std::unique_ptr<Tandemd>> Tandemd::Start(const Config& config) {
  auto server = std::unique_ptr<Tandemd>(new Tandemd());
  std::string pattern = (std::filesystem::temp_directory_path() / "tandem-bench-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) return absl::UnavailableError("mkdtemp failed");
  server->dir_ = pattern;
  server->log_path_ = (server->dir_ / "tandemd.log").string();
  const std::string port_file = (server->dir_ / "ports").string();

  std::vector<std::string> args = {
      config.binary,
      absl::StrCat("--module=", config.module_path),
      absl::StrCat("--db=", (server->dir_ / "db").string()),
      "--listen=127.0.0.1:0",
      "--admin_listen=127.0.0.1:0",
      "--metrics_listen=",
      absl::StrCat("--port_file=", port_file),
      absl::StrCat("--swap_policy=", config.policy),
      absl::StrCat("--fsync=", config.fsync ? "true" : "false"),
  };
  args.insert(args.end(), config.extra_flags.begin(), config.extra_flags.end());
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

  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  auto exited = [&]() {
    int wstatus;
    if (waitpid(pid, &wstatus, WNOHANG) != pid) return false;
    UnregisterChild(pid);
    server->pid_ = 0;
    return true;
  };
  while (server->addr_.empty() || server->admin_addr_.empty()) {
    if (exited()) {
      return absl::UnavailableError(
          absl::StrCat("tandemd exited during start-up: ", server->LogTail()));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("tandemd wrote no port file within 60 s: ", server->LogTail()));
    }
    server->addr_ = PortFileEntry(port_file, "listen");
    server->admin_addr_ = PortFileEntry(port_file, "admin_listen");
    absl::SleepFor(absl::Milliseconds(5));
  }

  client::ConnectionOptions options;
  options.address = server->addr_;
  options.call_timeout = absl::Seconds(120);
  server->public_ = std::make_unique<client::Connection>(options);
  options.address = server->admin_addr_;
  server->admin_ = std::make_unique<client::Connection>(options);

  while (absl::Now() < deadline) {
    if (exited()) {
      return absl::UnavailableError(
          absl::StrCat("tandemd exited during start-up: ", server->LogTail()));
    }
    auto context = server->admin_->UnaryContext(absl::Milliseconds(500));
    v1::StatusResponse status;
    // Ready once an instance can serve: the active, or (before the first call promotes it) a
    // READY standby.
    if (server->admin_->admin().Status(context.get(), v1::StatusRequest(), &status).ok() &&
        (status.active().present() || status.standby_state() == v1::STANDBY_STATE_READY)) {
      return server;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("tandemd did not become ready within 60 s: ", server->LogTail()));
}

Tandemd::~Tandemd() {
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

ProcessMemory Tandemd::Memory() const {
  ProcessMemory memory;
  std::ifstream status(absl::StrCat("/proc/", pid_, "/status"));
  std::string line;
  auto kib = [](absl::string_view rest) {
    uint64_t value = 0;
    absl::SimpleAtoi(
        absl::StripAsciiWhitespace(absl::StripSuffix(absl::StripAsciiWhitespace(rest), "kB")),
        &value);
    return value * 1024;
  };
  while (std::getline(status, line)) {
    absl::string_view rest = line;
    if (absl::ConsumePrefix(&rest, "VmRSS:")) memory.rss_bytes = kib(rest);
    if (absl::ConsumePrefix(&rest, "VmHWM:")) memory.peak_rss_bytes = kib(rest);
    if (absl::ConsumePrefix(&rest, "VmSize:")) memory.vm_bytes = kib(rest);
  }
  return memory;
}

CpuSeconds Tandemd::Cpu() const {
  absl::StatusOr<util::ProcStat> stat = util::ReadProcStat(absl::StrCat(pid_));
  if (!stat.ok()) return {};
  return {.busy = stat->cpu_seconds};
}

CpuSeconds MachineCpu() {
  // The first line of /proc/stat: "cpu user nice system idle iowait irq softirq steal ...".
  const std::string stat = ReadFile("/proc/stat");
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(stat).substr(0, stat.find('\n')), ' ', absl::SkipEmpty());
  uint64_t ticks[8] = {};
  if (fields.size() < 9 || fields[0] != "cpu") return {};
  for (int i = 0; i < 8; ++i) {
    if (!absl::SimpleAtoi(fields[i + 1], &ticks[i])) return {};
  }
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  const uint64_t busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6];
  return {.busy = static_cast<double>(busy) / tick, .steal = static_cast<double>(ticks[7]) / tick};
}

CpuSeconds SelfCpu() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return {.busy = seconds(usage.ru_utime) + seconds(usage.ru_stime)};
}

std::string Tandemd::LogTail() const {
  std::string log = ReadFile(log_path_);
  if (log.size() > 2000) log = log.substr(log.size() - 2000);
  return absl::StrCat("(log ", log_path_, ")\n", log);
}

absl::Status Tandemd::SubmitBlocks(uint32_t start, uint32_t count,
                                   const std::function<const std::string&(uint32_t)>& block_at) {
  for (uint32_t height = start; height < start + count; ++height) {
    auto context = public_->UnaryContext();
    v1::SubmitBlockRequest request;
    request.set_height(height);
    request.set_block(block_at(height));
    v1::SubmitBlockResponse response;
    grpc::Status status = indexer().SubmitBlock(context.get(), request, &response);
    if (!status.ok()) {
      return absl::UnavailableError(absl::StrCat("block ", height, ": ", status.error_message()));
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// EventWatcher

EventWatcher::EventWatcher(client::Connection& admin) : context_(admin.StreamContext()) {
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
      } else if (event.kind() == v1::PairEvent::KIND_INSTANCE_FAILED) {
        ++instance_failures_;
      }
      dropped_ += event.dropped_before();
    }
    reader->Finish();
  });
}

void EventWatcher::Stop() {
  if (!thread_.joinable()) return;
  absl::SleepFor(absl::Milliseconds(50));  // Let the last events of the run arrive.
  context_->TryCancel();
  thread_.join();
}

std::vector<double> EventWatcher::pauses_us() {
  std::lock_guard<std::mutex> lock(mu_);
  return pauses_us_;
}

std::vector<double> EventWatcher::warms_us() {
  std::lock_guard<std::mutex> lock(mu_);
  return warms_us_;
}

uint64_t EventWatcher::dropped() {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

uint64_t EventWatcher::instance_failures() {
  std::lock_guard<std::mutex> lock(mu_);
  return instance_failures_;
}

// ---------------------------------------------------------------------------------------------
// ViewClients

ViewClients::ViewClients(client::Connection& shared, int clients, NextRequest next,
                         bool own_connections) {
  for (int i = 0; i < clients; ++i) {
    client::Connection* connection = &shared;
    if (own_connections) {
      client::ConnectionOptions options = shared.options();
      options.own_connection = true;
      own_.push_back(std::make_unique<client::Connection>(options));
      connection = own_.back().get();
    }
    threads_.emplace_back([this, connection, next, i] {
      while (!stop_.load(std::memory_order_relaxed)) {
        std::optional<v1::ViewRequest> request = next(i);
        if (!request.has_value()) return;
        auto context = connection->UnaryContext(absl::Seconds(10));
        v1::ViewResponse response;
        grpc::Status status = connection->indexer().View(context.get(), *request, &response);
        if (status.ok()) {
          ok_.fetch_add(1, std::memory_order_relaxed);
        } else {
          failed_.fetch_add(1, std::memory_order_relaxed);
          std::lock_guard<std::mutex> lock(mu_);
          ++failures_by_code_[status.error_code()];
        }
      }
    });
  }
}

void ViewClients::Stop() {
  stop_ = true;
  Join();
}

void ViewClients::Join() {
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

std::map<int, uint64_t> ViewClients::failures_by_code() {
  std::lock_guard<std::mutex> lock(mu_);
  return failures_by_code_;
}

v1::ViewRequest ViewAtTip(const std::string& name, const std::string& request) {
  v1::ViewRequest view;
  view.set_name(name);
  view.set_request(request);
  return view;
}

}  // namespace tandem::bench
