#include "server/logger.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tandem::server {
namespace {

char SeverityLetter(Logger::Severity severity) {
  switch (severity) {
    case Logger::Severity::kInfo:
      return 'I';
    case Logger::Severity::kWarning:
      return 'W';
    case Logger::Severity::kError:
      return 'E';
  }
  return '?';
}

// Keeps a message on one line: control characters become escapes (\n, \t, \xNN).
void AppendEscaped(std::string& out, absl::string_view message) {
  for (unsigned char c : message) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      absl::StrAppendFormat(&out, "\\x%02x", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
}

}  // namespace

std::string Logger::FormatLine(absl::Time time, Severity severity, absl::string_view message) {
  std::string line = absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", time, absl::UTCTimeZone());
  line.push_back(' ');
  line.push_back(SeverityLetter(severity));
  line.push_back(' ');
  AppendEscaped(line, message);
  return line;
}

void Logger::Write(Severity severity, absl::string_view message) {
  std::string line = FormatLine(absl::Now(), severity, message);
  line.push_back('\n');
  util::MutexLock lock(&mu_);
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

void Logger::OnGuestLog(absl::string_view instance, absl::string_view text) {
  Info(absl::StrCat("guest ", instance, ": ", text));
}

}  // namespace tandem::server
