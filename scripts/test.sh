#!/usr/bin/env bash
# Installs what is missing, builds everything (guests included) and runs every test with ctest.
# Exits non-zero when anything fails. Usage: scripts/test.sh [extra ctest arguments]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${TANDEM_BUILD_DIR:-$root/build}"
jobs="${TANDEM_JOBS:-$(nproc)}"

bash "$root/scripts/setup.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$jobs"
cd "$build"
ctest --output-on-failure -j "$jobs" --timeout 600 -LE reliability "$@"
# The process-level suites (SIGKILL, two nodes, memory limits, soak...) run one at a time. Each
# gets one retry: two of them have shown rare harness-side flakes (a channel closed under a
# running ingest thread, a 300 s timeout in two_nodes) that are tracked as open work. A suite that
# fails twice fails the run.
ctest --output-on-failure --timeout 600 -L reliability --repeat until-pass:2 "$@"
