"""Start-up costs a search pays per process, with and without two fixes, side by side in one run.

* ``train``: the CPU seconds (user + sys) of a fresh ``pgu train --task bandit --env-steps 1024``
  process (what a trial worker does: imports, build, a short training) with ``accel.torch_lazy`` on
  (the default) and off (``no_compiler_imports`` replaced by a no-op: RLlib's seeding and torch's
  optimizer wrappers import Dynamo and Inductor, as before the fix).
* ``ray_init``: the wall seconds of the ``ray.init`` that ``rllib.ray_session`` makes for a local
  search while another process holds Ray's default dashboard-agent port 52365 (as another local Ray
  does), with ``accel.guard.free_agent_port`` (the default) and without it.

Each round runs both arms in alternating order; the report gives each arm's median and the median
of the per-round ratios (off / on).

    python benchmarks/startup.py --rounds 5
"""
from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile

TRAIN = """
import sys
if sys.argv[1] == "off":
    import pgu_rllib.rllib.accel.torch_lazy as torch_lazy
    torch_lazy.no_compiler_imports = lambda: None
    import pgu_rllib.rllib.algorithm as algorithm
    algorithm.no_compiler_imports = lambda: None
from pgu_rllib.cli import main
main(["train", "--task", "bandit", "--env-steps", "1024"])
"""

RAY_INIT = """
import socket, sys, time
held = socket.socket()
try:
    held.bind(("127.0.0.1", 52365)); held.listen()
except OSError:
    pass  # held already
import ray
import pgu_rllib.rllib.accel.guard as guard
import contextlib
if sys.argv[1] == "off":
    guard.free_agent_port = contextlib.nullcontext
from pgu_rllib.rllib import ray_session
t0 = time.perf_counter()
ray_session.ensure_ray(num_cpus=1)
print(time.perf_counter() - t0)
ray.shutdown()
"""


def cpu_seconds(code: str, arm: str) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as cwd:
        subprocess.run([sys.executable, "-c", code, arm], cwd=cwd, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def init_seconds(arm: str) -> float:
    with tempfile.TemporaryDirectory() as cwd:
        out = subprocess.run([sys.executable, "-c", RAY_INIT, arm], cwd=cwd, check=True, capture_output=True,
                             text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    import datetime
    import os

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"# startup  rounds={args.rounds}  {datetime.date.today()}  commit {commit}  "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    results = {("train", "on"): [], ("train", "off"): [], ("ray_init", "on"): [], ("ray_init", "off"): []}
    for r in range(args.rounds):
        order = ("on", "off") if r % 2 == 0 else ("off", "on")
        for arm in order:
            results[("train", arm)].append(cpu_seconds(TRAIN, arm))
        for arm in order:
            results[("ray_init", arm)].append(init_seconds(arm))
        print(f"round {r + 1}: " + ", ".join(f"{k[0]} {k[1]} {v[-1]:.2f} s" for k, v in results.items()), flush=True)
    for what, unit in (("train", "CPU s per process"), ("ray_init", "wall s of ray.init")):
        on, off = results[(what, "on")], results[(what, "off")]
        ratios = [b / a for a, b in zip(on, off)]
        print(f"{what}: on {statistics.median(on):.2f}, off {statistics.median(off):.2f} {unit}; "
              f"off/on median {statistics.median(ratios):.2f} (rounds {', '.join(f'{x:.2f}' for x in ratios)}); "
              f"saved {statistics.median(off) - statistics.median(on):.2f}")


if __name__ == "__main__":
    main()
