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


def _spearman_ci(x, y, rng, resamples: int) -> dict:
    rho = stats.spearmanr(x, y).statistic
    boot = []
    for _ in range(resamples):
        idx = rng.integers(0, len(x), len(x))
        if len(set(idx)) > 2:
            boot.append(stats.spearmanr(x[idx], y[idx]).statistic)
    lo, hi = np.nanpercentile(boot, [2.5, 97.5])
    return {"rho": float(rho), "ci95": [float(lo), float(hi)], "n": int(len(x))}


MIN_CANDIDATES = 5  # below this, a rank correlation with the selection mean is not reported


def rank_table(registry: str, name: str = NAME, resamples: int = 10_000, seed: int = 0) -> dict:
    """Spearman's rho (bootstrap 95% CI over trials) of: the two objectives with each other, over every
    tuning trial; each objective with the selection mean, over the candidates whose selection runs are
    all stored (only with ``MIN_CANDIDATES`` or more)."""
    from pgu_rllib.service.registry import Registry

    reg = Registry(registry)
    search = reg.get_search(name)
    trials = [t for t in reg.trials(search.id) if t["metrics"].get("eval_return") is not None
              and t["metrics"].get("train_return") is not None]
    n_sel = search.settings["selection_seeds"]
    by_params: dict[str, list[float]] = {}
    for row in reg.evaluations(search.id, "selection"):
        by_params.setdefault(json.dumps(row["params"], sort_keys=True), []).append(row["score"])
    rng = np.random.default_rng(seed)
    train = np.array([t["metrics"]["train_return"] for t in trials])
    evalr = np.array([t["metrics"]["eval_return"] for t in trials])
    out = {"search": name, "budget": search.settings["env_steps"], "selection_seeds": n_sel,
           "trials": [{"params": {k: t["params"][k] for k in ("form", "scale") if k in t["params"]},
                       "train_return": float(tr), "eval_return": float(ev)}
                      for t, tr, ev in zip(trials, train, evalr)],
           "train_vs_eval": _spearman_ci(train, evalr, rng, resamples)}
    points = []
    for t in trials:
        params = {k: v for k, v in t["params"].items() if k != "seed"}
        scores = by_params.get(json.dumps(params, sort_keys=True), [])
        if len(scores) == n_sel:
            points.append((t["metrics"]["train_return"], t["metrics"]["eval_return"], float(np.mean(scores))))
    out["candidates"] = [{"train_return": a, "eval_return": b, "selection_mean": c} for a, b, c in points]
    if len(points) >= MIN_CANDIDATES:
        tr, ev, sel = (np.array(c) for c in zip(*points))
        out["train_vs_selection"] = _spearman_ci(tr, sel, rng, resamples)
        out["eval_vs_selection"] = _spearman_ci(ev, sel, rng, resamples)
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
    for key in ("train_vs_eval", "train_vs_selection", "eval_vs_selection"):
        r = table.get(key)
        print(f"{key:>18}: " + (f"Spearman rho {r['rho']:+.3f} [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}] over {r['n']}"
                                if r else f"not measured ({len(table['candidates'])} of {MIN_CANDIDATES}+ candidates "
                                          f"with all {table['selection_seeds']} selection runs)"))

if __name__ == "__main__":
    main()
