// tandemd: parses flags, starts the TandemServer, and shuts it down on SIGTERM or SIGINT.
// Everything else lives in server/tandem_server.h, so tests can run the same server in-process.
#include <csignal>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "server/flags.h"
#include "server/logger.h"
#include "server/tandem_server.h"
#include "util/failure_cause.h"

int main(int argc, char** argv) {
  using tandem::server::kExitFailure;
  using tandem::server::kExitOk;
  using tandem::server::kExitUsage;
  using tandem::server::Logger;
  using tandem::server::ParseFlagsOrExit;
  using tandem::server::ServerConfig;
  using tandem::server::ServerConfigFromFlags;
  using tandem::server::TandemServer;
  std::vector<char*> positional = ParseFlagsOrExit(argc, argv);
  if (positional.size() > 1) {
    std::fprintf(stderr, "tandemd: unexpected argument '%s' (see --help)\n", positional[1]);
    return kExitUsage;
  }
  absl::StatusOr<ServerConfig> config = ServerConfigFromFlags();
  if (!config.ok()) {
    std::fprintf(stderr, "tandemd: %s (see --help)\n",
                 std::string(config.status().message()).c_str());
    return kExitUsage;
  }

  // Block the shutdown signals in every thread (the threads started below inherit the mask), and
  // take them synchronously with sigwait once the server runs.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Logger logger(stderr);
  absl::StatusOr<std::unique_ptr<TandemServer>> server = TandemServer::Start(*config, logger);
  if (!server.ok()) {
    logger.Error(absl::StrCat("tandemd cannot start: ", server.status().message()));
    if (tandem::util::CauseOf(server.status()) == tandem::util::FailureCause::kIdentityMismatch) {
      return tandem::server::kExitDatabaseBound;
    }
    if (tandem::util::CauseOf(server.status()) == tandem::util::FailureCause::kSnapshotInvalid) {
      return tandem::server::kExitSnapshotInvalid;
    }
    return kExitFailure;
  }
  int signal = 0;
  sigwait(&signals, &signal);
  logger.Info(absl::StrCat("received ", signal == SIGTERM ? "SIGTERM" : "SIGINT"));
  (*server)->Shutdown(config->shutdown_grace);
  server->reset();
  return kExitOk;
}
