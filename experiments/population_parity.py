"""Issue 26: does a run trained as a population member score like the same run trained alone?

A member is not the same computation as a solo RLlib run: it samples with its own vector env and
applies the recipe's normalisations on tensors (``tasks/population.py``), so only the distribution of
its scores can match. For each (task, preset) below, ``pgu evaluate`` runs the same configuration on
the same N test seeds (``--seed 0``: 2,000,000 …) twice, alone and ``--population K``, into
``docs/results/population_parity.db`` (resumable: a complete arm is skipped, a partial one resumed).
``table`` prints each arm's mean, IQM with a stratified-bootstrap 95% CI (rliable) and the probability
that a member scores higher than a solo run of the same seed set, P(member > solo) with its CI: 0.5 is
parity. Scored by the one evaluator (deterministic, env seeds 10000+i, statistics frozen).

    python experiments/population_parity.py run --seeds 10 && python experiments/population_parity.py table
"""
from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
REGISTRY = "sqlite:///docs/results/population_parity.db"
ARMS = {("cartpole", "ppo"): 20_000, ("cartpole", "pgpb"): 20_000, ("hopper", "ppo"): 300_000}  # below the ceiling


def _name(task: str, preset: str, k: int) -> str:
    return f"parity-{task}-{preset}-" + (f"population{k}" if k > 1 else "solo")


def _registry():
    from pgu_rllib.service.registry import Registry

    return Registry(REGISTRY.replace("sqlite:///", f"sqlite:///{ROOT}/"))  # the repository's file, from any cwd


def run(args) -> None:
    reg = _registry()
    for (task, preset), budget in ARMS.items():
        if args.task and task not in args.task:
            continue
        for k in (1, args.population):
            name = _name(task, preset, k)
            status = reg.get_search(name).status.value if reg.schema() and reg.search_exists(name) else None
            if status == "complete":
                continue
            cmd = [sys.executable, "-m", "pgu_rllib.cli", "evaluate", "--task", task, "--preset", preset,
                   "--env-steps", str(budget), "--test-seeds", str(args.seeds), "--seed", "0",
                   "--registry", REGISTRY, "--storage-path", "pgu_results/parity", "--name", name,
                   *(["--population", str(k)] if k > 1 else []), *(["--resume"] if status else [])]
            print("[parity]", " ".join(cmd), flush=True)
            subprocess.run(cmd, cwd=ROOT, check=True)


def table(args) -> None:
    import numpy as np
    from rliable import library as rly
    from rliable import metrics

    np.random.seed(0)  # rliable's StratifiedBootstrap draws its indices from numpy's global generator,
    # arch the rest from `random_state`: both seeded, the same table every run (as mujoco_report._rng)
    reg = _registry()
    print(f"| task | preset | solo: mean, IQM [95% CI] | population {args.population}: mean, IQM [95% CI] "
          f"| P(member > solo) [95% CI] | seeds |\n|---|---|---|---|---|---|")
    for (task, preset), _ in ARMS.items():
        arms = {}
        for k in (1, args.population):
            name = _name(task, preset, k)
            if reg.schema() and reg.search_exists(name):
                rows = sorted(reg.evaluations(reg.get_search(name).id, "test"), key=lambda e: e["seed"])
                arms[k] = np.array([[e["score"] for e in rows]]).T  # runs x 1 task
        if len(arms) < 2 or arms[1].shape != arms[args.population].shape:
            print(f"| {task} | {preset} | not run (or unequal seed sets) | | | |")
            continue
        scores = {"solo": arms[1], "member": arms[args.population]}
        iqm, ci = rly.get_interval_estimates(scores, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=2000,
                                           random_state=np.random.RandomState(0))
        pair = {"member,solo": (scores["member"], scores["solo"])}
        p, p_ci = rly.get_interval_estimates(pair, metrics.probability_of_improvement, reps=2000,
                                           random_state=np.random.RandomState(0))
        cells = [f"{scores[a].mean():.1f}, {iqm[a][0]:.1f} [{ci[a][0][0]:.1f}, {ci[a][1][0]:.1f}]"
                 for a in ("solo", "member")]
        lo, hi = np.ravel(p_ci["member,solo"])
        print(f"| {task} | {preset} | {cells[0]} | {cells[1]} | {float(np.ravel(p['member,solo'])[0]):.2f} "
              f"[{lo:.2f}, {hi:.2f}] | {len(scores['solo'])} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["run", "table"])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--population", type=int, default=5, help="K of the population arm")
    ap.add_argument("--task", action="append", help="these tasks only (repeatable)")
    args = ap.parse_args()
    {"run": run, "table": table}[args.command](args)


if __name__ == "__main__":
    main()
