#!/usr/bin/env bash
# Runs every benchmark one after the other on a quiet machine; outputs go to docs/results/bench_*.txt
# (progress and errors to /tmp/bench_<name>.err).
# About 32 minutes on the 2-core VM before population_search (its 2 rounds: about 15 more, estimated) (the bandit grid tables, if missing, add about 8 and 20).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=docs/results
stamp() { echo "# $(date -u +%FT%TZ)  commit $(git rev-parse --short HEAD)  $(nproc) CPUs  $(uname -m)"; }
for grid in bandit_grid bandit_wide_grid; do
  [ -f "$OUT/$grid.json" ] || $PY benchmarks/search_efficiency.py --space "benchmarks/$grid.yaml" --tabulate
done
for b in "trial_throughput --rounds 3 --env-steps 20480" "iteration_split --rounds 3 --iters 8" "sampling --rounds 5" "packing --iters 10 --rounds 4" \
         "search_efficiency --seeds 20" "search_efficiency_wide --seeds 20" "learner_overhead --rounds 30" "learner_steps --rounds 20" "storage_rate --n 300 --rounds 3" "profile_trial --iters 3 --top 25" \
         "population --env HalfCheetah-v5 --rounds 2" "population_cartpole --env CartPole-v1 --rounds 2" \
         "population_search --task cartpole --space ppo_knobs --trials 8 --env-steps 20480 --ks 1 4 --rounds 2"; do
  name=${b%% *}; args=${b#* }; script=$name
  [ "$name" = search_efficiency_wide ] && { script=search_efficiency; args="$args --space benchmarks/bandit_wide_grid.yaml"; }
  [ "$name" = learner_steps ] && { script=learner_overhead; args="$args --steps"; }
  [ "$name" = population_cartpole ] && script=population
  { stamp; $PY "benchmarks/$script.py" $args 2>"/tmp/bench_$name.err"; } | tee "$OUT/bench_$name.txt"
done
