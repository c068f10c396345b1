#include "server/port_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tandem::server {

std::string FormatPortFile(const BoundAddresses& addresses) {
  return absl::StrCat("listen=", addresses.listen, "\nadmin_listen=", addresses.admin_listen,
                      "\nmetrics_listen=", addresses.metrics_listen, "\n");
}

absl::StatusOr<BoundAddresses> ParsePortFile(absl::string_view text) {
  BoundAddresses addresses;
  bool seen[3] = {false, false, false};
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    ++line_number;
    const size_t equals = line.find('=');
    if (equals == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("port file line ", line_number, " is not name=value: '", line, "'"));
    }
    const absl::string_view name = line.substr(0, equals);
    std::string* field = nullptr;
    int index = 0;
    if (name == "listen") {
      field = &addresses.listen;
      index = 0;
    } else if (name == "admin_listen") {
      field = &addresses.admin_listen;
      index = 1;
    } else if (name == "metrics_listen") {
      field = &addresses.metrics_listen;
      index = 2;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("port file line ", line_number, " names no listener: '", name, "'"));
    }
    if (seen[index]) {
      return absl::InvalidArgumentError(
          absl::StrCat("port file line ", line_number, " repeats '", name, "'"));
    }
    seen[index] = true;
    *field = std::string(line.substr(equals + 1));
  }
  return addresses;
}

absl::Status WritePortFile(const std::string& path, const BoundAddresses& addresses) {
  const std::string temporary = absl::StrCat(path, ".tmp");
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << FormatPortFile(addresses);
    out.close();
    if (!out) {
      return absl::UnavailableError(
          absl::StrCat("cannot write the port file '", temporary, "': ", std::strerror(errno)));
    }
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    std::remove(temporary.c_str());
    return absl::UnavailableError(
        absl::StrCat("cannot rename '", temporary, "' to '", path, "': ", std::strerror(error)));
  }
  return absl::OkStatus();
}

absl::Status RemovePortFile(const std::string& path) {
  std::error_code error;
  std::filesystem::remove(path, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("cannot remove the port file '", path, "': ", error.message()));
  }
  return absl::OkStatus();
}

}  // namespace tandem::server
