#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each one.
# Usage: scripts/fuzz.sh [seconds per target, default 30]. CI runs a short run; run longer by hand.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${TANDEM_FUZZ_BUILD_DIR:-$root/build-fuzz}"
seconds="${1:-30}"

bash "$root/scripts/setup.sh"
CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTANDEM_BUILD_FUZZERS=ON -DTANDEM_BUILD_TESTS=OFF -DTANDEM_BUILD_BENCHMARKS=OFF >/dev/null
targets=(flush_decoder_fuzzer wasm_binary_fuzzer guest_memory_fuzzer request_fuzzer)
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"
for target in "${targets[@]}"; do
  corpus="$build/corpus/${target%_fuzzer}"
  mkdir -p "$corpus"
  cp -n "$root/fuzz/corpus/${target%_fuzzer}/"* "$corpus/" 2>/dev/null || true
  echo "fuzz: $target for ${seconds}s"
  "$build/fuzz/$target" -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 \
    "$corpus" 2>&1 | tail -n 4
done
echo "fuzz: every target ran ${seconds}s without a crash"
