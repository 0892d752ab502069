#!/usr/bin/env bash
# Issue 4 evidence: at an equal budget of trials and env steps, the `mla` space against
# `ppo_knobs` (PPO's knobs only) on the bandit and on Hopper-v5 at a reduced budget.
# Held-out scores land in the registry docs/results/evidence.db and in docs/results/evidence_*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PGU=${PGU:-.venv/bin/pgu}
REG="sqlite:///$PWD/docs/results/evidence.db"
run() {  # task space trials steps top_k seeds
  $PGU search --task "$1" --space "$2" --trials "$3" --env-steps "$4" --top-k "$5" --heldout-seeds "$6" \
      --max-concurrent 2 --seed 0 --registry "$REG" --storage-path /tmp/pgu_evidence --name "evidence-$1-$2" \
      --json 2> "docs/results/evidence_$1_$2.log" | tail -1 > "docs/results/evidence_$1_$2.json"
}
run bandit mla 10 2048 3 3
run bandit ppo_knobs 10 2048 3 3
run hopper mla 4 30000 2 2
run hopper ppo_knobs 4 30000 2 2
