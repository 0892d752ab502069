"""Issue 27: the MuJoCo evidence on three tasks, at equal tuning compute, phase by phase, resumable.

For each task (Hopper-v5, HalfCheetah-v5, Walker2d-v5) at a budget of B env steps per run, every arm
uses ``--seed 0``, so every arm is scored on the same five test seeds 2,000,000 … 2,000,004 by the one
evaluator (deterministic, env seeds 10000+i, normalisation frozen, 10 complete episodes, raw returns):

* ``search-ppo_knobs``, ``search-full`` (and ``search-drift``): ``pgu search`` with the same
  ``--tuning-env-steps`` (12·B by default) and the same ``--objective``; each takes its top 3 to 3
  selection seeds and its winner to the 5 test seeds;
* ``preset-ppo``, ``preset-dpo``: ``pgu evaluate --preset ppo|dpo`` (DPO at the paper's α = 2, β = 0.6);
* ``rlzoo-pgu``: RL Zoo's tuned settings (rl-zoo3's ``<Env>-v4`` entry of ``hyperparams/ppo.yml``)
  translated to pgu keys (``experiments/rlzoo.py``);
* ``rlzoo``: RL Zoo itself (stable-baselines3 + rl-zoo3, ``.[baselines]``), scored by the same protocol;
* ``transfer-full``, ``transfer-ppo_knobs`` (HalfCheetah, Walker2d): the Hopper winners, unchanged,
  on this task's test seeds (the DPO paper's transfer question).

Then ``report`` (``experiments/mujoco_report.py``) writes ``docs/mujoco-results.md``, its plots, the
aggregate over tasks with rliable, copies the winners' stored policies to ``docs/results/mujoco/policies``,
and ``pgu export`` writes ``hyperparams/<task>.yml``.

Every phase is skipped when its registry rows (or JSON files) are complete, and continued with
``--resume`` when they are partial, so the runner can be killed and restarted at any time; each
finished phase is recorded in ``docs/results/mujoco/<task>_phases.json`` (wall time, exit status).
With ``--commit``, the runner commits the registry, the phase record and the RL Zoo JSONs after
every finished phase.

    python experiments/mujoco_evidence.py                         # every task, every phase, in order
    python experiments/mujoco_evidence.py --task hopper --only search-full

On a cluster (shared storage at /shared):

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python experiments/mujoco_evidence.py \\
        --registry sqlite:////shared/pgu/mujoco.db --storage-path /shared/pgu/tune --out /shared/pgu/mujoco \\
        --max-concurrent 32
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
TASKS = {"hopper": ("Hopper-v5", "Hopper-v4"), "halfcheetah": ("HalfCheetah-v5", "HalfCheetah-v4"),
         "walker2d": ("Walker2d-v5", "Walker2d-v4")}
CORE = ("search-ppo_knobs", "search-full", "preset-ppo", "preset-dpo", "rlzoo-pgu", "rlzoo")
TRANSFER = ("transfer-full", "transfer-ppo_knobs")
OPTIONAL = ("search-drift",)
SOURCE = "hopper"  # the task whose winners transfer


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


def _registry_phase(args, name: str, cmd: list[str], log: pathlib.Path) -> int | None:
    """Run (or resume) one registry phase; None when the registry holds it complete (nothing ran)."""
    status = _status(args.registry, name)
    if status == "complete":
        print(f"[evidence] {name}: complete in the registry, skipped", flush=True)
        return None
    return _run(cmd + ["--name", name, "--registry", args.registry, "--storage-path", args.storage_path,
                       *(["--resume"] if status is not None else [])], log)


def transfer_sets(registry: str, space: str) -> tuple[str, list[str]]:
    """The Hopper winner of ``space`` as (preset, ``--set`` flags), unchanged."""
    from pgu_rllib.service.registry import Registry

    row = next(r for r in Registry(registry).best_rows(SOURCE, space) if r["search_name"] == f"{SOURCE}-{space}-s0")
    return row["preset"], [f"--set={k}={json.dumps(v)}" for k, v in row["params"].items()]


def phase(args, task: str, key: str) -> int | None:
    """Run one phase; its exit status, or None when its results are stored already (nothing ran)."""
    env_id, zoo_key = TASKS[task]
    out = ROOT / args.out
    log = out / "logs" / f"{task}_{key}.log"
    common = ["--task", task, "--env-steps", str(args.env_steps), "--seed", "0", "--max-concurrent",
              str(args.max_concurrent)]
    tests = ["--test-seeds", str(args.test_seeds)]
    if key.startswith("search-"):
        space = key.removeprefix("search-")
        return _registry_phase(args, f"{task}-{space}-s0", [
            *_pgu(), "search", *common, "--space", space, "--trials", str(args.max_trials),
            "--tuning-env-steps", str(args.tuning_env_steps or 12 * args.env_steps), "--objective", args.objective,
            "--top-k", "3", "--selection-seeds", "3", *tests, "--json"], log)
    if key.startswith("preset-"):
        preset = key.removeprefix("preset-")
        return _registry_phase(args, f"{task}-{preset}-preset-s0",
                               [*_pgu(), "evaluate", *common, "--preset", preset, *tests], log)
    if key == "rlzoo-pgu":
        from rlzoo import translate, zoo_entry

        sets = [f"--set={k}={json.dumps(v)}" for k, v in translate(zoo_entry(zoo_key), env_id).items()]
        return _registry_phase(args, f"{task}-rlzoo-pgu-s0",
                               [*_pgu(), "evaluate", *common, "--preset", "ppo", *tests, *sets], log)
    if key.startswith("transfer-"):
        space = key.removeprefix("transfer-")
        preset, sets = transfer_sets(args.registry, space)
        return _registry_phase(args, f"{task}-transfer-{SOURCE}-{space}-s0",
                               [*_pgu(), "evaluate", *common, "--preset", preset, *tests, *sets], log)
    if key == "rlzoo":
        from pgu_rllib.service.search import test_seed_list

        procs, rc = [], 0
        seeds = [s for s in test_seed_list(0, args.test_seeds) if not (out / f"rlzoo_{env_id}_seed{s}.json").exists()]
        if not seeds:
            print(f"[evidence] {task} rlzoo: every seed's result is stored, skipped", flush=True)
            return None
        for i, seed in enumerate(seeds):  # max_concurrent at a time, one core each
            procs.append(subprocess.Popen(
                [sys.executable, "experiments/rlzoo.py", "--env", env_id, "--zoo-entry", zoo_key, "--seed",
                 str(seed), "--env-steps", str(args.env_steps), "--out", str(out)], cwd=ROOT,
                stdout=open(log, "a"), stderr=subprocess.STDOUT))
            if len(procs) == args.max_concurrent or i == len(seeds) - 1:
                rc = max([rc] + [p.wait() for p in procs])
                procs = []
        return rc
    raise ValueError(key)


def report(args) -> int:
    rc = _run([sys.executable, "experiments/mujoco_report.py", "--registry", args.registry, "--out", args.out],
              ROOT / args.out / "logs" / "report.log")
    for task in TASKS:  # the tasks with a finished search (``pgu export`` refuses a task without one)
        if any(_status(args.registry, f"{task}-{phase.removeprefix('search-')}-s0") == "complete"
               for phase in (*CORE, *OPTIONAL) if phase.startswith("search-")):
            rc = rc or subprocess.run([*_pgu(), "export", "--task", task, "--registry", args.registry,
                                       "--out", f"hyperparams/{task}.yml"], cwd=ROOT).returncode
    return rc


def commit(args, message: str, *extra: str) -> None:
    """Commit the results (the registry file, the output folder, ``extra``) and nothing else staged."""
    paths = [p for p in (args.registry.removeprefix("sqlite:///"), args.out, *extra) if (ROOT / p).exists()]
    subprocess.run(["git", "add", "-f", *paths], cwd=ROOT, check=False)
    subprocess.run(["git", "commit", "-q", "-m", message, "--", *paths], cwd=ROOT, check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=sorted(TASKS), action="append", help="these tasks only (repeatable)")
    ap.add_argument("--env-steps", type=int, default=300_000)
    ap.add_argument("--tuning-env-steps", type=int, help="per search (default 12 x --env-steps)")
    ap.add_argument("--objective", choices=["train", "eval"], default="train",
                    help="the tuning objective of every search (docs/objective.md chose the default)")
    ap.add_argument("--max-trials", type=int, default=200, help="a cap; --tuning-env-steps ends the tuning")
    ap.add_argument("--test-seeds", type=int, default=5)
    ap.add_argument("--max-concurrent", type=int, default=2)
    ap.add_argument("--registry", default="sqlite:///docs/results/mujoco.db")
    ap.add_argument("--storage-path", default="pgu_results/mujoco/tune")
    ap.add_argument("--out", default="docs/results/mujoco")
    ap.add_argument("--only", choices=(*CORE, *TRANSFER, *OPTIONAL, "report"), action="append",
                    help="run only these phases (repeatable)")
    ap.add_argument("--with-drift", action="store_true", help="also the drift.yaml search (after the rest)")
    ap.add_argument("--commit", action="store_true", help="git-commit the results after every finished phase")
    args = ap.parse_args()

    tasks = args.task or list(TASKS)
    plan = [(t, k) for t in tasks for k in CORE] + [(t, k) for t in tasks if t != SOURCE for k in TRANSFER]
    if args.with_drift:
        plan += [(t, k) for t in tasks for k in OPTIONAL]
    if args.only:
        plan = [(t, k) for t, k in plan if k in args.only]
    out = ROOT / args.out
    for task, key in plan:
        status_file = out / f"{task}_phases.json"
        phases = json.loads(status_file.read_text()) if status_file.exists() else {}
        t0 = time.time()
        rc = phase(args, task, key)
        if rc is None:  # complete already: keep the record of the run that did it
            continue
        phases[key] = {"rc": rc, "wall_s": round(time.time() - t0, 1), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
        out.mkdir(parents=True, exist_ok=True)
        status_file.write_text(json.dumps(phases, indent=1))
        print(f"[evidence] {task} {key} finished: rc {rc}, {phases[key]['wall_s']} s", flush=True)
        if rc != 0:
            sys.exit(f"[evidence] {task} {key} failed (rc {rc}); see {out / 'logs'}; re-run to resume")
        if args.commit:
            commit(args, f"MuJoCo evidence: {task} {key} finished")
    if not args.only or "report" in args.only:
        rc = report(args)
        if args.commit:
            commit(args, "MuJoCo evidence: report", "hyperparams", "docs/mujoco-results.md",
                   *(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("mujoco_*.png")))
        sys.exit(rc)


if __name__ == "__main__":
    main()
