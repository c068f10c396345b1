// The JSON documents tandem's tools write.
#include "tools/client/json.h"

#include "absl/strings/escaping.h"
#include "google/protobuf/util/json_util.h"

namespace tandem::client {

std::string DumpJson(const Json& document, int indent) {
  return document.dump(indent, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

Json ProtoJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string text;
  // Printing a valid message cannot fail: every message the tools hold was built or parsed by
  // protobuf. Should it ever, the document says so instead of going missing.
  if (!google::protobuf::util::MessageToJsonString(message, &text, options).ok()) {
    return Json{{"unprintable", message.GetTypeName()}};
  }
  return Json::parse(text, /*cb=*/nullptr, /*allow_exceptions=*/false);
}

Json BlockRecordJson(const tandem::v1::BlockRecord& record) {
  Json json;
  json["height"] = record.height();
  json["hash"] = absl::BytesToHexString(record.hash());
  json["state_root"] = absl::BytesToHexString(record.state_root());
  json["write_count"] = record.write_count();
  return json;
}

}  // namespace tandem::client
