"""Trial throughput: one ``pgu train`` trial against a minimal PyTorch PPO loop and SB3 PPO.

Protocol: HalfCheetah-v5, the ``ppo`` preset's MuJoCo recipe on both sides (batch 2048,
minibatch 64, 10 epochs, 64-64 tanh, obs/reward normalisation; see ``minimal_ppo.py``).
Each round runs, in alternating order, one fresh process of each:

* ``pgu train --task halfcheetah --preset ppo --env-steps N --json`` (a local Ray started
  by the command, sampling in the trial process: ``num_env_runners=0``);
* ``python benchmarks/minimal_ppo.py --env-steps N`` with 1 env (CleanRL's default: the
  yardstick of the target);
* the same with ``--num-envs 16``, the layout of our MuJoCo recipe (16 envs x 128 steps);
* ``python benchmarks/sb3_ppo.py --num-envs 16``: Stable-Baselines3's PPO with the same recipe
  (what an RL Zoo user runs; needs the ``baselines`` extra).

``env_steps_per_s`` counts training iterations only (sampling, GAE, updates); start-up
(imports, Ray, env and network construction) is reported separately, as is the process's
whole wall time. Figures are medians over rounds; the ratios are pgu / each other runner, and
the last line says in how many rounds pgu was at least as fast as each 16-env runner.

    python benchmarks/trial_throughput.py --rounds 3 --env-steps 10240
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run_json(cmd: list[str]) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "RAY_DEDUP_LOGS": "0"})
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["process_wall_s"] = wall
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env-steps", type=int, default=10240)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra `pgu train --set` overrides (to measure a variant)")
    args = ap.parse_args()
    pgu = [str(pathlib.Path(sys.executable).parent / "pgu"), "train", "--task", "halfcheetah", "--preset", "ppo",
           "--env-steps", str(args.env_steps), "--json"] + [a for s in args.set for a in ("--set", s)]
    minimal = [sys.executable, "benchmarks/minimal_ppo.py", "--env", "HalfCheetah-v5", "--env-steps", str(args.env_steps)]
    sb3 = [sys.executable, "benchmarks/sb3_ppo.py", "--env", "HalfCheetah-v5", "--env-steps", str(args.env_steps),
           "--num-envs", "16"]
    commands = {"pgu train": pgu, "minimal loop": minimal, "minimal 16 envs": minimal + ["--num-envs", "16"],
                "sb3 16 envs": sb3}
    rows = {name: [] for name in commands}
    for r in range(args.rounds):
        order = list(commands.items())
        for name, cmd in order if r % 2 == 0 else order[::-1]:
            rows[name].append(run_json(cmd))
            row = rows[name][-1]
            print(f"[round {r}] {name:<16} {row['env_steps_per_s']:7.0f} env steps/s  startup {row['startup_s']:5.1f} s  "
                  f"process {row['process_wall_s']:5.1f} s", file=sys.stderr, flush=True)
    load = os.getloadavg()[0]
    print(f"# trial_throughput  env=HalfCheetah-v5  env_steps={args.env_steps}  rounds={args.rounds}  "
          f"overrides={args.set or 'none'}  load average {load:.2f}")
    print(f"{'impl':<17}{'env steps/s':>12}{'startup s':>11}{'process s':>11}{'pgu/this':>9}")
    med = {name: statistics.median(r["env_steps_per_s"] for r in rs) for name, rs in rows.items()}
    for name, rs in rows.items():
        print(f"{name:<17}{med[name]:>12.0f}{statistics.median(r['startup_s'] for r in rs):>11.1f}"
              f"{statistics.median(r['process_wall_s'] for r in rs):>11.1f}{med['pgu train'] / med[name]:>9.2f}")
    print(f"ratio pgu / minimal loop (env steps/s, median of {args.rounds}): "
          f"{med['pgu train'] / med['minimal loop']:.2f} (target >= 1.0); "
          f"against the minimal loop with 16 envs: {med['pgu train'] / med['minimal 16 envs']:.2f}; "
          f"against SB3 with 16 envs: {med['pgu train'] / med['sb3 16 envs']:.2f} (target >= 1.0)")
    for other in ("minimal 16 envs", "sb3 16 envs"):
        ratios = [a["env_steps_per_s"] / b["env_steps_per_s"] for a, b in zip(rows["pgu train"], rows[other])]
        print(f"per round pgu / {other}: " + " ".join(f"{x:.2f}" for x in ratios)
              + f"  (>= 1.0 in {sum(x >= 1.0 for x in ratios)} of {len(ratios)})")


if __name__ == "__main__":
    main()
