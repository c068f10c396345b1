// Snapshotter: requested and periodic snapshots, one at a time, off the commit path.
#include "server/snapshotter.h"

#include <algorithm>
#include <map>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace tandem::server {
namespace {

namespace fs = std::filesystem;

constexpr absl::string_view kPeriodicPrefix = "snapshot-";
// Where a periodic snapshot is taken before it is whole; RocksDB stages its checkpoint in this
// name plus ".tmp". A crash leaves one of the two behind: removed at the next start.
constexpr char kStagingName[] = ".snapshot-in-progress";

}  // namespace

std::string PeriodicSnapshotName(uint32_t height) {
  return absl::StrFormat("%s%010u", kPeriodicPrefix, height);
}

std::optional<uint32_t> PeriodicSnapshotHeight(const std::string& name) {
  absl::string_view digits = name;
  if (!absl::ConsumePrefix(&digits, kPeriodicPrefix) || digits.size() != 10 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  uint32_t height = 0;
  if (!absl::SimpleAtoi(digits, &height)) return std::nullopt;
  return height;
}

Snapshotter::Snapshotter(const store::BlockStore& store, SnapshotSchedule schedule,
                         proxy::PairEventSink& events, Logger& logger)
    : store_(store), schedule_(std::move(schedule)), events_(events), logger_(logger) {
  if (schedule_.every == 0 || schedule_.directory.empty()) return;
  std::error_code error;
  for (const std::string& leftover :
       {std::string(kStagingName), absl::StrCat(kStagingName, ".tmp")}) {
    if (fs::remove_all(schedule_.directory / leftover, error) > 0) {
      logger_.Warning(absl::StrCat("removed a snapshot left half-taken in ",
                                   (schedule_.directory / leftover).string()));
    }
  }
  std::optional<store::BlockRecord> tip = store_.GetTip();
  {
    util::MutexLock lock(&mu_);
    next_due_ = NextDue(tip.has_value() ? std::optional<uint32_t>(tip->height) : std::nullopt);
  }
  thread_ = std::thread([this] { Run(); });
}

Snapshotter::~Snapshotter() {
  {
    util::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

uint32_t Snapshotter::NextDue(std::optional<uint32_t> tip) const {
  if (!tip.has_value()) return schedule_.every;
  return (*tip / schedule_.every + 1) * schedule_.every;
}

void Snapshotter::OnPairEvent(const proxy::PairEvent& event) {
  if (schedule_.every == 0 || schedule_.directory.empty()) return;
  using Kind = proxy::PairEvent::Kind;
  if (event.kind == Kind::kBlockCommitted) {
    util::MutexLock lock(&mu_);
    if (event.height >= next_due_) due_ = true;  // Run() wakes on it.
  } else if (event.kind == Kind::kRolledBack) {
    util::MutexLock lock(&mu_);
    next_due_ = NextDue(event.height);
  }
}

bool Snapshotter::Begin(absl::Time deadline) {
  util::MutexLock lock(&mu_);
  if (!mu_.AwaitWithDeadline(
          [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return !in_progress_ || stopping_; },
          deadline) ||
      stopping_) {
    return false;
  }
  in_progress_ = true;
  return true;
}

void Snapshotter::End() {
  util::MutexLock lock(&mu_);
  in_progress_ = false;
}

absl::StatusOr<store::SnapshotManifest> Snapshotter::Take(const fs::path& directory,
                                                          store::SnapshotLimits limits) {
  const absl::Time began = absl::Now();
  limits.deadline = std::min(limits.deadline, began + schedule_.deadline);
  if (!Begin(limits.deadline)) {
    return absl::UnavailableError(absl::StrCat("cannot take a snapshot into ", directory.string(),
                                               ": another snapshot is still being taken"));
  }
  absl::StatusOr<store::SnapshotManifest> taken = store::CreateSnapshot(store_, directory, limits);
  End();
  Report(directory, /*periodic=*/false, absl::Now() - began, taken);
  return taken;
}

void Snapshotter::Run() {
  util::MutexLock lock(&mu_);
  while (true) {
    mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return due_ || stopping_; });
    if (stopping_) return;
    due_ = false;
    mu_.Unlock();
    const absl::Time began = absl::Now();
    absl::StatusOr<store::SnapshotManifest> taken = TakePeriodic();
    mu_.Lock();
    if (stopping_ && !taken.ok()) {
      logger_.Info("a periodic snapshot in progress was abandoned at shutdown");
      return;
    }
    if (!taken.ok()) {
      // The next one is due at the next multiple, not at the next block: a full disk must not
      // turn every block into a failing snapshot.
      std::optional<store::BlockRecord> tip = store_.GetTip();
      ScheduleAfter(tip.has_value() ? std::optional<uint32_t>(tip->height) : std::nullopt);
    }
    mu_.Unlock();
    const fs::path where = taken.ok() && taken->tip.has_value()
                               ? schedule_.directory / PeriodicSnapshotName(taken->tip->height)
                               : schedule_.directory;
    Report(where, /*periodic=*/true, absl::Now() - began, taken);
    if (taken.ok()) Prune();
    mu_.Lock();
  }
}

void Snapshotter::ScheduleAfter(std::optional<uint32_t> tip) {
  next_due_ = NextDue(tip);
  // Commits that arrived while the snapshot was taken made one due against the old mark; the
  // snapshot covers them. A commit at or past the new mark makes the next one due again.
  due_ = false;
}

absl::StatusOr<store::SnapshotManifest> Snapshotter::TakePeriodic() {
  const absl::Time deadline = absl::Now() + schedule_.deadline;
  if (!Begin(deadline)) {
    return absl::UnavailableError("another snapshot was still being taken at the deadline");
  }
  struct EndOnReturn {
    Snapshotter* self;
    ~EndOnReturn() { self->End(); }
  } end{this};
  std::error_code error;
  fs::create_directories(schedule_.directory, error);
  if (error) {
    return absl::UnavailableError(absl::StrCat(
        "cannot create --snapshot_dir ", schedule_.directory.string(), ": ", error.message()));
  }
  const fs::path staging = schedule_.directory / kStagingName;
  store::SnapshotLimits limits;
  limits.deadline = deadline;
  limits.cancelled = [this] {
    util::MutexLock lock(&mu_);
    return stopping_;
  };
  absl::StatusOr<store::SnapshotManifest> taken = store::CreateSnapshot(store_, staging, limits);
  if (!taken.ok()) return taken;
  if (!taken->tip.has_value()) {
    fs::remove_all(staging, error);
    return absl::FailedPreconditionError("the database holds no block yet");
  }
  {
    // Before the snapshot shows under its name: whoever sees it and commits the next block must
    // find the next one due at the next multiple, not at once.
    util::MutexLock lock(&mu_);
    ScheduleAfter(taken->tip->height);
  }
  const fs::path final_path = schedule_.directory / PeriodicSnapshotName(taken->tip->height);
  // A snapshot of this height from before a rollback holds another chain: this one replaces it.
  fs::remove_all(final_path, error);
  fs::rename(staging, final_path, error);
  if (error) {
    std::error_code ignored;
    fs::remove_all(staging, ignored);
    return absl::UnavailableError(
        absl::StrCat("cannot rename the snapshot to ", final_path.string(), ": ", error.message()));
  }
  return taken;
}

void Snapshotter::Prune() {
  if (schedule_.keep == 0) return;
  std::map<uint32_t, fs::path> periodic;  // By height, oldest first.
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(schedule_.directory, error)) {
    std::optional<uint32_t> height = PeriodicSnapshotHeight(entry.path().filename().string());
    if (height.has_value()) periodic.emplace(*height, entry.path());
  }
  while (periodic.size() > schedule_.keep) {
    const fs::path oldest = periodic.begin()->second;
    periodic.erase(periodic.begin());
    fs::remove_all(oldest, error);
    if (error) {
      logger_.Warning(
          absl::StrCat("cannot remove the old snapshot ", oldest.string(), ": ", error.message()));
    }
  }
}

void Snapshotter::Report(const fs::path& directory, bool periodic, absl::Duration took,
                         const absl::StatusOr<store::SnapshotManifest>& outcome) {
  proxy::PairEvent event;
  event.time = absl::Now();
  event.duration = took;
  if (outcome.ok()) {
    event.kind = proxy::PairEvent::Kind::kSnapshotTaken;
    event.height = outcome->tip.has_value() ? outcome->tip->height : 0;
    event.cause =
        absl::StrCat(periodic ? "periodic" : "requested", " snapshot ", directory.string(), ": ",
                     outcome->files.size(), " files, ", outcome->TotalBytes(), " bytes");
  } else {
    event.kind = proxy::PairEvent::Kind::kSnapshotFailed;
    proxy::DescribeFailure(outcome.status(), event);
    event.cause =
        absl::StrCat(periodic ? "periodic" : "requested", " snapshot into ", directory.string(),
                     " failed (ingest carries on): ", outcome.status().ToString());
  }
  events_.OnPairEvent(event);
}

}  // namespace tandem::server
