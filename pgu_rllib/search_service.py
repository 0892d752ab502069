"""``search``, ``best``, ``export``: the search service's public API.

``search`` runs a Ray Tune ``Tuner`` over ``PGU`` with ``OptunaSearch`` (seeded TPE,
define-by-run from the YAML space; its study in the registry's database), ASHA on env
steps and a concurrency limit. Then it re-trains the top-k configurations at the full
budget on held-out test seeds (disjoint from the tuning seeds) and stores the winner, chosen
on held-out scores, as the best row of (task, space).

Seeds: trial ``i`` tunes with seed ``1000·S + i``; held-out runs use
``1_000_000 + 1000·S + j`` (``S`` = ``--seed``), so the two sets never meet.

Example::

    >>> from pgu_rllib import search, best
    >>> summary = search("bandit", "paper", trials=6, env_steps=3000, heldout_seeds=2)  # doctest: +SKIP
    >>> best("bandit", "paper")["heldout_mean"]                                     # doctest: +SKIP
    0.75
"""
from __future__ import annotations

import importlib.metadata as md
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
import time

from pgu_rllib.registry import DEFAULT_URL, Registry
from pgu_rllib.spaces import load_space
from pgu_rllib.tasks import get_task

DEFAULT_STORAGE = "pgu_results/tune"
HELDOUT_SEED_BASE = 1_000_000


