// Decodes the protobuf `KeyValueFlush { repeated bytes list = 1; }` that guests pass to __flush.
// It reads untrusted guest bytes: every length is checked, nothing is allocated per field.
#pragma once

#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tandem::engine {

// Appends the (key, value) pairs of `message` to `pairs`, in order; views point into `message`.
// Fields other than 1 are skipped as protobuf requires. Returns INVALID_ARGUMENT, leaving `pairs`
// as it was, when a varint or length runs past the end, a wire type is invalid, field 1 is not
// length-delimited, or the list has an odd number of entries (a key without its value).
absl::Status DecodeKeyValueFlush(
    absl::string_view message, std::vector<std::pair<absl::string_view, absl::string_view>>& pairs);

}  // namespace tandem::engine
