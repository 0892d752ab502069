"""Issue 21 §3: which tuning objective ranks configurations the way the selection score does?

One real search on Hopper-v5 records both objectives for every trial: ``--pruner none`` (every trial
runs the full budget B), ``--objective eval`` (the periodic evaluator drives nothing here but is
recorded), and the training-return objective is recorded beside it (``pgu_trials.metrics``). Then
``--top-k`` = the number of trials sends every trial to the selection phase (3 selection seeds).

For each objective, Spearman's ρ between the trials' final objective and their selection mean, with
a bootstrap CI over candidates (10,000 resamples). The table goes to ``docs/objective.md`` and the
numbers to ``docs/results/objective_rank.json``. Resumable: re-running continues the search.

    python experiments/objective_rank.py                 # the search (about 1 h on 2 cores), then the table
    python experiments/objective_rank.py --table-only    # the table from the stored registry
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys

import numpy as np
from scipy import stats

ROOT = pathlib.Path(__file__).resolve().parent.parent
NAME = "hopper-objective-rank"


def rank_table(registry: str, name: str = NAME, resamples: int = 10_000, seed: int = 0) -> dict:
    from pgu_rllib.service.registry import Registry

    reg = Registry(registry)
    search = reg.get_search(name)
    trials = reg.trials(search.id)
    selection = reg.evaluations(search.id, "selection")
    by_params = {}
    for row in selection:
        by_params.setdefault(json.dumps(row["params"], sort_keys=True), []).append(row["score"])
    points = []
    for t in trials:
        params = {k: v for k, v in t["params"].items() if k != "seed"}
        scores = by_params.get(json.dumps(params, sort_keys=True))
        if scores and t["metrics"].get("eval_return") is not None and t["metrics"].get("train_return") is not None:
            points.append((t["metrics"]["train_return"], t["metrics"]["eval_return"], float(np.mean(scores))))
    train, evalr, sel = (np.array(c) for c in zip(*points))
    rng = np.random.default_rng(seed)
    out = {"n_candidates": len(points), "selection_seeds": search.settings["selection_seeds"],
           "budget": search.settings["env_steps"], "points": points}
    for label, x in (("train", train), ("eval", evalr)):
        rho = stats.spearmanr(x, sel).statistic
        boot = []
        for _ in range(resamples):
            idx = rng.integers(0, len(sel), len(sel))
            if len(set(idx)) > 2:
                boot.append(stats.spearmanr(x[idx], sel[idx]).statistic)
        lo, hi = np.nanpercentile(boot, [2.5, 97.5])
        out[label] = {"rho": float(rho), "ci95": [float(lo), float(hi)]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--registry", default="sqlite:///docs/results/objective_rank.db")
    ap.add_argument("--storage-path", default="pgu_results/objective_rank/tune")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--env-steps", type=int, default=300_000)
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    if not args.table_only:
        from pgu_rllib.service.registry import Registry

        reg = Registry(args.registry)
        resume = reg.schema() is not None and reg.search_exists(NAME)
        cmd = [sys.executable, "-m", "pgu_rllib.cli", "search", "--task", "hopper", "--space", "full",
               "--trials", str(args.trials), "--env-steps", str(args.env_steps), "--pruner", "none",
               "--objective", "eval", "--top-k", str(args.trials), "--selection-seeds", "3", "--test-seeds", "1",
               "--seed", "7", "--max-concurrent", "2", "--name", NAME, "--registry", args.registry,
               "--storage-path", args.storage_path, *(["--resume"] if resume else [])]
        print("$", " ".join(cmd), flush=True)
        rc = subprocess.run(cmd, cwd=ROOT).returncode
        if rc != 0:
            sys.exit(f"the search stopped (rc {rc}); re-run to resume")
    table = rank_table(args.registry)
    (ROOT / "docs/results/objective_rank.json").write_text(json.dumps(table, indent=1))
    for label in ("train", "eval"):
        r = table[label]
        print(f"{label:>5}: Spearman rho {r['rho']:+.3f} [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}] "
              f"over {table['n_candidates']} candidates")


if __name__ == "__main__":
    main()