def versions() -> dict:
    out = {}
    for dist in ("pgu-rllib", "ray", "torch", "gymnasium", "mujoco", "optuna"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    return out


def git_commit() -> str | None:
    """The commit of the source tree, when it is a git checkout (or $PGU_GIT_COMMIT)."""
    if os.environ.get("PGU_GIT_COMMIT"):
        return os.environ["PGU_GIT_COMMIT"]
    try:
        here = pathlib.Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _space_keys(params: dict) -> set[str]:
    keys = set()
    for key, spec in params.items():
        keys.add(key)
        for sub in spec.get("when", {}).values():
            keys |= _space_keys(sub)
    return keys


def search(task: str, space: str = "paper", trials: int = 12, *, max_concurrent: int | None = None,
           env_steps: int | None = None, seed: int = 0, registry: str = DEFAULT_URL,
           storage_path: str = DEFAULT_STORAGE, name: str | None = None, resume: bool = False,
           gpus_per_trial: float = 0.0, top_k: int = 3, heldout_seeds: int = 5, progress=_log) -> dict:
    """Search ``space`` on ``task`` and store the held-out winner in the registry; return a summary.

    Everything is validated before anything is written: a bad task, space, registry URL or
    count raises ``ValueError`` with one line naming it.
    """
    import ray

    t0 = time.time()
    t = get_task(task)
    sp = load_space(space)
    for label, value, low in (("--trials", trials, 1), ("--top-k", top_k, 1), ("--heldout-seeds", heldout_seeds, 1)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{label}={value!r} is out of range; allowed: an integer >= {low}")
    if not (0.0 <= gpus_per_trial):
        raise ValueError(f"--gpus-per-trial={gpus_per_trial} is out of range; allowed: >= 0")
    budget = int(env_steps or t.budget)
    name = name or f"{task}-{sp.name}-s{seed}"
    reg = Registry(registry)
    reg.check_reachable()
    reg = Registry(_absolute_sqlite(registry))  # a relative SQLite path means the cwd of now
    if os.environ.get("RAY_ADDRESS") and (not pathlib.Path(storage_path).is_absolute() or registry == DEFAULT_URL):
        progress("[pgu search] warning: inside a Ray job the working directory is a temporary copy that Ray "
                 "deletes; pass --storage-path and --registry on shared storage to keep the results")
    exp_dir = pathlib.Path(storage_path).resolve() / name
    existing = reg.get_search(name) if _db_exists(reg) else None
    if resume and existing is None and not exp_dir.exists():
        raise ValueError(f"nothing to resume: no search {name!r} in {reg.safe_url} or {exp_dir}")
    if not resume and (existing is not None or exp_dir.exists()):
        raise ValueError(f"search {name!r} already exists; pass --resume to continue it or choose a new --name")

    from pgu_rllib._private.ray_session import ensure_ray
    from pgu_rllib.training import build_config

    base = build_config(task, sp.base_preset, {}, seed=0, budget=budget)
    if gpus_per_trial:
        base = base.learners(num_gpus_per_learner=gpus_per_trial)
    base_dict = base.to_dict()
    ensure_ray()
    cpus = int(ray.cluster_resources().get("CPU", 1))
    max_concurrent = max_concurrent or max(1, min(trials, cpus))

    reg.connect()
    settings = {"trials": trials, "env_steps": budget, "seed": seed, "max_concurrent": max_concurrent,
                "top_k": top_k, "heldout_seeds": heldout_seeds, "gpus_per_trial": gpus_per_trial,
                "base_preset": sp.base_preset}
    row = reg.start_search(name=name, task=task, space=sp.name, space_yaml=sp.source, settings=settings,
                           storage_path=str(exp_dir), versions=versions(), git_commit=git_commit(),
                           resume=resume)
    keys = _space_keys(sp.params) | {"seed"}
    progress(f"[pgu search] {name}: task {task}, space {sp.name}, {trials} trials x {budget:,} env steps, "
             f"{max_concurrent} at a time, registry {reg.safe_url}, results {exp_dir}")

    try:
        results = _run_tuning(name, exp_dir, trials, budget, seed, max_concurrent, base_dict, sp, reg, row.id,
                              keys, resume, progress)
        finished = len(reg.trials(row.id))
        if finished < trials or (results is not None and results.num_terminated + results.num_errors < len(results)):
            raise KeyboardInterrupt  # Ctrl-C: Tune stopped early and saved a resumable state
        candidates = _candidates(reg.trials(row.id), top_k, budget)
        if not candidates:
            raise RuntimeError(f"search {name!r}: no trial finished with a score; see {exp_dir}")
        evaluations = _run_heldout(name, exp_dir, candidates, base_dict, budget, seed, heldout_seeds,
                                   max_concurrent, gpus_per_trial, reg, row.id, resume, progress)
    except KeyboardInterrupt:
        reg.set_status(name, "interrupted")
        progress(f"[pgu search] {name}: interrupted; completed trials are kept. Continue with "
                 f"`pgu search --task {task} --space {space} --name {name} --resume ...`")
        return {"name": name, "status": "interrupted", "task": task, "space": sp.name}
    except Exception:
        reg.set_status(name, "failed")
        raise

    summary = _choose_best(reg, row, t, sp, name, candidates, evaluations, budget, seed, trials, top_k)
    reg.set_status(name, "complete")
    summary.update({"status": "complete", "registry": reg.safe_url, "storage_path": str(exp_dir),
                    "wall_s": time.time() - t0})
    return summary


def _db_exists(reg: Registry) -> bool:
    import sqlalchemy as sa

    try:
        return sa.inspect(reg.engine).has_table("pgu_searches")
    except sa.exc.SQLAlchemyError:
        return False


def _run_tuning(name, exp_dir, trials, budget, seed, max_concurrent, base_dict, sp, reg, search_id, keys,
                resume, progress):
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from pgu_rllib._private.tune_hooks import (OBJECTIVE, STEPS, BudgetOrFinished, RecordTrials,
                                               ResumableOptunaSearch, TrialSpace, short_dirname)
    from pgu_rllib.algorithm import PGU

    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")  # save Tune's state every loop: resume loses least

    if resume and tune.Tuner.can_restore(str(exp_dir)):
        progress(f"[pgu search] {name}: resuming from {exp_dir}")
        tuner = tune.Tuner.restore(str(exp_dir), trainable=PGU, resume_unfinished=True, resume_errored=True,
                                   param_space=base_dict)  # Tune stored its objects as placeholders
        return tuner.fit()
    if resume:  # killed before Tune saved its state: run only the trials the registry lacks
        finished = len(reg.trials(search_id))
        trials = trials - finished
        progress(f"[pgu search] {name}: no Tune state to restore; {finished} trials are in the registry, "
                 f"running the remaining {trials}")
        if trials <= 0:
            return None
        import shutil

        shutil.rmtree(exp_dir, ignore_errors=True)
    storage = optuna.storages.RDBStorage(url=_absolute_sqlite(reg.url))
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(3, trials // 3)))
    searcher = ResumableOptunaSearch(space=TrialSpace(sp, 1000 * seed), metric=OBJECTIVE, mode="max",
                                     sampler=sampler, study_name=name, storage=storage)
    # First rung: a ninth of the budget, but never before 3 training iterations (one iteration's
    # objective is noise: on the bandit it is the initial policy's score for every trial).
    grace = max(budget // 9, 3 * int(base_dict.get("_train_batch_size_per_learner") or 1))
    scheduler = ASHAScheduler(time_attr=STEPS, max_t=budget, grace_period=min(grace, budget), reduction_factor=3)
    tuner = tune.Tuner(
        PGU, param_space=base_dict,
        tune_config=tune.TuneConfig(metric=OBJECTIVE, mode="max", search_alg=searcher, scheduler=scheduler,
                                    num_samples=trials, max_concurrent_trials=max_concurrent,
                                    trial_dirname_creator=short_dirname),
        run_config=tune.RunConfig(
            name=name, storage_path=str(exp_dir.parent), stop=BudgetOrFinished(budget, reg.url, search_id),
            verbose=0,
            callbacks=[RecordTrials(reg.url, search_id, keys, trials, budget, f"search {name}")],
            failure_config=tune.FailureConfig(max_failures=0),
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False)))
    return tuner.fit()


def _absolute_sqlite(url: str) -> str:
    """Optuna and Tune workers may run elsewhere: make a relative SQLite path absolute."""
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return parsed.set(database=str(pathlib.Path(parsed.database).resolve())).render_as_string(hide_password=False)
    return url


def _candidates(trials: list[dict], top_k: int, budget: int) -> list[dict]:
    """Top-k distinct configurations: trials that ran the full budget first (by score), then
    trials ASHA stopped early (by score), since an early score is not comparable to a full one."""
    scored = [t for t in trials if t["score"] is not None and math.isfinite(t["score"]) and t["status"] != "error"]
    pool = sorted(scored, key=lambda t: (t["env_steps"] < budget, -t["score"]))
    out, seen = [], set()
    for t in pool:
        params = {k: v for k, v in t["params"].items() if k != "seed"}
        key = json.dumps(params, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append({"params": params, "tuning_score": t["score"], "tune_trial_id": t["tune_trial_id"]})
        if len(out) == top_k:
            break
    return out


def heldout_seed_list(seed: int, n: int) -> list[int]:
    return [HELDOUT_SEED_BASE + 1000 * seed + j for j in range(n)]


def _run_heldout(name, exp_dir, candidates, base_dict, budget, seed, n_seeds, max_concurrent, gpus, reg,
                 search_id, resume, progress):
    from ray import tune

    from pgu_rllib._private.tune_hooks import heldout_trainable, short_dirname

    seeds = heldout_seed_list(seed, n_seeds)
    done = {(e["candidate"], e["seed"]) for e in reg.evaluations(search_id)}
    jobs = [(i, s) for i in range(len(candidates)) for s in seeds if (i, s) not in done]
    progress(f"[pgu search] {name}: held-out re-evaluation of the top {len(candidates)} on seeds {seeds} "
             f"({len(jobs)} runs of {budget:,} env steps)")
    if jobs:
        configs = [{"candidate": i, "seed": s, "pgu_budget": budget,
                    "pgu_config": {**base_dict, **candidates[i]["params"], "seed": s}} for i, s in jobs]
        trainable = tune.with_resources(heldout_trainable, {"cpu": 1, "gpu": gpus})
        tuner = tune.Tuner(
            trainable, param_space={"job": tune.grid_search(configs)},
            tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, trial_dirname_creator=short_dirname),
            run_config=tune.RunConfig(name=f"{name}-heldout-{int(time.time())}", storage_path=str(exp_dir.parent),
                                      verbose=0, failure_config=tune.FailureConfig(max_failures=1)))
        grid = tuner.fit()
        rows = []
        for result in grid:
            job = result.config["job"]
            if result.error is None and "score" in (result.metrics or {}):
                rows.append({"candidate": job["candidate"], "seed": job["seed"],
                             "params": candidates[job["candidate"]]["params"], "score": float(result.metrics["score"]),
                             "node_id": result.metrics.get("node_id")})
        reg.record_evaluations(search_id, rows)
        if len(rows) < len(jobs):
            errors = [r.error for r in grid if r.error is not None]
            if errors:
                raise RuntimeError(f"{len(errors)} held-out run(s) failed: {str(errors[0]).splitlines()[0]}")
            raise KeyboardInterrupt  # stopped part-way: the finished runs are stored, --resume does the rest
    return reg.evaluations(search_id)


def _choose_best(reg, row, task, sp, name, candidates, evaluations, budget, seed, trials, top_k) -> dict:
    from pgu_rllib.training import build_config, config_summary

    table = []
    for i, cand in enumerate(candidates):
        scores = [e["score"] for e in evaluations if e["candidate"] == i]
        table.append({**cand, "rank": i, "heldout_scores": scores, "heldout_mean": statistics.mean(scores),
                      "heldout_std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                      "heldout_median": statistics.median(scores)})
    winner = max(table, key=lambda c: c["heldout_mean"])
    seeds = sorted({e["seed"] for e in evaluations})
    protocol = {"budget_env_steps": budget, "evaluation": task.describe().split("eval: ")[-1],
                "eval_episodes": task.eval_episodes, "deterministic": task.eval_deterministic,
                "tuning_seeds": [1000 * seed + i for i in range(trials)], "test_seeds": seeds,
                "top_k": top_k, "trials": trials, "selection": "highest held-out mean among the top-k by tuning score"}
    config = config_summary(build_config(task.name, sp.base_preset, winner["params"], budget=budget))
    current = reg.best(task.name, sp.name)
    replaced = current is None or current["search_name"] == name or winner["heldout_mean"] >= current["heldout_mean"]
    if replaced:
        reg.put_best(task=task.name, space=sp.name, search_name=name, preset=sp.base_preset,
                     params=winner["params"], config=config, tuning_score=winner["tuning_score"],
                     heldout_mean=winner["heldout_mean"], heldout_std=winner["heldout_std"],
                     heldout_median=winner["heldout_median"], heldout_scores=winner["heldout_scores"],
                     protocol=protocol, versions=versions(), git_commit=git_commit())
    return {"name": name, "task": task.name, "space": sp.name, "trials": trials, "candidates": table,
            "best": {"params": winner["params"], "config": config, "tuning_score": winner["tuning_score"],
                     "heldout_mean": winner["heldout_mean"], "heldout_std": winner["heldout_std"],
                     "heldout_median": winner["heldout_median"], "heldout_scores": winner["heldout_scores"]},
            "registry_updated": replaced, "protocol": protocol}


def open_existing(registry: str) -> Registry | None:
    """The registry for reading, or None when it holds no pgu tables yet. Reading writes nothing."""
    reg = Registry(registry)
    reg.check_reachable()
    return reg if _db_exists(reg) else None


def best(task: str, space: str | None = None, registry: str = DEFAULT_URL) -> dict | None:
    """The best stored configuration for ``task`` (and ``space``), or None.

    Example::

        >>> best("bandit", registry="sqlite://") is None
        True
    """
    get_task(task)
    reg = open_existing(registry)
    return reg.best(task, space) if reg else None


def export(task: str, registry: str = DEFAULT_URL, fmt: str = "yaml") -> str:
    """All best rows of ``task`` as one YAML document a person can read and commit.

    Example::

        >>> print(export("bandit", registry="sqlite://"))  # doctest: +ELLIPSIS
        # pgu-rllib best configurations ...
    """
    import yaml

    if fmt != "yaml":
        raise ValueError(f"--format {fmt!r} is not supported; allowed: yaml")
    get_task(task)
    reg = open_existing(registry)
    rows = reg.best_rows(task) if reg else []
    doc = {task: {r["space"]: {
        "preset": r["preset"], "overrides": r["params"], "config": r["config"],
        "heldout": {"mean": r["heldout_mean"], "std": r["heldout_std"], "median": r["heldout_median"],
                    "scores": r["heldout_scores"]},
        "tuning_score": r["tuning_score"], "protocol": r["protocol"], "search": r["search_name"],
        "versions": r["versions"], "git_commit": r["git_commit"], "updated_at": r["updated_at"]} for r in rows}}
    header = (f"# pgu-rllib best configurations for task {task!r} (one entry per search space).\n"
              f"# Train one: pgu train --task {task} --from-best [--space SPACE]\n")
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
