#!/usr/bin/env bash
# Issue 28: is the suite deterministic, and how long does it take? Runs the slow tier (the tests marked
# slow, cluster or postgres) N times in a row on a quiet machine, then once more while a CPU-bound
# process occupies one core, and `make test` once; each run's summary line and its 25 slowest tests
# go to docs/results/suite_stability/.
#
#   bash benchmarks/suite_stability.sh [N=5]
set -uo pipefail
cd "$(dirname "$0")/.."
N=${1:-5}
OUT=docs/results/suite_stability
mkdir -p "$OUT"
stamp() { echo "# $(date -u +%FT%TZ)  commit $(git rev-parse --short HEAD)  $(nproc) CPUs  load $(cut -d' ' -f1 /proc/loadavg)"; }
slow_tier() {   # $1: the output file
  { stamp; /usr/bin/time -f "wall %e s" .venv/bin/python -m pytest -q -p no:cacheprovider \
      -m "slow or cluster or postgres" --durations=25 2>&1 | grep -E "passed|failed|error|slowest|^[0-9.]+s |wall|suite wall"; } \
    > "$1" 2>&1
}
for i in $(seq 1 "$N"); do
  slow_tier "$OUT/slow_tier_run$i.txt"
  tail -3 "$OUT/slow_tier_run$i.txt"
done
# once more under load: a CPU-bound process on one core for the whole run
( while :; do :; done ) &
HOG=$!
slow_tier "$OUT/slow_tier_under_load.txt"
kill "$HOG"
tail -3 "$OUT/slow_tier_under_load.txt"
{ stamp; /usr/bin/time -f "wall %e s" make test 2>&1 | tail -40; } > "$OUT/make_test.txt" 2>&1
tail -3 "$OUT/make_test.txt"
