#include "tools/bench/ceiling.h"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace tandem::bench {

std::vector<std::string> RealBlockSet(const std::vector<std::string>& fixtures, int blocks) {
  std::vector<std::string> chain;
  if (fixtures.empty()) return chain;
  chain.reserve(blocks);
  for (int i = 0; i < blocks; ++i) chain.push_back(fixtures[i % fixtures.size()]);
  return chain;
}

CeilingResult RunCeiling(const std::string& binary, const std::string& guest,
                         const std::string& module, const std::string& fixtures, int blocks,
                         absl::Duration timeout) {
  CeilingResult result;
  result.guest = guest;
  if (binary.empty() || access(binary.c_str(), X_OK) != 0) {
    result.error =
        absl::StrCat("no ingest_ceiling at '", binary, "' (build it, or pass --ceiling)");
    return result;
  }
  std::vector<std::string> args = {binary, absl::StrCat("--module=", module),
                                   absl::StrCat("--fixtures=", fixtures),
                                   absl::StrCat("--blocks=", blocks)};
  int out[2];
  if (pipe(out) != 0) {
    result.error = "pipe failed";
    return result;
  }
  const pid_t pid = fork();
  if (pid < 0) {
    close(out[0]);
    close(out[1]);
    result.error = "fork failed";
    return result;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    std::perror("execv ingest_ceiling");
    _exit(127);
  }
  close(out[1]);
  std::string output;
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    pollfd readable{out[0], POLLIN, 0};
    if (poll(&readable, 1, 100) > 0) {
      char buffer[4096];
      const ssize_t n = read(out[0], buffer, sizeof buffer);
      if (n <= 0) break;  // the child closed its output: it is done
      output.append(buffer, static_cast<size_t>(n));
    } else if (absl::Now() > deadline) {
      kill(pid, SIGKILL);
      result.error =
          absl::StrCat("ingest_ceiling ran for more than ", absl::FormatDuration(timeout));
      break;
    }
  }
  close(out[0]);
  int wstatus = 0;
  waitpid(pid, &wstatus, 0);
  if (!result.error.empty()) return result;
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    result.error = absl::StrCat("ingest_ceiling failed (wait status ", wstatus, ")");
    return result;
  }
  const client::Json parsed = client::Json::parse(output, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.contains("blocks_per_s") || !parsed.contains("blocks")) {
    result.error = absl::StrCat("unreadable ingest_ceiling output: ", output.substr(0, 200));
    return result;
  }
  result.blocks = parsed["blocks"].get<int>();
  result.blocks_per_s = parsed["blocks_per_s"].get<double>();
  return result;
}

client::Json CeilingJson(const std::vector<CeilingResult>& ceilings) {
  client::Json out = client::Json::array();
  for (const CeilingResult& ceiling : ceilings) {
    out.push_back({{"guest", ceiling.guest},
                   {"blocks", ceiling.blocks},
                   {"blocks_per_s", std::round(ceiling.blocks_per_s * 100) / 100},
                   {"error", ceiling.error}});
  }
  return out;
}

}  // namespace tandem::bench
