// How the tools report a gRPC call's outcome.
#include "tools/client/call_status.h"

#include "absl/strings/str_cat.h"

namespace tandem::client {

std::string StatusCodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

absl::Status ToAbslStatus(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

std::string DescribeStatus(const grpc::Status& status) {
  std::string text = StatusCodeName(status.error_code());
  if (!status.error_message().empty()) absl::StrAppend(&text, ": ", status.error_message());
  return text;
}

Json FailedCallJson(absl::string_view call, const grpc::Status& status) {
  Json error;
  error["call"] = call;
  error["code"] = StatusCodeName(status.error_code());
  error["message"] = status.error_message();
  return error;
}

}  // namespace tandem::client
