"""Wall time of a small search with Tune's actor reuse on (the default) and off (``PGU_REUSE_ACTORS=0``),
side by side: each round runs the same seeded search once each way, in alternating order, as fresh
``pgu search`` processes on the embedded default (a local Ray, a SQLite registry in a temporary folder).

Reported per phase from the registry's timings (tuning, selection, test: wall seconds) and for the whole
process, with the ratio reuse-off / reuse-on per round and its median. A trial that ran the full budget in
both arms (same seed, same configuration) must score the same whichever worker ran it
(``tests/test_actor_reuse.py``); the script checks those and says how many there were. Which trials ASHA
stops early depends on the order results arrive in (its rungs are asynchronous), so the stopped trials, and
with them the winner, may differ between any two runs, with or without reuse.

    python benchmarks/actor_reuse.py --rounds 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from pgu_rllib.service.registry import Registry

SEARCH = ["--task", "bandit", "--space", "paper", "--env-steps", "1024", "--max-concurrent", "2",
          "--top-k", "2", "--selection-seeds", "2", "--test-seeds", "2", "--seed", "3", "--name", "bench"]


def one(reuse: bool, trials: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="pgu-reuse-") as cwd:
        env = {**os.environ, "PGU_REUSE_ACTORS": "1" if reuse else "0"}
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "pgu_rllib.cli", "search", *SEARCH, "--trials", str(trials)],
                             cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
        wall = time.perf_counter() - t0
        if out.returncode != 0:
            raise SystemExit(f"search failed (reuse={reuse}): {out.stderr[-2000:]}")
        reg = Registry(f"sqlite:///{cwd}/pgu_results/registry.db")
        row = reg.get_search("bench")
        timings = {phase: round(t["wall_s"], 1) for phase, t in row.timings.items()}
        trial_scores = {(t["params"]["seed"], json.dumps(t["params"], sort_keys=True)): t["score"]
                        for t in reg.trials(row.id) if t["status"] == "complete"}
        best = reg.best("bandit", "paper")
        return {"reuse": reuse, "process_s": round(wall, 1), **timings, "trial_scores": trial_scores,
                "test_scores": best["test_scores"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--trials", type=int, default=8)
    args = ap.parse_args()
    print(f"# benchmarks/actor_reuse.py {time.strftime('%Y-%m-%d %H:%M')} rounds={args.rounds} trials={args.trials} "
          f"cpus={os.cpu_count()}", flush=True)
    rows = []
    for r in range(args.rounds):
        order = (True, False) if r % 2 == 0 else (False, True)
        pair = {reuse: one(reuse, args.trials) for reuse in order}
        rows.append(pair)
        for reuse in order:
            row = pair[reuse]
            print(json.dumps({k: v for k, v in row.items() if not k.endswith("scores")}), flush=True)
    both = [(p[True]["trial_scores"][k], p[False]["trial_scores"][k]) for p in rows
            for k in p[True]["trial_scores"].keys() & p[False]["trial_scores"].keys()]
    print(f"trials that ran the full budget in both arms: {len(both)}; identical scores: "
          f"{sum(a == b for a, b in both)} of {len(both)}")
    for key in ("tuning", "selection", "test", "process_s"):
        ratios = [p[False][key] / p[True][key] for p in rows if p[True].get(key)]
        on = statistics.median(p[True][key] for p in rows)
        off = statistics.median(p[False][key] for p in rows)
        print(f"{key:10s} reuse on {on:7.1f} s  off {off:7.1f} s  off/on per round "
              f"{', '.join(f'{x:.2f}' for x in ratios)}  median {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
