// libFuzzer target: request validation in the gRPC layer. Arbitrary bytes are parsed as a
// SubmitBlockRequest (as gRPC would) and validated into a block submission; the same bytes are
// read as a byte-size flag value. Neither may crash, and a validated submission must hold the
// invariants the pair relies on.
#include <cstdint>
#include <cstdlib>

#include "server/config.h"
#include "server/convert.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tandem::v1::SubmitBlockRequest request;
  if (request.ParseFromArray(data, static_cast<int>(size))) {
    absl::StatusOr<tandem::proxy::BlockSubmission> submission =
        tandem::server::BlockSubmissionFromProto(request);
    if (submission.ok()) {
      if (!submission->hash.empty() && submission->hash.size() != 32) std::abort();
      if (submission->prev_hash.has_value() && submission->prev_hash->size() != 32) std::abort();
      if (submission->height != request.height()) std::abort();
    }
  }
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<uint64_t> bytes = tandem::server::ParseByteSize(text);
  if (bytes.ok()) (void)tandem::server::FormatByteSize(*bytes);
  return 0;
}
