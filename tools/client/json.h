// The JSON documents tandem's tools write, built with nlohmann::json (one well-kept library for
// every document; messages printed whole go through protobuf's own JSON printer first). Nothing
// here escapes JSON by hand.
#pragma once

#include <string>

#include "google/protobuf/message.h"
#include "nlohmann/json.hpp"
#include "tandem/v1/tandem.pb.h"

namespace tandem::client {

// Keys stay in the order they were added, so documents read in a stable, deliberate order.
using Json = nlohmann::ordered_json;

// Serializes `document` compactly on one line (indent < 0) or indented. Strings that are not
// valid UTF-8 (a guest's message, a file name) are written with U+FFFD in place of each invalid
// byte sequence, so the output is always valid JSON.
std::string DumpJson(const Json& document, int indent = -1);

// A message as protobuf's JSON mapping writes it (field names as in the .proto, fields with
// default values included; 64-bit integers as strings, bytes in base64, as that mapping says).
Json ProtoJson(const google::protobuf::Message& message);

// A block record as every tool prints it: {"height", "hash", "state_root", "write_count"}, the
// hashes in hex (internal byte order, as stored).
Json BlockRecordJson(const tandem::v1::BlockRecord& record);

}  // namespace tandem::client
