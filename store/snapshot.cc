// Snapshots: a RocksDB checkpoint of a BlockStore's database with a manifest that says what it
// holds and lets a restore check every byte. It never knows what a guest is.
//
// The manifest is text, one field per line, so an operator can read it:
//   tandem-snapshot 1
//   format_version 2
//   start_height 1            (absent when the database holds no block)
//   tip <height> <hash hex> <state root hex> <write count>
//   identity <module SHA-256 hex> <memory cap bytes>
//   file <size> <SHA-256 hex> <name>    (one per file; names are RocksDB's, without spaces)
// Each field appears at most once (files once per name); anything else is refused.
#include "store/snapshot.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "store/inspection.h"
#include "store/keys.h"
#include "store/state_root.h"
#include "util/status_macros.h"

namespace tandem::store {
namespace {

namespace fs = std::filesystem;

constexpr char kManifestMagic[] = "tandem-snapshot 1";

std::string Hex(std::string_view bytes) {
  return absl::BytesToHexString(absl::string_view(bytes.data(), bytes.size()));
}

absl::Status Malformed(absl::string_view line, absl::string_view why) {
  return absl::DataLossError(
      absl::StrCat("snapshot manifest line '", line.substr(0, 120), "': ", why));
}

// 32 bytes from 64 hex digits, or an error naming `line`.
absl::StatusOr<std::string> DigestFromHex(absl::string_view hex, absl::string_view line) {
  if (hex.size() != 2 * kHashSize ||
      !std::all_of(hex.begin(), hex.end(), [](char c) { return absl::ascii_isxdigit(c); })) {
    return Malformed(line, "expected a 64-digit hex digest");
  }
  return absl::HexStringToBytes(hex);
}

struct FileDigestDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

// DEADLINE_EXCEEDED or CANCELLED when `limits` say the work must stop now.
absl::Status CheckLimits(const SnapshotLimits& limits) {
  if (limits.cancelled && limits.cancelled()) return absl::CancelledError("abandoned");
  if (absl::Now() > limits.deadline) {
    return absl::DeadlineExceededError("its deadline passed before it was complete");
  }
  return absl::OkStatus();
}

// SHA-256 and size of the file at `path`, read in 1 MiB pieces, `limits` checked between them.
absl::StatusOr<SnapshotFile> DigestFile(const fs::path& path, std::string name,
                                        const SnapshotLimits& limits) {
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) return absl::UnavailableError(absl::StrCat("cannot read ", path.string()));
  std::unique_ptr<EVP_MD_CTX, FileDigestDeleter> ctx(EVP_MD_CTX_new());
  if (ctx == nullptr || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("OpenSSL has no SHA-256 context");
  }
  SnapshotFile file{std::move(name), 0, std::string(kHashSize, '\0')};
  std::string buffer(1 << 20, '\0');
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const std::streamsize got = in.gcount();
    if (got <= 0) break;
    TANDEM_RETURN_IF_ERROR(CheckLimits(limits));
    file.size += static_cast<uint64_t>(got);
    EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(got));
  }
  if (in.bad()) return absl::UnavailableError(absl::StrCat("cannot read ", path.string()));
  unsigned int size = 0;
  EVP_DigestFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(file.sha256.data()), &size);
  return file;
}

// Every file of `directory` but the manifests, digested, by name. DATA_LOSS for anything that
// is not a regular file (a checkpoint holds none).
absl::StatusOr<std::vector<SnapshotFile>> DigestFolder(const fs::path& directory,
                                                       const SnapshotLimits& limits) {
  std::vector<std::string> names;
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(directory, error)) {
    const std::string name = entry.path().filename().string();
    if (name == kSnapshotManifestName || name == kRestoredManifestName) continue;
    std::error_code type_error;
    if (!entry.is_regular_file(type_error) || entry.is_symlink(type_error)) {
      return absl::DataLossError(
          absl::StrCat(directory.string(), " holds ", name, ", which is not a regular file"));
    }
    names.push_back(name);
  }
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("cannot list ", directory.string(), ": ", error.message()));
  }
  std::sort(names.begin(), names.end());
  std::vector<SnapshotFile> files;
  for (std::string& name : names) {
    TANDEM_ASSIGN_OR_RETURN(SnapshotFile file, DigestFile(directory / name, name, limits));
    files.push_back(std::move(file));
  }
  return files;
}

