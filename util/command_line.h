// Command-line parsing with abseil flags and the exit statuses tandem's programs promise.
// Shared by tandemd and the tools; it never parses a flag by hand and never touches a flag's value.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace tandem::util {

struct CommandLineOptions {
  // The text --help prints first: what the program does and how to call it.
  std::string usage;
  // --help lists the flags defined in source files whose path ends with one of these (e.g.
  // "server/flags.cc"), not abseil's own. Empty: every flag.
  std::vector<std::string> help_flag_files;
  // Exit status after a flag that is unknown or does not parse (abseil's own choice is 1).
  int usage_error_status = 2;
  // Exit status after --help, --helpfull, --version and the like (abseil's own choice is 1).
  int help_status = 0;
};

// Parses argv with absl::ParseCommandLine (so --flagfile, --fromenv and --undefok work too).
// abseil ends the process itself after help and on a bad flag, always with status 1; this exits
// with `options.help_status` or `options.usage_error_status` instead, after abseil has printed its
// message. Returns the positional arguments, argv[0] first.
// REQUIRES: called once, from main, before any other thread starts.
std::vector<char*> ParseCommandLineOrExit(int argc, char** argv, const CommandLineOptions& options);

// True for the flags that make abseil print help or the version and exit (--help, --helpfull,
// --helpshort, --helppackage, --helpon=, --helpmatch=, --version, with one dash or two).
bool IsHelpFlag(absl::string_view arg);

}  // namespace tandem::util
