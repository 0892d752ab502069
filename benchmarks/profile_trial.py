"""Where a ``pgu train`` trial spends its time: RLlib's own timers plus a cProfile.

Protocol: the task's recipe with preset ``ppo`` (the same config ``pgu train`` builds), one
process, ``num_env_runners=0`` (sampling in the driver, as in every local trial), torch with
one thread. One warm-up iteration, then ``--iters`` iterations under cProfile. Prints the
share of each RLlib timer (sampling, learner update) in the iteration time, and the top
functions by own time and by cumulative time.

    python benchmarks/profile_trial.py --task halfcheetah --iters 3
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time


def _timers(result: dict) -> dict:
    t = result.get("timers", {})
    return {"sample_s": t.get("env_runner_sampling_timer"), "learn_s": t.get("learner_update_timer"),
            "iter_s": t.get("training_iteration")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="halfcheetah")
    ap.add_argument("--preset", default="ppo")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config key, as `pgu train --set` does (repeatable)")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()

    import ray
    import torch

    from pgu_rllib.rllib.ray_session import ensure_ray
    from pgu_rllib.cli import parse_sets
    from pgu_rllib.tasks.training import build_config

    torch.set_num_threads(1)
    overrides = parse_sets(args.set)
    config = build_config(args.task, args.preset, overrides, seed=0, budget=10**7)
    ensure_ray(num_cpus=1)
    algo = config.build_algo()
    algo.train()  # warm-up
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    rows = [_timers(algo.train()) for _ in range(args.iters)]
    prof.disable()
    wall = time.perf_counter() - t0
    steps = args.iters * config.train_batch_size_per_learner
    print(f"# profile_trial task={args.task} preset={args.preset} overrides={overrides} iters={args.iters}")
    print(f"env steps/s under cProfile: {steps / wall:.0f} (profiling slows Python code)")
    for row in rows:
        print("timers: " + "  ".join(f"{k} {v:.3f}" for k, v in row.items() if v is not None))
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(key).print_stats(args.top)
        print(f"\n## top {args.top} by {key}\n" + "\n".join(out.getvalue().splitlines()[6:]))
    algo.stop()
    ray.shutdown()


if __name__ == "__main__":
    main()
