"""Search efficiency in env steps (issue 16): random, TPE+ASHA, TPE+Wilcoxon and PB2, real searches.

Protocol. ``--reps`` repetitions of each method, each a real ``pgu search`` (Ray Tune + Optuna,
this machine's local Ray) on the same task and space with the same per-trial budget, and the same
total tuning budget of ``trials × env_steps`` env steps:

* ``random``: ``--sampler random --pruner none``, ``trials`` trials;
* ``tpe+asha``: ``--sampler tpe --pruner asha``, ``trials`` trials (ASHA may spend less);
* ``tpe+wilcoxon``: ``--sampler tpe --pruner wilcoxon --seeds-per-trial 4``, ``trials // 4``
  trials of 4 seeds each (the same env steps);
* ``pb2``: ``--scheduler pb2`` on the space's ``mutable`` keys, a population of ``trials``.

Repetition r uses ``--seed r`` for every method, so the samplers' seeds and the tuning,
selection and test seeds are shared across methods within a repetition. Each search then
re-trains its top 1 on 1 selection seed and its winner on ``--test-seeds`` test seeds.

Figures, from the registry the searches write (``--registry``):
* **env steps to target**: the trials of a search in the order they finished (their registry rows), their env steps
  summed (× seeds per trial), up to and including the first finished trial whose tuning score is
  ≥ the target; a search that never reaches it counts as "not reached" (infinite, for the quantiles).
  For PB2, whose members copy each other's weights, it is the *population's* env steps
  (``population_steps``: population size × the env-step count of the first curve point of any
  member at the target; PB2 perturbs every iteration here, so the members advance side by side);
* the **test-seed score** of the configuration each search returns (its winner's test mean);
* **why** lines: the per-trial rate at which random trials reach the target, the rate a method would
  need to halve random's median, each method's rate by finishing position, and random search on
  PB2's curve-based yardstick (a trial counted up to its first curve point at the target).

The target is a fixed quantile (``--quantile``, default 0.9) of the tuning scores of every
*random* trial across repetitions: a score that 10% of the space's random draws reach.

    python benchmarks/search_methods.py run --reps 10      # on 2 cores: ~45 min for random and TPE, ~1 h for PB2
    python benchmarks/search_methods.py table
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
METHODS = {
    "random": lambda t: ["--sampler", "random", "--pruner", "none", "--trials", str(t)],
    "tpe+asha": lambda t: ["--sampler", "tpe", "--pruner", "asha", "--trials", str(t)],
    "tpe+wilcoxon": lambda t: ["--sampler", "tpe", "--pruner", "wilcoxon", "--seeds-per-trial", "4",
                               "--trials", str(max(1, t // 4))],
    "pb2": lambda t: ["--scheduler", "pb2", "--trials", str(t)],
}
SEEDS_PER_TRIAL = {"tpe+wilcoxon": 4}


def _name(method: str, rep: int) -> str:
    return f"se-{method.replace('+', '-')}-r{rep}"


def run(args) -> None:
    from pgu_rllib.service.registry import Registry

    registry = Registry(args.registry)
    for rep in range(args.reps):
        for method, flags in METHODS.items():
            if method not in args.methods:
                continue
            name = _name(method, rep)
            done = registry.schema() and registry.search_exists(name)
            if done and registry.get_search(name).status.value == "complete":
                continue
            cmd = [sys.executable, "-m", "pgu_rllib.cli", "search", "--task", args.task, "--space", args.space,
                   "--env-steps", str(args.env_steps), "--seed", str(rep), "--max-concurrent", "2", "--top-k", "1",
                   "--selection-seeds", "1", "--test-seeds", str(args.test_seeds), "--registry", args.registry,
                   "--storage-path", "pgu_results/search_methods", "--name", name, *flags(args.trials),
                   *(["--resume"] if done else [])]
            print(f"[search_methods] rep {rep} {method}", flush=True)
            out = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-3000:]}")


def table(args) -> None:
    from pgu_rllib.core.stats import summarize
    from pgu_rllib.service.registry import Registry

    registry = Registry(args.registry)
    searches = {}
    for method in METHODS:
        for rep in range(args.reps):
            name = _name(method, rep)
            if not (registry.search_exists(name) and registry.get_search(name).status.value == "complete"):
                continue
            row = registry.get_search(name)
            trials = registry.trials(row.id)  # in the order they finished (row id)
            tests = [e["score"] for e in registry.evaluations(row.id, "test")]
            searches.setdefault(method, []).append({"trials": trials, "test_mean": float(np.mean(tests)),
                                                    "wall_s": row.timings.get("tuning", {}).get("wall_s", float("nan"))})
    pool = [t["score"] for s in searches.get("random", []) for t in s["trials"] if t["score"] is not None]
    target = float(np.quantile(pool, args.quantile))
    trial_steps = int(np.median([t["env_steps"] for s in searches.get("random", []) for t in s["trials"]] or [0]))
    budget = args.trials * trial_steps  # the runner rounds --env-steps up to whole iterations
    print(f"# search_methods  task={args.task}  space={args.space}  per-trial budget={args.env_steps}  "
          f"tuning budget={budget} env steps  target={target:.4f} (the {args.quantile:.2f} quantile of "
          f"{len(pool)} random trials' scores)  load average {os.getloadavg()[0]:.2f}")
    print("| method | searches | reached the target | env steps to target: median [25%, 75%] | env steps spent "
          "(median) | tuning wall s (median) | test-seed score of the returned configuration: mean, IQM [95% CI] |\n"
          "|---|---|---|---|---|---|---|")
    medians = {}
    for method, rows in searches.items():
        k = SEEDS_PER_TRIAL.get(method, 1)
        to_target, spent, reached = [], [], 0
        for s in rows:
            total, hit = 0, None
            for t in s["trials"]:
                total += t["env_steps"] * k
                if hit is None and t["score"] is not None and t["score"] >= target:
                    hit = total
            if method == "pb2":  # a population: what it spent when its first member's curve reached the target
                hit = population_steps(s["trials"], target)
                hit = None if hit == float("inf") else hit
            spent.append(total)
            reached += hit is not None
            to_target.append(hit if hit is not None else float("inf"))  # never reached within its budget
        q25, q50, q75 = (np.percentile(to_target, [25, 50, 75], method="lower") if to_target
                         else [float("nan")] * 3)

        def steps(x):
            return "not reached" if x == float("inf") else f"{x:,.0f}"
        medians[method] = q50
        test = summarize([s["test_mean"] for s in rows])
        lo, hi = test["ci95"] or (test["mean"], test["mean"])
        print(f"| {method} | {len(rows)} | {reached} of {len(rows)} | {steps(q50)} [{steps(q25)}, {steps(q75)}] | "
              f"{np.median(spent):,.0f} | {np.median([s['wall_s'] for s in rows]):.0f} | "
              f"{test['mean']:.4f}, {test['iqm']:.4f} [{lo:.4f}, {hi:.4f}] |")
    base = medians.get("random")
    for method, m in medians.items():
        if method != "random" and base:
            ratio = m / base if m != float("inf") else float("inf")
            print(f"{method}: median env steps to target / random's = {ratio:.2f} (target <= 0.5)")
    why(searches, target, trial_steps)
    print(json.dumps({"target": target, "budget": budget}))


def first_at_target(trial: dict, target: float) -> int | None:
    """The env-step count of the trial's first curve point at the target, or None."""
    return next((step for step, score in trial["curve"] if score >= target), None)


