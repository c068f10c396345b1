// Converts rocksdb::Status into absl::Status: the one place the store translates RocksDB errors.
// It must never let a rocksdb::Status escape the store or drop RocksDB's own message.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "rocksdb/status.h"

namespace tandem::store {

// Returns OkStatus() for an OK status; otherwise a status whose message is
// "<context>: <RocksDB's message>" and whose code says who is at fault:
//   Corruption                          -> DATA_LOSS
//   IOError (incl. a held LOCK), Busy,
//   TimedOut, TryAgain, ShutdownInProgress,
//   Incomplete                          -> UNAVAILABLE (the host's problem; a retry may succeed)
//   IOError with NoSpace                -> RESOURCE_EXHAUSTED
//   NotFound                            -> NOT_FOUND
//   InvalidArgument                     -> INVALID_ARGUMENT
//   NotSupported                        -> UNIMPLEMENTED
//   Aborted                             -> ABORTED
//   anything else                       -> INTERNAL
absl::Status FromRocksDbStatus(const rocksdb::Status& status, absl::string_view context);

// True when `status` says the database's LOCK file is held by another process or handle.
bool IsLockHeld(const rocksdb::Status& status);

}  // namespace tandem::store
