// What tandem-bench's runs share: tandemd as a child process with its own database and ports,
// the pair's events watched over gRPC, view clients, and small statistics helpers.
// It speaks only gRPC and never links the server, engine or store.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "tandem/v1/tandem.grpc.pb.h"
#include "tools/bench/bitcoin_blocks.h"
#include "tools/client/connection.h"

namespace tandem::bench {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start);
// The q-quantile (0..1) of `samples` by nearest rank; 0 for none.
double Quantile(std::vector<double> samples, double q);
double DurationMicros(const google::protobuf::Duration& duration);
std::vector<std::string> SplitList(const std::string& text);
std::string ReadFile(const std::string& path);

// Kills every tandemd started so far when tandem-bench exits, is interrupted (SIGINT, SIGTERM,
// SIGHUP) or dies (PR_SET_PDEATHSIG in the child). Call once from main.
void KillChildrenOnExit();

// A process's memory from /proc/PID/status.
struct ProcessMemory {
  uint64_t rss_bytes = 0;       // VmRSS
  uint64_t peak_rss_bytes = 0;  // VmHWM
  uint64_t vm_bytes = 0;        // VmSize: the address space, reservations included
};

// CPU time in seconds, from /proc. For a process: user + system time of all its threads.
// For the machine (/proc/stat, all cores): `busy` is user, nice, system, irq and softirq time;
// `steal` is what the hypervisor gave other guests while this one wanted to run.
struct CpuSeconds {
  double busy = 0;
  double steal = 0;
};
CpuSeconds MachineCpu();
// This process (tandem-bench: its clients, watchers and writer threads).
CpuSeconds SelfCpu();

// One tandemd with its own temporary database, on loopback ports it picks itself (port 0,
// learned from its --port_file).
class Tandemd {
 public:
  struct Config {
    std::string binary;
    std::string module_path;
    std::string policy;
    bool fsync = true;
    // More flags (--memory_limit=..., --standby_pool=...).
    std::vector<std::string> extra_flags;
  };

  // Starts tandemd and waits (up to 60 s) until its pair has an instance ready to serve.
  static absl::StatusOr<std::unique_ptr<Tandemd>> Start(const Config& config);
  // Closes the client connections, sends SIGTERM, then SIGKILL after 10 s; removes the database.
  ~Tandemd();
  Tandemd(const Tandemd&) = delete;
  Tandemd& operator=(const Tandemd&) = delete;

  ProcessMemory Memory() const;
  // tandemd's own CPU time so far (`steal` stays 0).
  CpuSeconds Cpu() const;
  std::string LogTail() const;

  // The public listener (Indexer) and the admin listener (Admin), plaintext on loopback.
  client::Connection& public_connection() { return *public_; }
  client::Connection& admin_connection() { return *admin_; }
  tandem::v1::Indexer::Stub& indexer() { return public_->indexer(); }
  tandem::v1::Admin::Stub& admin() { return admin_->admin(); }
  const std::string& address() const { return addr_; }

  // Submits blocks start, start+1, ... one call each, `block_at(height)` giving the bytes.
  // Returns the first failure, naming its height.
  absl::Status SubmitBlocks(uint32_t start, uint32_t count,
                            const std::function<const std::string&(uint32_t)>& block_at);

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
  explicit EventWatcher(client::Connection& admin);
  ~EventWatcher() { Stop(); }
  // Ends the watch (after letting the last events of the run arrive).
  void Stop();
  std::vector<double> pauses_us();
  std::vector<double> warms_us();
  uint64_t dropped();
  uint64_t instance_failures();

 private:
  const std::unique_ptr<grpc::ClientContext> context_;
  std::mutex mu_;
  std::vector<double> pauses_us_;   // Guarded by mu_.
  std::vector<double> warms_us_;    // Guarded by mu_.
  uint64_t dropped_ = 0;            // Guarded by mu_.
  uint64_t instance_failures_ = 0;  // Guarded by mu_.
  std::thread thread_;
};

// Clients calling views in a loop, each on its own thread. Each call's request comes from
// `next(client index)`; an empty optional ends that client.
class ViewClients {
 public:
  using NextRequest = std::function<std::optional<tandem::v1::ViewRequest>(int client)>;

  // `own_connections`: each client gets a connection of its own to `address` (as separate
  // processes do); otherwise all share `shared`.
  ViewClients(client::Connection& shared, int clients, NextRequest next,
              bool own_connections = false);
  ~ViewClients() { Stop(); }
  // Stops every client after its current call and waits for them.
  void Stop();
  // Waits until every client has ended by itself (its requests ran out).
  void Join();
  uint64_t ok() const { return ok_.load(); }
  uint64_t failed() const { return failed_.load(); }
  // Failures by gRPC status code.
  std::map<int, uint64_t> failures_by_code();

 private:
  // Atomics: a stop flag and counters, read only to stop and to report.
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> ok_{0};
  std::atomic<uint64_t> failed_{0};
  std::mutex mu_;
  std::map<int, uint64_t> failures_by_code_;  // Guarded by mu_.
  std::vector<std::unique_ptr<client::Connection>> own_;
  std::vector<std::thread> threads_;
};

// Hands out block `height` of a block set, making synthetic blocks on demand (every run of a
// set sees the same bytes at the same height). References stay valid as it grows.
//
// Threading: thread-safe.
class BlockSource {
 public:
  explicit BlockSource(const std::vector<std::string>& prefix)
      : blocks_(prefix.begin(), prefix.end()) {}
  const std::string& At(uint32_t height) {
    std::lock_guard<std::mutex> lock(mu_);
    while (blocks_.size() < height) {
      blocks_.push_back(generator_.Next(static_cast<uint32_t>(blocks_.size() + 1)));
    }
    return blocks_[height - 1];
  }

 private:
  std::mutex mu_;
  std::deque<std::string> blocks_;  // Guarded by mu_; height h at index h - 1.
  SyntheticBlocks generator_{42};   // Guarded by mu_.
};

// A view request at the tip (no height).
tandem::v1::ViewRequest ViewAtTip(const std::string& name, const std::string& request = "");

}  // namespace tandem::bench
