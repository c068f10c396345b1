// A child process for memory_cap_test: runs one memory-stress block under whatever resource limits
// its parent set, and prints the outcome. Exit 0: the block ran; 3: a host error; 4: anything else.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "engine/instance.h"
#include "engine/platform.h"
#include "engine/worker_pool.h"

namespace {

class NothingCommitted : public tandem::engine::StateReader {
 public:
  absl::StatusOr<std::optional<std::string>> Get(absl::string_view, uint32_t) const override {
    return std::nullopt;
  }
};

std::string U32Le(uint32_t value) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  return out;
}

int Report(const absl::Status& status) {
  std::printf("%s %s\n", absl::StatusCodeToString(status.code()).c_str(),
              std::string(status.message()).c_str());
  return status.code() == absl::StatusCode::kUnavailable ? 3 : 4;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s GUEST.wasm COUNT MEBIBYTES\n", argv[0]);
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  if (absl::Status status = tandem::engine::InitializeV8(); !status.ok()) return Report(status);
  auto module = tandem::engine::Module::Load(bytes.str(), {1ull << 30});
  if (!module.ok()) return Report(module.status());
  tandem::engine::WorkerPool workers(tandem::engine::WorkerPoolOptions{});
  auto instance = tandem::engine::Instance::Create(workers, **module, {});
  if (!instance.ok()) return Report(instance.status());
  NothingCommitted reader;
  std::string payload = U32Le(std::atoi(argv[2])) + U32Le(std::atoi(argv[3]));
  auto result = (*instance)->RunBlock(1, payload, reader, absl::Seconds(60));
  if (!result.ok()) return Report(result.status());
  std::string line = "OK";
  for (const auto& [key, value] : result->writes) {
    absl::StrAppend(&line, " ", key, "=", key == "result" ? value : absl::BytesToHexString(value));
  }
  std::printf("%s\n", line.c_str());
  return 0;
}