// The manifest's description of the database in `directory` (files aside), read-only.
absl::StatusOr<SnapshotManifest> InspectDatabase(const fs::path& directory) {
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<rocksdb::DB> db, OpenForInspection(directory));
  if (db == nullptr) {
    return absl::DataLossError(absl::StrCat(directory.string(), " holds no readable database"));
  }
  SnapshotManifest manifest;
  TANDEM_ASSIGN_OR_RETURN(std::optional<std::string> version,
                          InspectKey(*db, keys::kFormatVersionKey, "format version"));
  if (!version.has_value()) {
    return absl::DataLossError(absl::StrCat(directory.string(), " has no format version"));
  }
  TANDEM_ASSIGN_OR_RETURN(manifest.format_version, keys::DecodeU32(*version, "format version"));
  TANDEM_ASSIGN_OR_RETURN(std::optional<std::string> start,
                          InspectKey(*db, keys::kStartKey, "start height"));
  if (start.has_value()) {
    TANDEM_ASSIGN_OR_RETURN(manifest.start_height, keys::DecodeU32(*start, "start height"));
  }
  TANDEM_ASSIGN_OR_RETURN(std::optional<std::string> tip,
                          InspectKey(*db, keys::kTipKey, "tip height"));
  if (tip.has_value()) {
    TANDEM_ASSIGN_OR_RETURN(const uint32_t height, keys::DecodeU32(*tip, "tip height"));
    TANDEM_ASSIGN_OR_RETURN(std::optional<std::string> record,
                            InspectKey(*db, keys::BlockKey(height), "tip block"));
    if (!record.has_value()) {
      return absl::DataLossError(absl::StrCat("the tip block ", height, " has no record"));
    }
    TANDEM_ASSIGN_OR_RETURN(keys::BlockMeta meta, keys::DecodeBlockMeta(*record));
    manifest.tip =
        BlockRecord{height, std::move(meta.hash), std::move(meta.state_root), meta.write_count};
  }
  TANDEM_ASSIGN_OR_RETURN(std::optional<std::string> identity,
                          InspectKey(*db, keys::kNodeIdentityKey, "node identity"));
  if (identity.has_value()) {
    TANDEM_ASSIGN_OR_RETURN(manifest.identity, DecodeNodeIdentity(*identity));
  }
  return manifest;
}

absl::Status Errno(absl::string_view what, const fs::path& path, int error) {
  const std::string message = absl::StrCat(what, " ", path.string(), ": ", std::strerror(error));
  if (error == ENOSPC || error == EDQUOT || error == EFBIG) {
    return absl::ResourceExhaustedError(message);
  }
  return absl::UnavailableError(message);
}

// fsyncs the file or folder at `path`.
absl::Status SyncPath(const fs::path& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open", path, errno);
  const int synced = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (synced != 0) return Errno("cannot fsync", path, error);
  return absl::OkStatus();
}

// Writes `text` to `path` durably: a temporary file, fsynced, renamed into place, and the folder
// fsynced, so the manifest is never seen half-written, even after a power loss.
absl::Status WriteFileDurably(const fs::path& path, const std::string& text) {
  const fs::path temporary = path.string() + ".tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("cannot create", temporary, errno);
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      return Errno("cannot write", temporary, error);
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int error = errno;
    ::close(fd);
    return Errno("cannot fsync", temporary, error);
  }
  ::close(fd);
  if (::rename(temporary.c_str(), path.c_str()) != 0)
    return Errno("cannot rename", temporary, errno);
  return SyncPath(path.parent_path(), O_RDONLY | O_DIRECTORY);
}

}  // namespace

uint64_t SnapshotManifest::TotalBytes() const {
  uint64_t total = 0;
  for (const SnapshotFile& file : files) total += file.size;
  return total;
}

