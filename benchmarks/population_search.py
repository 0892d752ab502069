"""Search wall time with and without ``--population`` (issue 26 §4): the same search, side by side in one run.

Each arm is ``pgu search --task T --space S --trials N --env-steps B --seed 0`` (ASHA, TPE, the default
concurrency: the cluster's CPUs, times K with ``--population K``), stopped (SIGINT) when the tuning
phase is over. The figure is the tuning phase's wall time and training env steps, from the registry's
timing row (``pgu best --json``'s ``timings``); the process wall time adds Ray's start and stop. Rounds
alternate the arms' order.

    python benchmarks/population_search.py --task hopper --space ppo_knobs --trials 12 --env-steps 300000 --ks 1 8
    python benchmarks/population_search.py --task cartpole --space ppo_knobs --trials 8 --env-steps 20480 --ks 1 4
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def one_search(args, k: int, where: pathlib.Path) -> dict:
    """One arm's tuning phase: the search is stopped (SIGINT, as a user would) once it reports its selection
    phase, so the selection and test runs, which are not measured, cost nothing."""
    name = f"bench-k{k}"
    registry = f"sqlite:///{where / 'r.db'}"
    cmd = [sys.executable, "-m", "pgu_rllib.cli", "search", "--task", args.task, "--space", args.space,
           "--trials", str(args.trials), "--env-steps", str(args.env_steps), "--seed", "0", "--top-k", "1",
           "--selection-seeds", "1", "--test-seeds", "1", "--name", name, "--registry", registry,
           "--storage-path", str(where / "tune"), *(["--population", str(k)] if k > 1 else [])]
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    tail = []
    for line in proc.stderr:
        tail = (tail + [line])[-40:]
        if "] selection:" in line:  # the tuning phase is over and its timing row written
            threading.Thread(target=_interrupt, args=(proc,), daemon=True).start()
            break
    for line in proc.stderr:
        tail = (tail + [line])[-40:]
    rc = proc.wait()
    timings = _timings(registry, name)
    if "tuning" not in timings or rc not in (0, 130):
        sys.exit(f"{' '.join(cmd)} ended ({rc}) without a tuning phase:\n{''.join(tail)}")
    tuning = timings["tuning"]
    return {"k": k, "tuning_wall_s": tuning["wall_s"], "tuning_env_steps": tuning["env_steps"],
            "process_wall_s": time.time() - t0}


def _interrupt(proc: subprocess.Popen) -> None:
    """SIGINT until the search exits: in the Hopper run of 2026-11-30 the first SIGINT after the selection
    line was lost twice (the search went on into its selection run; the next one stopped it)."""
    while proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        time.sleep(20)


def _timings(registry: str, name: str) -> dict:
    from pgu_rllib.service.registry import Registry

    return Registry(registry).get_search(name).timings or {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="cartpole")
    ap.add_argument("--space", default="ppo_knobs")
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--env-steps", type=int, default=20480)
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    runs: dict[int, list[dict]] = {k: [] for k in args.ks}
    for r in range(args.rounds):
        for k in (args.ks if r % 2 == 0 else args.ks[::-1]):
            with tempfile.TemporaryDirectory() as tmp:
                runs[k].append(one_search(args, k, pathlib.Path(tmp)))
            print(f"[round {r}] K={k}: {json.dumps(runs[k][-1])}", file=sys.stderr, flush=True)
    med = statistics.median
    base = med(x["tuning_wall_s"] for x in runs[args.ks[0]])
    print(f"# population search  task={args.task} space={args.space} trials={args.trials} env_steps={args.env_steps} "
          f"rounds={args.rounds}  load average {os.getloadavg()[0]:.2f}")
    print(f"{'arm':<16}{'tuning wall s':>14}{'/ K=' + str(args.ks[0]):>9}{'tuning env steps':>18}{'env steps/s':>13}"
          f"{'process wall s':>16}")
    for k, xs in runs.items():
        wall, steps = med(x["tuning_wall_s"] for x in xs), med(x["tuning_env_steps"] for x in xs)
        print(f"{'population ' + str(k) if k > 1 else 'plain':<16}{wall:>14.0f}{wall / base:>9.2f}{steps:>18,.0f}"
              f"{steps / wall:>13.0f}{med(x['process_wall_s'] for x in xs):>16.0f}")
    print(json.dumps({str(k): xs for k, xs in runs.items()}))


if __name__ == "__main__":
    main()
