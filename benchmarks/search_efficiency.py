"""Search efficiency on the bandit: trials TPE (with ASHA) needs against random search.

Protocol (a tabular benchmark, as HPOBench / NAS-Bench do):

1. ``--tabulate``: every point of the finite space ``benchmarks/bandit_grid.yaml`` (117
   points) is trained once for real (``pgu`` bandit recipe, 2048 env steps = 8 iterations,
   seed 0) in 2 worker processes; its per-iteration objective (the exact greedy expected
   reward) is stored in ``docs/results/bandit_grid.json``. The grid's best final score is
   the reference.
2. The searches replay that table. Each search seed runs a study on the same space, with the
   same define-by-run function ``pgu search`` uses (``SearchSpace``):
   * **TPE + ASHA**: the service's sampler (``TPESampler(seed, n_startup_trials=10)``) and
     Optuna's ``SuccessiveHalvingPruner`` with the service's ASHA settings (first rung at
     max(budget/9, 3 iterations) = 3 iterations, reduction factor 3); a trial reports its
     curve iteration by iteration and stops where the pruner says so;
   * **TPE alone**: the same sampler without pruning (to separate the two parts);
   * **random**: ``RandomSampler(seed)``, no pruning.
   A search "reaches the target" at the first trial that *completes* with a final score
   ≥ 95% of the grid's best (also reported: 99% and 100%). The figure is the median, over the
   search seeds, of that trial count (a search that never reaches it within ``--max-trials``
   counts as max + 1). A pruned trial never completes, so it never reaches the target.

Repeating a point (both samplers may) replays the same table entry, as a cached run would.

    python benchmarks/search_efficiency.py --tabulate     # ~8 min on 2 cores
    python benchmarks/search_efficiency.py --seeds 20
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
SPACE = ROOT / "benchmarks" / "bandit_grid.yaml"  # the default; --space picks another finite grid
BUDGET = 2048


def table_of(space_path: pathlib.Path) -> pathlib.Path:
    """Where a grid's table lives: ``docs/results/<grid file stem>.json``."""
    return ROOT / "docs" / "results" / f"{space_path.stem}.json"


def grid_points(params: dict) -> list[dict]:
    """Every point of a space whose keys are all ``choice`` or ``fixed`` (``when`` followed)."""
    points = [{}]
    for key, spec in params.items():
        grown = []
        values = [spec["fixed"]] if "fixed" in spec else spec["choice"]
        for point, value in itertools.product(points, values):
            sub = spec.get("when", {}).get(value)
            for extra in grid_points(sub) if sub else [{}]:
                grown.append({**point, key: value, **extra})
        points = grown
    return points


def key_of(point: dict) -> str:
    return json.dumps(point, sort_keys=True)


def _tabulate_worker(space_path: pathlib.Path, shard: int, shards: int, out: str) -> None:
    import torch

    from pgu_rllib.rllib.ray_session import ensure_ray
    from pgu_rllib.service.spaces import load_space
    from pgu_rllib.tasks.training import build_config

    torch.set_num_threads(1)
    ensure_ray(num_cpus=1)
    space = load_space(str(space_path))
    rows = []
    for i, point in enumerate(grid_points(space.params)):
        if i % shards != shard:
            continue
        algo = build_config("bandit", space.base_preset, point, seed=0, budget=BUDGET).build_algo()
        curve, steps = [], 0
        while steps < BUDGET:
            result = algo.train()
            steps = int(result["num_env_steps_sampled_lifetime"])
            curve.append(float(result["pgu"]["objective"]))
        algo.stop()
        rows.append({"point": point, "curve": curve})
        print(f"[tabulate {shard}] {i:>3} {key_of(point)} final {curve[-1]:.4f}", file=sys.stderr, flush=True)
    pathlib.Path(out).write_text(json.dumps(rows))


