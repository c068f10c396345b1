#!/usr/bin/env bash
# Builds the tests under ASan+UBSan and under TSan (the CMake presets) and runs them.
# Usage: scripts/sanitizers.sh [asan|tsan]... (default: both). CI runs this after scripts/test.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs="${TANDEM_JOBS:-$(nproc)}"
presets=("$@")
[ "${#presets[@]}" -gt 0 ] || presets=(asan tsan)

bash "$root/scripts/setup.sh"
cd "$root"
for preset in "${presets[@]}"; do
  echo "sanitizers: $preset"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  # Tests that spawn servers and whole-process suites run in the plain build; the sanitizer runs
  # cover the libraries' unit and concurrency tests.
  ctest --preset "$preset" -j "$jobs" --timeout 900 -L unit
done
