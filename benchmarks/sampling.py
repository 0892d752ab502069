"""Sampling alone: a trial's EnvRunner against the raw gymnasium step rate of the same env.

Protocol: one process, torch with one thread. Interleaved, for ``--rounds`` rounds:

* **raw**: ``gym.make(env_id)`` stepped with ``action_space.sample()`` actions (reset on
  episode end), 2048 steps: what a random-agent loop gets;
* **raw, actions drawn beforehand**: the same with the actions drawn before the clock starts:
  the env step alone, the strict yardstick (issue 15's "raw gymnasium step rate");
* **raw + wrapper**: the same through the recipe's ``RewardScaled`` wrapper;
* **raw vector env**: the trial's own vector env (16 recipe envs in gymnasium's
  ``SyncVectorEnv``, as RLlib builds it), stepped with batched actions drawn beforehand: the most
  any sampler of this env layout can reach;
* **pgu sampling**: ``PGUEnvRunner.sample(num_timesteps=2048)`` of the config
  ``pgu train --task T --preset ppo`` builds (its env, connectors with the MeanStdFilter,
  the 64-64 policy's forward pass and action sampling).

Figures are medians over rounds; ratios are each rate over the raw rates.

    python benchmarks/sampling.py --task halfcheetah --rounds 5
"""
from __future__ import annotations

import argparse
import os
import statistics
import time


def raw_rate(env, steps: int) -> float:
    env.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - t0)


def predrawn_rate(env, steps: int) -> float:
    actions = [env.action_space.sample() for _ in range(steps)]
    env.reset(seed=0)
    t0 = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - t0)


def vector_rate(vector_env, steps: int) -> float:
    n = vector_env.num_envs
    actions = [vector_env.action_space.sample() for _ in range(steps // n)]
    t0 = time.perf_counter()
    for action in actions:
        vector_env.step(action)  # gymnasium's autoreset handles episode ends
    return len(actions) * n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="halfcheetah")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=2048)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config key, as `pgu train --set` does (repeatable)")
    args = ap.parse_args()

    import gymnasium as gym
    import torch

    from pgu_rllib.cli import parse_sets
    from pgu_rllib.tasks import get_task
    from pgu_rllib.tasks.mujoco import RewardScaled
    from pgu_rllib.tasks.training import build_config

    torch.set_num_threads(1)
    task = get_task(args.task)
    overrides = parse_sets(args.set)
    config = build_config(args.task, "ppo", overrides, seed=0, budget=10**7)
    runner = config.env_runner_cls(config=config)  # PGUEnvRunner, as in a trial
    runner.sample(num_timesteps=args.steps)  # warm-up
    raw, wrapped = gym.make(task.env_id), RewardScaled({"env_id": task.env_id})
    vector_env = config.env_runner_cls(config=config).env  # a second runner's env: the same layout, untouched
    vector_env.reset(seed=0)
    rates = {"raw gymnasium": [], "raw, actions drawn": [], "raw + RewardScaled": [], "raw vector env": [],
             "pgu sampling": []}
    for _ in range(args.rounds):
        rates["raw gymnasium"].append(raw_rate(raw, args.steps))
        rates["raw, actions drawn"].append(predrawn_rate(raw, args.steps))
        rates["raw + RewardScaled"].append(raw_rate(wrapped, args.steps))
        rates["raw vector env"].append(vector_rate(vector_env, args.steps))
        t0 = time.perf_counter()
        episodes = runner.sample(num_timesteps=args.steps)
        n = sum(len(e) for e in episodes)
        rates["pgu sampling"].append(n / (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"# sampling  task={args.task} ({task.env_id})  steps/round={args.steps}  rounds={args.rounds}  "
          f"envs per runner={config.num_envs_per_env_runner}  overrides={overrides or 'none'}  "
          f"load average {os.getloadavg()[0]:.2f}")
    for k, v in med.items():
        print(f"{k:<20}{v:>10.0f} env steps/s  / raw {v / med['raw gymnasium']:.3f}  "
              f"/ raw, actions drawn {v / med['raw, actions drawn']:.3f}")
    print(f"ratio pgu sampling / raw gymnasium step rate (actions drawn beforehand): "
          f"{med['pgu sampling'] / med['raw, actions drawn']:.3f} (issue 15 target >= 0.7); "
          f"/ the raw vector env: {med['pgu sampling'] / med['raw vector env']:.3f}")
    runner.stop()


if __name__ == "__main__":
    main()
