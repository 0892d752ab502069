#!/usr/bin/env bash
# Runs every benchmark one after the other on a quiet machine; outputs go to docs/results/bench_*.txt
# (progress and errors to /tmp/bench_<name>.err).
# About 20 minutes on the 2-core VM (the bandit grid table, if missing, adds about 8).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=docs/results
stamp() { echo "# $(date -u +%FT%TZ)  commit $(git rev-parse --short HEAD)  $(nproc) CPUs  $(uname -m)"; }
[ -f "$OUT/bandit_grid.json" ] || $PY benchmarks/search_efficiency.py --tabulate
for b in "trial_throughput --rounds 3 --env-steps 10240" "sampling --rounds 5" "packing --iters 6 --rounds 2" \
         "search_efficiency --seeds 20" "learner_overhead --rounds 30" "profile_trial --iters 3 --top 25"; do
  name=${b%% *}; args=${b#* }
  { stamp; $PY "benchmarks/$name.py" $args 2>"/tmp/bench_$name.err"; } | tee "$OUT/bench_$name.txt"
done