def population_steps(members: list[dict], target: float) -> float:
    """A population's env steps to target: population size × the env-step count of the first
    curve point of any member at the target (PBT/PB2 advance their members side by side; a member's
    step count includes the steps of the weights it copied). Infinite if none reaches it."""
    firsts = [first_at_target(t, target) for t in members]
    firsts = [f for f in firsts if f is not None]
    return min(firsts) * len(members) if firsts else float("inf")


def why(searches: dict, target: float, trial_steps: int) -> None:
    """The arithmetic of the ≤ 0.5× target: how often a trial (by its finishing position) reaches the
    target, and what per-trial rate a method would need to halve random's median."""
    def rate(rows, positions):
        hits = [t["score"] >= target for s in rows for i, t in enumerate(s["trials"])
                if i in positions and t["score"] is not None]
        return sum(hits) / max(1, len(hits)), len(hits)

    randoms = searches.get("random", [])
    if not randoms:
        return
    p, n = rate(randoms, range(10 ** 6))
    median_trials = next((k for k in range(1, 10 ** 4) if 1 - (1 - p) ** k >= 0.5), None) if p > 0 else None
    half = int(0.5 * (median_trials or 0))
    need = 1 - 0.5 ** (1 / half) if half else float("nan")
    print(f"why: a random trial reaches the target with p = {p:.3f} ({n} trials); a search then reaches it "
          f"within k trials with probability 1-(1-p)^k, whose median k = {median_trials} "
          f"({(median_trials or 0) * trial_steps:,} env steps). Half of that is {half} trials, and reaching the "
          f"target within {half} trials in half the searches needs a per-trial rate >= {need:.3f} from the first trial.")
    curve_based = []  # the same yardstick for random search: a trial counts up to its first curve point at the target
    for s in randoms:
        total, hit = 0, float("inf")
        for t in s["trials"]:
            first = first_at_target(t, target)
            if first is not None:
                hit = total + first
                break
            total += t["env_steps"]
        curve_based.append(hit)
    med = random_curve = float(np.percentile(curve_based, 50, method="lower"))
    print(f"why: random on the same curve-based yardstick: median {'not reached' if med == float('inf') else f'{med:,.0f}'} "
          f"env steps over {len(curve_based)} searches")
    if searches.get("pb2"):
        pop = sorted(population_steps(s["trials"], target) for s in searches["pb2"])
        med = float(np.percentile(pop, 50, method="lower"))
        print(f"why: pb2's env steps to target are the population's (population size x the env-step count of "
              f"the first curve point of any member at the target; members advance side by side): all "
              f"{', '.join('not reached' if x == float('inf') else f'{x:,.0f}' for x in pop)}; median / random's on "
              f"the same curve-based yardstick = {med / random_curve:.2f}")
    for method, rows in searches.items():
        if method == "pb2" or not half:
            continue
        early, n_early = rate(rows, range(half))
        late, n_late = rate(rows, range(half, 10 ** 6))
        print(f"why: {method}: per-trial rate in finishing positions 1-{half} = {early:.3f} ({n_early} trials), "
              f"after = {late:.3f} ({n_late} trials)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["run", "table"])
    ap.add_argument("--task", default="bandit")
    ap.add_argument("--space", default="mla")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--env-steps", type=int, default=3000)
    ap.add_argument("--test-seeds", type=int, default=3)
    ap.add_argument("--quantile", type=float, default=0.9)
    ap.add_argument("--registry", default=f"sqlite:///{ROOT}/docs/results/search_methods.db")
    ap.add_argument("--methods", type=lambda text: text.split(","), default=list(METHODS),
                    help=f"comma-separated subset of {','.join(METHODS)} (run only those)")
    args = ap.parse_args()
    {"run": run, "table": table}[args.what](args)


if __name__ == "__main__":
    main()