def tabulate(space_path: pathlib.Path) -> None:
    t0 = time.time()
    parts = [f"/tmp/pgu_{space_path.stem}_{i}.json" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, __file__, "--space", str(space_path), "--worker", str(i), "--out", part])
             for i, part in enumerate(parts)]
    if any(p.wait() != 0 for p in procs):
        sys.exit("a tabulation worker failed; nothing written")
    rows = [row for part in parts for row in json.loads(pathlib.Path(part).read_text())]
    protocol = {"space": str(space_path.resolve().relative_to(ROOT)), "task": "bandit", "env_steps": BUDGET, "seed": 0,
                "metric": "exact greedy expected reward (4096 contexts), per iteration",
                "wall_s": round(time.time() - t0, 1)}
    table = table_of(space_path)
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text(json.dumps({"protocol": protocol, "rows": rows}, indent=0))
    print(f"wrote {table} ({len(rows)} points, {protocol['wall_s']} s)")


def trials_to_target(sampler, pruner, space, table: dict, target: float, max_trials: int) -> int:
    import optuna

    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    for n in range(1, max_trials + 1):
        trial = study.ask()
        constants = space(trial)  # suggests first, so trial.params is complete after it
        point = {**trial.params, **constants}
        curve = table[key_of(point)]
        pruned = False
        for step, value in enumerate(curve, start=1):
            trial.report(value, step)
            if step < len(curve) and trial.should_prune():
                pruned = True
                break
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        study.tell(trial, curve[-1])
        if curve[-1] >= target:
            return n
    return max_trials + 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tabulate", action="store_true", help="train every grid point (slow) and store the table")
    ap.add_argument("--space", type=pathlib.Path, default=SPACE,
                    help="a finite grid (every key choice or fixed); its table is docs/results/<stem>.json")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--max-trials", type=int, help="give up after this many trials (default: the grid's size)")
    ap.add_argument("--fraction", type=float, default=0.95)
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        return _tabulate_worker(args.space, args.worker, 2, args.out)
    if args.tabulate:
        return tabulate(args.space)

    import optuna

    from pgu_rllib.service.spaces import load_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    table_path = table_of(args.space)
    if not table_path.exists():
        sys.exit(f"no table {table_path}; run: python benchmarks/search_efficiency.py --space {args.space} --tabulate")
    data = json.loads(table_path.read_text())
    table = {key_of(r["point"]): r["curve"] for r in data["rows"]}
    finals = sorted((c[-1] for c in table.values()), reverse=True)
    best = finals[0]
    space = load_space(str(args.space))
    iters = len(next(iter(table.values())))
    max_trials = args.max_trials or len(table)
    methods = {
        "TPE + ASHA": lambda s: (optuna.samplers.TPESampler(seed=s, n_startup_trials=10),
                                 optuna.pruners.SuccessiveHalvingPruner(min_resource=3, reduction_factor=3)),
        "TPE alone": lambda s: (optuna.samplers.TPESampler(seed=s, n_startup_trials=10), optuna.pruners.NopPruner()),
        "random": lambda s: (optuna.samplers.RandomSampler(seed=s), optuna.pruners.NopPruner()),
    }
    print(f"# search_efficiency  table={table_path.relative_to(ROOT)} ({len(table)} points, {iters} iterations each)  "
          f"grid best {best:.4f}  seeds {args.seeds}  max trials {max_trials}  optuna {optuna.__version__}")
    print(f"{'target':<22}{'points >= target':>17}{'TPE+ASHA median':>17}{'TPE alone':>11}"
          f"{'random median':>15}{'TPE+ASHA/random':>17}")
    for fraction in sorted({args.fraction, 0.99, 1.0}):
        target = fraction * best
        hits = sum(f >= target for f in finals)
        med = {}
        for name, make in methods.items():
            counts = [trials_to_target(*make(seed), space, table, target, max_trials)
                      for seed in range(args.seeds)]
            med[name] = statistics.median(counts)
            print(f"  {name} at {fraction:.0%}: per seed {counts}", file=sys.stderr)
        ratio = med["TPE + ASHA"] / med["random"]
        print(f"{fraction:>4.0%} of best = {target:.4f}{hits:>11}/{len(table)}{med['TPE + ASHA']:>17.1f}"
              f"{med['TPE alone']:>11.1f}{med['random']:>15.1f}{ratio:>17.2f}")
    print(f"target: TPE+ASHA median <= 0.5 x random's at {args.fraction:.0%} of the grid best")


if __name__ == "__main__":
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    main()
