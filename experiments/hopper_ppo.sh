#!/usr/bin/env bash
# Issue 3 evidence: the `ppo` preset's MuJoCo recipe on Hopper-v5, 300k env steps, 3 seeds.
# Score: mean of the last 10 training episodes (raw env returns) per seed.
# Two seeds run at a time (2 cores, 1 torch thread each). Results: docs/results/hopper_ppo_seed*.json
set -euo pipefail
cd "$(dirname "$0")/.."
PGU=${PGU:-.venv/bin/pgu}
STEPS=${STEPS:-300000}
run() { $PGU train --task hopper --preset ppo --env-steps "$STEPS" --seed "$1" --json \
          2> "docs/results/hopper_ppo_seed$1.log" | tail -1 > "docs/results/hopper_ppo_seed$1.json"; }
run 0 & run 1 & wait
run 2
python3 - <<'PY'
import json, statistics
rows = [json.load(open(f"docs/results/hopper_ppo_seed{s}.json")) for s in range(3)]
scores = [r["episode_return_mean"] for r in rows]
print("Hopper-v5 ppo, 300k steps, last-10-episode mean per seed:", [round(s, 1) for s in scores],
      "mean", round(statistics.mean(scores), 1), "std", round(statistics.stdev(scores), 1))
PY
