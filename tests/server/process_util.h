// Runs tandemd and tandemctl as child processes for the end-to-end tests: spawn with output to a
// file, wait with a timeout, read the ports tandemd reports in its --port_file. Test-only; POSIX.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tandem::testing {

inline std::string ReadText(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// A child process whose stdout and stderr go to files. Killed (SIGKILL) if still running when
// destroyed.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::filesystem::path& out,
        const std::filesystem::path& err, const std::filesystem::path& in = "/dev/null")
      : out_(out), err_(err) {
    pid_ = fork();
    if (pid_ == 0) {
      freopen(in.c_str(), "r", stdin);
      freopen(out.c_str(), "w", stdout);
      freopen(err.c_str(), "w", stderr);
      std::vector<char*> args;
      for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~Child() {
    if (pid_ > 0 && !exit_status_.has_value()) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  // The exit status, or -signal when killed by one; std::nullopt if still running at `timeout`
  // (checked at least once, so a zero timeout polls).
  std::optional<int> Wait(absl::Duration timeout) {
    if (exit_status_.has_value()) return exit_status_;
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      int status = 0;
      pid_t done = waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
        return exit_status_;
      }
      if (absl::Now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  void Signal(int signal) { kill(pid_, signal); }
  std::string Stdout() const { return ReadText(out_); }
  std::string Stderr() const { return ReadText(err_); }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  std::filesystem::path out_, err_;
  std::optional<int> exit_status_;
};

// What tandemd's --port_file says (server/port_file.h): the ports it got; 0 for a listener
// that is off.
struct TandemdPorts {
  int public_port = 0;
  int admin_port = 0;
  int metrics_port = 0;
};

// The tandemd command line that serves on loopback with every port chosen by the kernel and
// reported in `port_file`, followed by `flags`.
inline std::vector<std::string> TandemdCommand(const std::string& tandemd,
                                               const std::filesystem::path& port_file,
                                               std::vector<std::string> flags = {}) {
  std::vector<std::string> argv = {tandemd, "--listen=127.0.0.1:0", "--admin_listen=127.0.0.1:0",
                                   "--metrics_listen=127.0.0.1:0",
                                   absl::StrCat("--port_file=", port_file.string())};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return argv;
}

// Waits until `child` (a tandemd started with --port_file=`port_file`) has written the file,
// which it does once every listener is up, and returns its ports. std::nullopt when the child
// exits first or `timeout` passes. The caller removes a stale file before starting the child.
inline std::optional<TandemdPorts> WaitForPortFile(Child& child,
                                                   const std::filesystem::path& port_file,
                                                   absl::Duration timeout = absl::Seconds(60)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (std::filesystem::exists(port_file)) {
      TandemdPorts ports;
      std::istringstream lines(ReadText(port_file));
      for (std::string line; std::getline(lines, line);) {
        const size_t equals = line.find('=');
        const size_t colon = line.rfind(':');
        if (equals == std::string::npos || colon == std::string::npos || colon < equals) continue;
        int port = 0;
        if (!absl::SimpleAtoi(line.substr(colon + 1), &port)) continue;
        const std::string name = line.substr(0, equals);
        if (name == "listen") ports.public_port = port;
        if (name == "admin_listen") ports.admin_port = port;
        if (name == "metrics_listen") ports.metrics_port = port;
      }
      return ports;
    }
    if (child.Wait(absl::ZeroDuration()).has_value()) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return std::nullopt;
}

}  // namespace tandem::testing
