// tandemd's command-line flags (abseil): their definitions, parsing with the exit codes tandemd
// promises, and the ServerConfig they describe. Only tandemd's main uses this file.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/config.h"

namespace tandem::server {

// Exit statuses of tandemd.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // Start-up failed (module, database, listener).
inline constexpr int kExitUsage = 2;    // A flag is unknown, malformed or out of range.
// The database's blocks were computed with another --module or --memory_limit: restarting with
// the same flags cannot help (a service manager should not retry), the operator must act.
inline constexpr int kExitDatabaseBound = 3;
// --db is a snapshot that does not match its manifest (tampered or truncated): retrying cannot
// help either; take or copy the snapshot again.
inline constexpr int kExitSnapshotInvalid = 4;

// Parses argv with abseil. Exits the process with kExitUsage (and abseil's message) on an unknown
// flag or a value that does not parse, and with kExitOk after --help / --helpfull / --version.
// Returns the positional arguments (argv[0] first).
std::vector<char*> ParseFlagsOrExit(int argc, char** argv);

// The bundled example indexer: <prefix>/share/tandem/guests/bitcoin_indexer.wasm when tandemd runs
// from <prefix>/bin and that file exists (an installed tandemd), else the build tree's copy.
std::string BundledModulePath();

// The configuration the parsed flags describe, validated: INVALID_ARGUMENT naming the flag when a
// value is out of range or contradicts another (see ValidateConfig).
absl::StatusOr<ServerConfig> ServerConfigFromFlags();

}  // namespace tandem::server
