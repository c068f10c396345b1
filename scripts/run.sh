#!/usr/bin/env bash
# Installs what is missing, builds tandemd and the bundled example indexer, and starts tandemd
# with an embedded RocksDB under ./data. Extra arguments go to tandemd (e.g. --swap_policy=none).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${TANDEM_BUILD_DIR:-$root/build}"
jobs="${TANDEM_JOBS:-$(nproc)}"

bash "$root/scripts/setup.sh"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$jobs" --target tandemd tandemctl guests
mkdir -p "$root/data"
echo "tandemd: gRPC on 127.0.0.1:50051 (Indexer), 127.0.0.1:50052 (Admin), metrics on 127.0.0.1:9464"
exec "$build/server/tandemd" --module="$build/guests/bitcoin_indexer.wasm" \
  --db="$root/data/tandem-db" "$@"
