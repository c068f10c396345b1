// Runs tandemd and tandemctl as child processes for the end-to-end tests: spawn with output to a
// file, wait with a timeout, read the ports tandemd logs. Test-only; POSIX.
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

  // The exit status, or -signal when killed by one; std::nullopt if still running at `timeout`.
  std::optional<int> Wait(absl::Duration timeout) {
    if (exit_status_.has_value()) return exit_status_;
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      int status = 0;
      pid_t done = waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
        return exit_status_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return std::nullopt;
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

// Waits for tandemd's log line "<what> listening on HOST:PORT" in `log`; returns the port or 0.
inline int WaitForListeningPort(const Child& child, const std::string& what,
                                absl::Duration timeout = absl::Seconds(30)) {
  absl::Time deadline = absl::Now() + timeout;
  std::string needle = what + " listening on ";
  while (absl::Now() < deadline) {
    std::string log = child.Stderr();
    size_t at = log.find(needle);
    if (at != std::string::npos) {
      size_t end = log.find_first_of(" \n", at + needle.size());
      if (end != std::string::npos) {
        std::string address = log.substr(at + needle.size(), end - at - needle.size());
        int port = 0;
        if (absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port)) return port;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return 0;
}

}  // namespace tandem::testing
