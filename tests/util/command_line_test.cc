// ParseCommandLineOrExit: the exit statuses after help and after a bad flag (each case runs in a
// forked child, as abseil ends the process), --flagfile, and IsHelpFlag.
#include "util/command_line.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "gtest/gtest.h"

ABSL_FLAG(int, command_line_test_number, 0, "A flag of this test.");

namespace tandem::util {
namespace {

CommandLineOptions TestOptions() {
  CommandLineOptions options;
  options.usage = "tests the command line";
  options.help_flag_files = {"tests/util/command_line_test.cc"};
  options.usage_error_status = 7;
  options.help_status = 0;
  return options;
}

// Parses `args` (argv[0] prepended) as main would.
std::vector<std::string> Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "command_line_test");
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  std::vector<char*> positional =
      ParseCommandLineOrExit(static_cast<int>(argv.size()), argv.data(), TestOptions());
  return std::vector<std::string>(positional.begin(), positional.end());
}

TEST(CommandLineDeathTest, ABadFlagExitsWithTheUsageStatus) {
  EXPECT_EXIT(Parse({"--no_such_flag"}), ::testing::ExitedWithCode(7), "no_such_flag");
  EXPECT_EXIT(Parse({"--command_line_test_number=many"}), ::testing::ExitedWithCode(7),
              "command_line_test_number");
}

TEST(CommandLineDeathTest, HelpExitsWithTheHelpStatus) {
  EXPECT_EXIT(Parse({"--help"}), ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(Parse({"--helpfull"}), ::testing::ExitedWithCode(0), "");
}

TEST(CommandLineTest, ReturnsThePositionalArgumentsAndReadsFlagFiles) {
  const std::filesystem::path file =
      std::filesystem::temp_directory_path() / "tandem-command-line-test.flags";
  std::ofstream(file) << "--command_line_test_number=42\n";
  std::vector<std::string> positional = Parse({"first", "--flagfile=" + file.string(), "second"});
  std::filesystem::remove(file);
  EXPECT_EQ(positional, (std::vector<std::string>{"command_line_test", "first", "second"}));
  EXPECT_EQ(absl::GetFlag(FLAGS_command_line_test_number), 42);
}

TEST(CommandLineTest, RecognisesTheHelpFlags) {
  for (const char* help : {"--help", "-help", "--helpfull", "--helpshort", "--helppackage",
                           "--helpon=flags", "--helpmatch=tandem", "--version", "-version"}) {
    EXPECT_TRUE(IsHelpFlag(help)) << help;
  }
  for (const char* other : {"help", "--helpless", "--db=--help", "---help", "--timeout=1s"}) {
    EXPECT_FALSE(IsHelpFlag(other)) << other;
  }
}

}  // namespace
}  // namespace tandem::util
