#!/usr/bin/env bash
# Builds the tests under ASan+UBSan and under TSan (the CMake presets) and runs them.
# Usage: scripts/sanitizers.sh [asan|tsan]... (default: both). CI runs this after scripts/test.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs="${TANDEM_JOBS:-$(nproc)}"
presets=("$@")
[ "${#presets[@]}" -gt 0 ] || presets=(asan tsan)

unit_targets=(wasm_binary_test key_value_flush_test guest_memory_test module_test instance_test
  memory_cap_test host_memory_child bitcoin_indexer_test store_test store_crash_test
  store_crash_writer instance_pair_test command_line_test assemblyscript_test worker_test
  slot_table_test height_cache_test swap_rules_test warm_backoff_test commit_pipeline_test
  guest_runtime_test guest_memory_ledger_test memory_budget_test)

bash "$root/scripts/setup.sh"
cd "$root"
for preset in "${presets[@]}"; do
  echo "sanitizers: $preset"
  cmake --preset "$preset" >/dev/null
  # The engine, store and proxy suites (label "unit"): tandem's own threads and memory. The gRPC
  # layers (label "server") run in the plain build: their libraries are prebuilt, uninstrumented.
  cmake --build --preset "$preset" -j "$jobs" --target "${unit_targets[@]}"
  ctest --preset "$preset" -j "$jobs" --timeout 900 -L unit
done