std::string EncodeSnapshotManifest(const SnapshotManifest& manifest) {
  std::string text =
      absl::StrCat(kManifestMagic, "\nformat_version ", manifest.format_version, "\n");
  if (manifest.start_height.has_value()) {
    absl::StrAppend(&text, "start_height ", *manifest.start_height, "\n");
  }
  if (manifest.tip.has_value()) {
    absl::StrAppend(&text, "tip ", manifest.tip->height, " ", Hex(manifest.tip->hash), " ",
                    Hex(manifest.tip->state_root), " ", manifest.tip->write_count, "\n");
  }
  if (manifest.identity.has_value()) {
    absl::StrAppend(&text, "identity ", Hex(manifest.identity->module_sha256), " ",
                    manifest.identity->memory_limit_bytes, "\n");
  }
  for (const SnapshotFile& file : manifest.files) {
    absl::StrAppend(&text, "file ", file.size, " ", Hex(file.sha256), " ", file.name, "\n");
  }
  return text;
}

absl::StatusOr<SnapshotManifest> DecodeSnapshotManifest(std::string_view text) {
  std::vector<absl::string_view> lines =
      absl::StrSplit(absl::string_view(text.data(), text.size()), '\n', absl::SkipEmpty());
  if (lines.empty() || lines[0] != kManifestMagic) {
    return absl::DataLossError("not a tandem snapshot manifest (its first line differs)");
  }
  SnapshotManifest manifest;
  bool have_version = false;
  std::set<absl::string_view> seen;  // Fields and file names: each at most once.
  for (size_t i = 1; i < lines.size(); ++i) {
    const absl::string_view line = lines[i];
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ');
    const absl::string_view kind = fields[0];
    const absl::string_view once = kind == "file" && fields.size() == 4 ? fields[3] : kind;
    if (!seen.insert(once).second) return Malformed(line, "appears twice");
    if (kind == "format_version" && fields.size() == 2 &&
        absl::SimpleAtoi(fields[1], &manifest.format_version)) {
      have_version = true;
    } else if (kind == "start_height" && fields.size() == 2) {
      uint32_t height = 0;
      if (!absl::SimpleAtoi(fields[1], &height)) return Malformed(line, "bad height");
      manifest.start_height = height;
    } else if (kind == "tip" && fields.size() == 5) {
      BlockRecord tip;
      if (!absl::SimpleAtoi(fields[1], &tip.height) ||
          !absl::SimpleAtoi(fields[4], &tip.write_count)) {
        return Malformed(line, "bad number");
      }
      TANDEM_ASSIGN_OR_RETURN(tip.hash, DigestFromHex(fields[2], line));
      TANDEM_ASSIGN_OR_RETURN(tip.state_root, DigestFromHex(fields[3], line));
      manifest.tip = std::move(tip);
    } else if (kind == "identity" && fields.size() == 3) {
      NodeIdentity identity;
      TANDEM_ASSIGN_OR_RETURN(identity.module_sha256, DigestFromHex(fields[1], line));
      if (!absl::SimpleAtoi(fields[2], &identity.memory_limit_bytes)) {
        return Malformed(line, "bad memory cap");
      }
      manifest.identity = std::move(identity);
    } else if (kind == "file" && fields.size() == 4 && !fields[3].empty() &&
               fields[3].find('/') == absl::string_view::npos && fields[3] != "." &&
               fields[3] != "..") {
      SnapshotFile file;
      if (!absl::SimpleAtoi(fields[1], &file.size)) return Malformed(line, "bad size");
      TANDEM_ASSIGN_OR_RETURN(file.sha256, DigestFromHex(fields[2], line));
      file.name = std::string(fields[3]);
      manifest.files.push_back(std::move(file));
    } else {
      return Malformed(line, "unknown or malformed field");
    }
  }
  if (!have_version) return absl::DataLossError("snapshot manifest has no format_version");
  if (manifest.tip.has_value() != manifest.start_height.has_value()) {
    return absl::DataLossError(
        "snapshot manifest has a tip without a start height, or a start height without a tip");
  }
  return manifest;
}

