// Snapshotter: every snapshot tandemd takes, on request (Admin.Snapshot) or every N committed
// blocks (--snapshot_every, kept to the last K). It never runs on a block's commit path.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proxy/events.h"
#include "server/logger.h"
#include "store/block_store.h"
#include "store/snapshot.h"
#include "util/mutex.h"

namespace tandem::server {

struct SnapshotSchedule {
  // Where periodic snapshots go (created if missing). Empty, or `every` 0: none are taken.
  std::filesystem::path directory;
  // One snapshot after every `every` committed blocks: when a commit reaches the next multiple
  // of `every` above the last snapshot's tip.
  uint32_t every = 0;
  // How many periodic snapshots to keep (the newest); 0 keeps all.
  uint32_t keep = 0;
  // Each snapshot, periodic or requested, gives up after this long (its folder is removed).
  absl::Duration deadline = absl::Minutes(30);
};

// The name of the periodic snapshot whose tip is `height`: "snapshot-" and the height in ten
// digits, so that names sort by height. And back: std::nullopt for any other name.
std::string PeriodicSnapshotName(uint32_t height);
std::optional<uint32_t> PeriodicSnapshotHeight(const std::string& name);

// Takes snapshots of one store, one at a time, and reports each through `events` (a
// PairEvent of kind kSnapshotTaken or kSnapshotFailed: the log, Admin.WatchEvents and the
// metrics all learn of it there).
//
// Periodic snapshots run on the snapshotter's own thread. OnPairEvent, which sees every
// committed block, only notes that one is due and wakes that thread: a block's commit never
// waits for a snapshot, and a snapshot that fails is logged, counted and reported while ingest
// carries on; the next one is due at the next multiple of `every`.
//
// Threading: thread-safe. Take runs on its caller's thread, after any snapshot in progress (a
// bounded wait). The destructor abandons a snapshot in progress and joins the thread.
class Snapshotter final : public proxy::PairEventSink {
 public:
  // `tip`: the store's tip now (the first periodic snapshot is due at the next multiple of
  // `every` above it). Removes what a crash left in schedule.directory (a half-taken snapshot).
  // REQUIRES: `store`, `events` and `logger` outlive the snapshotter.
  Snapshotter(const store::BlockStore& store, SnapshotSchedule schedule,
              proxy::PairEventSink& events, Logger& logger);
  ~Snapshotter() override;
  Snapshotter(const Snapshotter&) = delete;
  Snapshotter& operator=(const Snapshotter&) = delete;

  // Takes a snapshot into `directory` now (store::CreateSnapshot), within the earlier of
  // `limits.deadline` and the schedule's deadline. Errors: CreateSnapshot's; UNAVAILABLE when
  // another snapshot is still being taken at the deadline.
  absl::StatusOr<store::SnapshotManifest> Take(const std::filesystem::path& directory,
                                               store::SnapshotLimits limits)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Notes committed blocks (a periodic snapshot may be due) and rollbacks (the next one is due
  // at the next multiple above the new tip). Quick: takes mu_ and signals.
  void OnPairEvent(const proxy::PairEvent& event) override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // The snapshot thread: waits for a due snapshot, takes it, prunes the old ones.
  void Run() ABSL_LOCKS_EXCLUDED(mu_);
  // One periodic snapshot into a staging folder, renamed to PeriodicSnapshotName(tip) once whole.
  absl::StatusOr<store::SnapshotManifest> TakePeriodic() ABSL_LOCKS_EXCLUDED(mu_);
  // Removes the periodic snapshots beyond the newest `keep`; logs what it could not remove.
  void Prune();
  // Waits (until `deadline`) for no snapshot to be in progress, then marks one in progress.
  bool Begin(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);
  void End() ABSL_LOCKS_EXCLUDED(mu_);
  // Publishes the outcome of one snapshot.
  void Report(const std::filesystem::path& directory, bool periodic, absl::Duration took,
              const absl::StatusOr<store::SnapshotManifest>& outcome);
  uint32_t NextDue(std::optional<uint32_t> tip) const;
  // The next periodic snapshot is due at the first multiple of `every` above `tip`.
  void ScheduleAfter(std::optional<uint32_t> tip) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const store::BlockStore& store_;
  const SnapshotSchedule schedule_;
  proxy::PairEventSink& events_;
  Logger& logger_;

  util::Mutex mu_;
  // The height at or above which a commit makes a periodic snapshot due.
  uint32_t next_due_ ABSL_GUARDED_BY(mu_) = 0;
  bool due_ ABSL_GUARDED_BY(mu_) = false;
  bool in_progress_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  // Runs Run() when the schedule is on; started last, joined first.
  std::thread thread_;
};

}  // namespace tandem::server
