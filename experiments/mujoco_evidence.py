"""Issue 12: the MuJoCo evidence, phase by phase, resumable.

For one task (default Hopper-v5) at a budget of B env steps per run, with ``--seed 0`` for every
arm (so every arm's test seeds are the same five, 2_000_000 … 2_000_004):

1. ``search-ppo_knobs``: ``pgu search --space ppo_knobs`` (PPO's knobs only), N trials, then
   top-3 on 3 selection seeds, then the winner on 5 test seeds;
2. ``search-full``: the same with ``--space full`` (form × scale × α plus the same knobs);
3. ``ppo-preset``: ``pgu evaluate --preset ppo`` (the task's CleanRL-like recipe) on the test seeds;
4. ``rlzoo-pgu``: ``pgu evaluate`` with RL Zoo's tuned PPO settings translated to PGU keys
   (``experiments/rlzoo.py``: ``translate``);
5. ``rlzoo``: RL Zoo itself (stable-baselines3 + rl-zoo3) with those settings, scored by the same
   protocol, one JSON per test seed;
6. ``report``: ``experiments/mujoco_report.py`` writes ``docs/mujoco-results.md`` and its plots,
   and ``pgu export`` writes ``hyperparams/<task>.yml``.

Every phase is skipped when its registry rows (or JSON files) are complete, and continued with
``--resume`` when they are partial, so the runner can be killed and restarted at any time and
the work can span sessions. Each finished phase is recorded in
``docs/results/mujoco/<task>_phases.json`` (wall time, exit status).

    python experiments/mujoco_evidence.py --task hopper            # all phases
    python experiments/mujoco_evidence.py --task hopper --only search-full
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments"))
ZOO = {"hopper": ("Hopper-v5", "Hopper-v4"), "halfcheetah": ("HalfCheetah-v5", "HalfCheetah-v4")}
PHASES = ("search-ppo_knobs", "search-full", "ppo-preset", "rlzoo-pgu", "rlzoo", "report")


def _pgu() -> list[str]:
    return [sys.executable, "-m", "pgu_rllib.cli"]


def _status(registry: str, name: str) -> str | None:
    from pgu_rllib.service.registry import Registry

    reg = Registry(registry)
    if reg.schema() is None or not reg.search_exists(name):
        return None
    return reg.get_search(name).status.value


def _run(cmd: list[str], log: pathlib.Path) -> int:
    print(f"[evidence] $ {' '.join(cmd)}  (log: {log})", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT).returncode


def _registry_phase(args, name: str, cmd: list[str], log: pathlib.Path) -> int:
    status = _status(args.registry, name)
    if status == "complete":
        print(f"[evidence] {name}: complete in the registry, skipped", flush=True)
        return 0
    return _run(cmd + ["--name", name, "--registry", args.registry, "--storage-path", args.storage_path,
                       *(["--resume"] if status is not None else [])], log)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="hopper", choices=sorted(ZOO))
    ap.add_argument("--env-steps", type=int, default=300_000)
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--max-concurrent", type=int, default=2)
    ap.add_argument("--registry", default="sqlite:///docs/results/mujoco.db")
    ap.add_argument("--storage-path", default="pgu_results/mujoco/tune")
    ap.add_argument("--out", default="docs/results/mujoco")
    ap.add_argument("--only", choices=PHASES, action="append", help="run only these phases (repeatable)")
    ap.add_argument("--full-space", default="full",
                    help="the family space of the search-full phase: a shipped name or a YAML path (the Hopper "
                         "evidence uses docs/results/mujoco/full_1d8ff7a.yaml: form × scale × α + knobs, "
                         "without the later step axis)")
    args = ap.parse_args()

    out = ROOT / args.out
    status_file = out / f"{args.task}_phases.json"
    phases = json.loads(status_file.read_text()) if status_file.exists() else {}
    common = ["--task", args.task, "--env-steps", str(args.env_steps), "--seed", "0",
              "--max-concurrent", str(args.max_concurrent)]
    env_id, zoo_key = ZOO[args.task]

    def phase(key: str):
        log = out / "logs" / f"{args.task}_{key}.log"
        if key.startswith("search-"):
            space = key.removeprefix("search-")
            return _registry_phase(args, f"{args.task}-{space}-s0",
                                   [*_pgu(), "search", *common, "--space", args.full_space if space == "full" else space,
                                    "--trials", str(args.trials),
                                    "--top-k", "3", "--selection-seeds", "3", "--test-seeds", "5", "--json"], log)
        if key == "ppo-preset":
            return _registry_phase(args, f"{args.task}-ppo-preset-s0",
                                   [*_pgu(), "evaluate", *common, "--preset", "ppo", "--test-seeds", "5"], log)
        if key == "rlzoo-pgu":
            from rlzoo import translate, zoo_entry

            sets = [f"--set={k}={json.dumps(v)}" for k, v in translate(zoo_entry(zoo_key), env_id).items()]
            return _registry_phase(args, f"{args.task}-rlzoo-pgu-s0",
                                   [*_pgu(), "evaluate", *common, "--preset", "ppo", "--test-seeds", "5", *sets], log)
        if key == "rlzoo":
            from pgu_rllib.service.search import test_seed_list

            seeds = test_seed_list(0, 5)
            procs, rc = [], 0
            for i, seed in enumerate(seeds):  # max_concurrent at a time, one core each
                procs.append(subprocess.Popen(
                    [sys.executable, "experiments/rlzoo.py", "--env", env_id, "--zoo-entry", zoo_key, "--seed",
                     str(seed), "--env-steps", str(args.env_steps), "--out", str(out)], cwd=ROOT,
                    stdout=open(log, "a"), stderr=subprocess.STDOUT))
                if len(procs) == args.max_concurrent or i == len(seeds) - 1:
                    rc = max([rc] + [p.wait() for p in procs])
                    procs = []
            return rc
        if key == "report":
            rc = _run([sys.executable, "experiments/mujoco_report.py", "--task", args.task, "--registry", args.registry,
                       "--out", args.out], log)
            export = subprocess.run([*_pgu(), "export", "--task", args.task, "--registry", args.registry,
                                     "--out", f"hyperparams/{args.task}.yml"], cwd=ROOT)
            return rc or export.returncode
        raise ValueError(key)

    for key in args.only or PHASES:
        t0 = time.time()
        rc = phase(key)
        phases[key] = {"rc": rc, "wall_s": round(time.time() - t0, 1), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
        out.mkdir(parents=True, exist_ok=True)
        status_file.write_text(json.dumps(phases, indent=1))
        print(f"[evidence] phase {key} finished: rc {rc}, {phases[key]['wall_s']} s", flush=True)
        if rc != 0:
            sys.exit(f"[evidence] phase {key} failed (rc {rc}); see {out / 'logs'}; re-run to resume")


if __name__ == "__main__":
    main()
