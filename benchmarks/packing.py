"""Packing: aggregate env steps/s of 2 concurrent trials on 2 cores against 1 trial.

Protocol: one local Ray with ``num_cpus=2`` (as ``pgu search`` starts it), trials built
exactly as ``pgu search`` builds them (``PGU`` trainable, the task's recipe with preset
``ppo``, 1 CPU per trial, ``num_env_runners=0``). Each round runs a 1-trial experiment and
a 2-trial experiment (``max_concurrent_trials=2``), in alternating order, each trial for
``--iters`` iterations. A trial's rate is its env steps over the summed ``time_this_iter_s``
of its iterations after the first (start-up excluded); the aggregate is the sum over the
trials that ran together. Medians over rounds; ratio = aggregate(2) / aggregate(1).

    python benchmarks/packing.py --task halfcheetah --iters 4 --rounds 2
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile


def experiment(base: dict, n_trials: int, iters: int) -> float:
    from ray import tune

    from pgu_rllib.rllib.algorithm import PGU

    with tempfile.TemporaryDirectory() as storage, contextlib.redirect_stdout(sys.stderr):  # Tune's tables
        grid = tune.Tuner(
            PGU, param_space={**base, "seed": tune.grid_search(list(range(n_trials)))},
            tune_config=tune.TuneConfig(max_concurrent_trials=n_trials),
            run_config=tune.RunConfig(storage_path=storage, stop={"training_iteration": iters}, verbose=0),
        ).fit()
        rates = []
        for result in grid:
            if result.error:
                raise SystemExit(f"trial failed: {result.error}")
            df = result.metrics_dataframe  # iterations after the first (warm-up) only
            steps = df["num_env_steps_sampled_lifetime"].iloc[-1] - df["num_env_steps_sampled_lifetime"].iloc[0]
            rates.append(steps / df["time_this_iter_s"].iloc[1:].sum())
        return sum(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="halfcheetah")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config key, as `pgu train --set` does (repeatable)")
    args = ap.parse_args()

    import ray

    from pgu_rllib.rllib.ray_session import ensure_ray
    from pgu_rllib.cli import parse_sets
    from pgu_rllib.tasks.training import build_config

    overrides = parse_sets(args.set)
    base = build_config(args.task, "ppo", overrides, seed=0, budget=10**7).to_dict()
    ensure_ray(num_cpus=2)  # the local Ray `pgu search` starts
    agg = {1: [], 2: []}
    for r in range(args.rounds):
        for n in (1, 2) if r % 2 == 0 else (2, 1):
            agg[n].append(experiment(base, n, args.iters))
            print(f"[round {r}] {n} trial(s): aggregate {agg[n][-1]:.0f} env steps/s", file=sys.stderr, flush=True)
    ray.shutdown()
    med = {n: statistics.median(v) for n, v in agg.items()}
    print(f"# packing  task={args.task}  iters/trial={args.iters} (first dropped)  rounds={args.rounds}  "
          f"cpus=2  overrides={overrides or 'none'}  load average {os.getloadavg()[0]:.2f}")
    print(f"1 trial : {med[1]:7.0f} env steps/s")
    print(f"2 trials: {med[2]:7.0f} env steps/s aggregate")
    print(f"ratio 2 concurrent / 1: {med[2] / med[1]:.2f} (target >= 1.8)")


if __name__ == "__main__":
    main()
