#!/usr/bin/env bash
# Runs the randomized suites (ctest label `randomized`: the crash and two-node reliability suites,
# the store's model and crash tests, the instance pair tests) round after round, each round with a
# fresh random seed, until the time is up. CI runs the same suites with fixed seeds
# (scripts/test.sh); this explores other scenarios. Nothing is retried: a failing round prints its
# seed and the command that reruns exactly that scenario, and the script goes on to the next round.
#
# Usage: scripts/soak.sh [DURATION] [ctest arguments]
#   DURATION  how long to keep starting rounds: 3600, 90s, 45m, 8h (default 1h); a round that has
#             started runs to its end.
#   e.g.      scripts/soak.sh 8h -R reliability_two_nodes
# Builds first (as scripts/test.sh does, without installing packages). Each round's output is kept
# in $build/soak/seed-N.log. Exits 0 when every round passed, 1 otherwise.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${TANDEM_BUILD_DIR:-$root/build}"
jobs="${TANDEM_JOBS:-$(nproc)}"

duration="${1:-1h}"
[ "$#" -gt 0 ] && shift
case "$duration" in
  *h) seconds=$(( ${duration%h} * 3600 )) ;;
  *m) seconds=$(( ${duration%m} * 60 )) ;;
  *s) seconds=${duration%s} ;;
  *[!0-9]* | "") echo "soak: DURATION must be like 3600, 90s, 45m or 8h, not '$duration'" >&2
                 exit 2 ;;
  *) seconds=$duration ;;
esac

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$jobs"
logs="$build/soak"
mkdir -p "$logs"

end=$(( $(date +%s) + seconds ))
rounds=0
failed_seeds=()
while [ "$(date +%s)" -lt "$end" ]; do
  seed=$(( $(od -An -N4 -tu4 /dev/urandom) % 2147483648 ))
  rounds=$(( rounds + 1 ))
  log="$logs/seed-$seed.log"
  echo "soak: round $rounds, seed $seed"
  if TANDEM_TEST_SEED=$seed ctest --test-dir "$build" --output-on-failure -L randomized \
       --timeout 900 "$@" >"$log" 2>&1; then
    echo "soak: round $rounds passed"
  else
    failed_seeds+=("$seed")
    echo "soak: round $rounds FAILED with seed $seed; its output: $log"
    grep -E "^[0-9]+/[0-9]+ Test +#[0-9]+: .*(Failed|Timeout|Exception)" "$log" || true
    echo "soak: rerun it with: TANDEM_TEST_SEED=$seed ctest --test-dir $build --output-on-failure -L randomized $*"
  fi
done

echo "soak: $rounds rounds in $(( seconds / 60 )) min, ${#failed_seeds[@]} failed" \
     "${failed_seeds[*]:+(seeds ${failed_seeds[*]})}"
[ "${#failed_seeds[@]}" -eq 0 ]