absl::StatusOr<SnapshotManifest> CreateSnapshot(const BlockStore& store, const fs::path& directory,
                                                const SnapshotLimits& limits) {
  std::error_code error;
  if (fs::exists(directory, error)) {
    return absl::AlreadyExistsError(
        absl::StrCat("snapshot folder ", directory.string(), " already exists"));
  }
  const fs::path parent = directory.has_parent_path() ? directory.parent_path() : fs::path(".");
  if (!fs::is_directory(parent, error)) {
    return absl::FailedPreconditionError(absl::StrCat("cannot take a snapshot into ",
                                                      directory.string(), ": ", parent.string(),
                                                      " is not an existing folder"));
  }
  auto made = [&]() -> absl::StatusOr<SnapshotManifest> {
    TANDEM_RETURN_IF_ERROR(CheckLimits(limits));
    TANDEM_RETURN_IF_ERROR(store.CreateCheckpoint(directory));
    TANDEM_RETURN_IF_ERROR(CheckLimits(limits));
    TANDEM_ASSIGN_OR_RETURN(SnapshotManifest manifest, InspectDatabase(directory));
    TANDEM_ASSIGN_OR_RETURN(manifest.files, DigestFolder(directory, limits));
    TANDEM_RETURN_IF_ERROR(
        WriteFileDurably(directory / kSnapshotManifestName, EncodeSnapshotManifest(manifest)));
    return manifest;
  }();
  if (!made.ok()) {
    // Half a snapshot is no snapshot: nothing may be left that looks like one. RocksDB removes
    // its own staging folder when the checkpoint itself fails.
    fs::remove_all(directory, error);
    return absl::Status(made.status().code(), absl::StrCat("snapshot into ", directory.string(),
                                                           ": ", made.status().message()));
  }
  return made;
}

absl::StatusOr<std::optional<SnapshotManifest>> ReadSnapshotManifest(const fs::path& directory) {
  std::error_code error;
  const fs::path path = directory / kSnapshotManifestName;
  if (!fs::exists(path, error)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return absl::UnavailableError(absl::StrCat("cannot read ", path.string()));
  absl::StatusOr<SnapshotManifest> manifest = DecodeSnapshotManifest(text);
  if (!manifest.ok()) {
    return absl::DataLossError(
        absl::StrCat("snapshot ", directory.string(), ": ", manifest.status().message()));
  }
  return *std::move(manifest);
}

absl::Status VerifySnapshot(const fs::path& directory, const SnapshotManifest& manifest) {
  const std::string where = absl::StrCat("snapshot ", directory.string());
  std::map<std::string, const SnapshotFile*> expected;
  for (const SnapshotFile& file : manifest.files) expected.emplace(file.name, &file);
  // Names first: a missing file is told apart from a changed one before any byte is read.
  std::error_code error;
  std::set<std::string> present;
  for (const fs::directory_entry& entry : fs::directory_iterator(directory, error)) {
    present.insert(entry.path().filename().string());
  }
  if (error) {
    return absl::UnavailableError(absl::StrCat("cannot list ", where, ": ", error.message()));
  }
  for (const auto& [name, file] : expected) {
    if (!present.contains(name)) {
      return absl::DataLossError(
          absl::StrCat(where, " lacks ", name, ", which its manifest lists: truncated"));
    }
  }
  TANDEM_ASSIGN_OR_RETURN(std::vector<SnapshotFile> files, DigestFolder(directory, {}));
  for (const SnapshotFile& found : files) {
    auto want = expected.find(found.name);
    if (want == expected.end()) {
      return absl::DataLossError(
          absl::StrCat(where, " holds ", found.name, ", which its manifest does not list"));
    }
    if (found.size != want->second->size || found.sha256 != want->second->sha256) {
      return absl::DataLossError(absl::StrCat(
          where, ": ", found.name, " has ", found.size, " bytes with SHA-256 ", Hex(found.sha256),
          ", its manifest says ", want->second->size, " bytes with SHA-256 ",
          Hex(want->second->sha256), found.size < want->second->size ? ": truncated" : ""));
    }
  }
  TANDEM_ASSIGN_OR_RETURN(SnapshotManifest found, InspectDatabase(directory));
  found.files = manifest.files;
  if (!(found == manifest)) {
    return absl::DataLossError(absl::StrCat(
        where, ": the database's format, start, tip or identity differ from its manifest"));
  }
  return absl::OkStatus();
}

absl::Status MarkSnapshotRestored(const fs::path& directory) {
  std::error_code error;
  fs::rename(directory / kSnapshotManifestName, directory / kRestoredManifestName, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("cannot mark snapshot ", directory.string(), " restored: ", error.message()));
  }
  return SyncPath(directory, O_RDONLY | O_DIRECTORY);
}

}  // namespace tandem::store
