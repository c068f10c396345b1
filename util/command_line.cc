// Command-line parsing with abseil flags and the exit statuses tandem's programs promise.
#include "util/command_line.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"

namespace tandem::util {
namespace {

// abseil 20220623 has no parse call that returns instead of exiting (ParseAbseilFlagsOnly came
// later), so the exit status is replaced from an exit handler: while parsing, this holds the status
// to exit with if abseil calls exit(); -1 otherwise. An atomic because exit handlers may run on any
// thread; written only by ParseCommandLineOrExit.
std::atomic<int> exit_status_while_parsing{-1};

void ExitWithParsingStatus() {
  const int status = exit_status_while_parsing.load();
  if (status < 0) return;
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(status);
}

}  // namespace

bool IsHelpFlag(absl::string_view arg) {
  if (!absl::ConsumePrefix(&arg, "--")) {
    if (!absl::ConsumePrefix(&arg, "-")) return false;
  }
  absl::string_view name = arg.substr(0, arg.find('='));
  for (absl::string_view help :
       {"help", "helpfull", "helpshort", "helppackage", "helpon", "helpmatch", "version"}) {
    if (name == help) return true;
  }
  return false;
}

std::vector<char*> ParseCommandLineOrExit(int argc, char** argv,
                                          const CommandLineOptions& options) {
  absl::SetProgramUsageMessage(options.usage);
  if (!options.help_flag_files.empty()) {
    absl::FlagsUsageConfig usage;
    std::vector<std::string> files = options.help_flag_files;
    usage.contains_help_flags = [files](absl::string_view file) {
      for (const std::string& suffix : files) {
        if (absl::EndsWith(file, suffix)) return true;
      }
      return false;
    };
    usage.contains_helpshort_flags = usage.contains_help_flags;
    absl::SetFlagsUsageConfig(usage);
  }

  bool help = false;
  for (int i = 1; i < argc; ++i) help = help || IsHelpFlag(argv[i]);
  exit_status_while_parsing = help ? options.help_status : options.usage_error_status;
  static const bool registered = std::atexit(ExitWithParsingStatus) == 0;
  (void)registered;
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  exit_status_while_parsing = -1;
  return positional;
}

}  // namespace tandem::util
