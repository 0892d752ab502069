"""Wall time of a small search with Tune's actor reuse on (the default) and off (``PGU_REUSE_ACTORS=0``),
side by side: each round runs the same seeded search once each way, in alternating order, as fresh
``pgu search`` processes on the embedded default (a local Ray, a SQLite registry in a temporary folder).

Reported per phase from the registry's timings (tuning, selection, test: wall seconds) and for the whole
process, with the ratio reuse-off / reuse-on per round and its median; also the CPU-seconds the machine was
busy while the search ran (``/proc/stat``: the driver, Ray and every worker; run it on a quiet machine) and
the worker processes the search started (the ``worker-*`` logs of its Ray session). A trial that ran the full budget in
both arms (same seed, same configuration) must score the same whichever worker ran it
(``tests/test_actor_reuse.py``); the script checks those and says how many there were. Which trials ASHA
stops early depends on the order results arrive in (its rungs are asynchronous), so the stopped trials, and
with them the winner, may differ between any two runs, with or without reuse.

    python benchmarks/actor_reuse.py --rounds 3
    python benchmarks/actor_reuse.py --rounds 2 --trials 6 --max-concurrent 1
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

from pgu_rllib.service.registry import Registry

SEARCH = ["--task", "bandit", "--space", "paper", "--env-steps", "1024",
          "--top-k", "2", "--selection-seeds", "2", "--test-seeds", "2", "--seed", "3", "--name", "bench"]


def busy_cpu_s() -> float:
    """CPU-seconds this machine has been busy since boot (every process: ``/proc/stat``, user to steal)."""
    fields = [int(x) for x in pathlib.Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def workers_started(stderr: str) -> int:
    """Worker processes of the search's job (job 01000000) in the session folder its first line names."""
    found = re.search(r"its logs: (\S+)", stderr)
    return len(list(pathlib.Path(found.group(1)).glob("worker-*-01000000-*.out"))) if found else -1


def one(reuse: bool, trials: int, concurrent: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="pgu-reuse-") as cwd:
        env = {**os.environ, "PGU_REUSE_ACTORS": "1" if reuse else "0"}
        t0, cpu0 = time.perf_counter(), busy_cpu_s()
        out = subprocess.run([sys.executable, "-m", "pgu_rllib.cli", "search", *SEARCH, "--trials", str(trials),
                              "--max-concurrent", str(concurrent)], cwd=cwd, env=env, capture_output=True, text=True,
                             timeout=1800)
        wall, cpu = time.perf_counter() - t0, busy_cpu_s() - cpu0
        if out.returncode != 0:
            raise SystemExit(f"search failed (reuse={reuse}): {out.stderr[-2000:]}")
        reg = Registry(f"sqlite:///{cwd}/pgu_results/registry.db")
        row = reg.get_search("bench")
        timings = {phase: round(t["wall_s"], 1) for phase, t in row.timings.items()}
        trial_scores = {(t["params"]["seed"], json.dumps(t["params"], sort_keys=True)): t["score"]
                        for t in reg.trials(row.id) if t["status"] == "complete"}
        best = reg.best("bandit", "paper")
        return {"reuse": reuse, "process_s": round(wall, 1), "cpu_s": round(cpu, 1),
                "workers": workers_started(out.stderr), **timings, "trial_scores": trial_scores,
                "test_scores": best["test_scores"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--max-concurrent", type=int, default=2)
    args = ap.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"# benchmarks/actor_reuse.py {time.strftime('%Y-%m-%d %H:%M')} commit={commit} rounds={args.rounds} "
          f"trials={args.trials} max_concurrent={args.max_concurrent} cpus={os.cpu_count()}", flush=True)
    rows = []
    for r in range(args.rounds):
        order = (True, False) if r % 2 == 0 else (False, True)
        pair = {reuse: one(reuse, args.trials, args.max_concurrent) for reuse in order}
        rows.append(pair)
        for reuse in order:
            row = pair[reuse]
            print(json.dumps({k: v for k, v in row.items() if not k.endswith("scores")}), flush=True)
    both = [(p[True]["trial_scores"][k], p[False]["trial_scores"][k]) for p in rows
            for k in p[True]["trial_scores"].keys() & p[False]["trial_scores"].keys()]
    print(f"trials that ran the full budget in both arms: {len(both)}; identical scores: "
          f"{sum(a == b for a, b in both)} of {len(both)}")
    for key in ("tuning", "selection", "test", "process_s", "cpu_s"):
        ratios = [p[False][key] / p[True][key] for p in rows if p[True].get(key)]
        on = statistics.median(p[True][key] for p in rows)
        off = statistics.median(p[False][key] for p in rows)
        print(f"{key:10s} reuse on {on:7.1f}  off {off:7.1f}  off/on per round "
              f"{', '.join(f'{x:.2f}' for x in ratios)}  median {statistics.median(ratios):.2f}")
    print("worker processes started, reuse on / off per round: "
          + ", ".join(f"{p[True]['workers']} / {p[False]['workers']}" for p in rows))


if __name__ == "__main__":
    main()
