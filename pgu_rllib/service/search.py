"""``search``, ``evaluate``, ``best``, ``export``: the search service's public API.

``search`` runs three phases on three disjoint seed sets (``S`` = ``seed``):

1. **tuning**: a Ray Tune ``Tuner`` over ``PGU``, driven by ``OptunaSearch`` (seeded TPE,
   define-by-run from the YAML space, its study in the registry's database), ASHA on env
   steps, a concurrency limit. Trial ``i`` trains with seed ``1000·S + i``;
2. **selection**: the top-k distinct configurations by tuning score are re-trained at the full
   budget on the selection seeds ``1_000_000 + 1000·S + j``; the winner is the highest mean;
3. **test**: only the winner is re-trained on the test seeds ``2_000_000 + 1000·S + j``. These
   scores are the ones reported (mean, std, median, IQM, bootstrap CI) and are never used for
   any choice.

The winner becomes the best row of (task, space) unless the stored one has a higher
*selection* mean. Every run's row is written as soon as it finishes, so an interrupted or
killed search loses no finished run; ``resume=True`` continues it.

``evaluate`` re-trains one fixed configuration (a preset plus overrides) on the test seeds
with the same protocol, for baselines.

Example::

    >>> from pgu_rllib import search, best
    >>> summary = search("bandit", "paper", trials=6, env_steps=3000)   # doctest: +SKIP
    >>> best("bandit", "paper")["test_mean"]                            # doctest: +SKIP
    0.74
"""
from __future__ import annotations

import dataclasses
import importlib.metadata as md
import json
import math
import os
import pathlib
import re
import subprocess
import sys
import time
from typing import Callable

from pgu_rllib.core.errors import (InvalidArgument, MissingResources, NothingStored, NothingToResume, SearchChanged,
                                   SearchExists, SearchFailed, SearchInterrupted)
from pgu_rllib.service._schedulers import MIN_WILCOXON_SEEDS, SEEDS, MultiSeedPGU, WilcoxonScheduler
from pgu_rllib.service.registry import (DEFAULT_URL, REGISTRY_ENV, Phase, Registry, SearchStatus, optuna_storage,
                                        protocol_key)
from pgu_rllib.service.lease import Lease
from pgu_rllib.service.readers import best, export, open_existing  # noqa: F401 (the public API's readers)
from pgu_rllib.service.seeds import SeedPlan, check_count, check_seed
from pgu_rllib.service.spaces import SearchSpace, load_space
from pgu_rllib.core.stats import summarize
from pgu_rllib.tasks import Task, get_task
from pgu_rllib.tasks.catalog import OBJECTIVES

DEFAULT_STORAGE = "pgu_results/tune"
FAILURE_RETRIES = 2  # re-runs of a trial or run whose process died
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def test_seed_list(seed: int, n: int) -> list[int]:
    """The test seeds of a search with ``--seed seed`` (``SeedPlan``); for the experiments' baselines."""
    return SeedPlan(seed).test(n)


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


def absolute_sqlite(url: str) -> str:
    """Optuna and Tune workers may run elsewhere: make a relative SQLite path absolute."""
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return parsed.set(database=str(pathlib.Path(parsed.database).resolve())).render_as_string(hide_password=False)
    return url


# -- validation (nothing is written before all of it passed) -----------------------------------

def _count(param: str, value, low: int = 1, high: int = 1000) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidArgument(param, value, f"an integer in [{low}, {high}]")
    return value


def default_name(task: str, what: str, seed: int) -> str:
    """``TASK-SPACE-sSEED``, with any character a name cannot hold (a space file called ``my space.yaml``)
    replaced by ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{task}-{what}-s{seed}").strip("-._")[:100]


def check_name(name: str) -> str:
    """A search name: letters, digits, ``. _ -``, 1–100 characters, not starting with ``.``, ``-``
    or ``_`` (it names a folder under the storage path and the Optuna study)."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidArgument("name", name, "1-100 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit")
    return name


PRUNERS = ("asha", "wilcoxon", "none")
SAMPLERS = ("tpe", "random", "cmaes", "gp")
SCHEDULERS = (None, "pbt", "pb2")


def _check_population(run, sp) -> None:
    if not sp.mutable:
        raise InvalidArgument("scheduler", run.scheduler, f"pbt or pb2 with a space that has a 'mutable' section "
                                                          f"({sp.name} has none)")
    if run.seeds_per_trial != 1 or run.pruner != "asha":
        raise InvalidArgument("scheduler", run.scheduler, "pbt or pb2 alone: it replaces the pruner, one seed a trial")
    if run.scheduler == "pb2" and any(isinstance(v, dict) for v in sp.mutable.values()):
        raise InvalidArgument("scheduler", run.scheduler, "pbt with a 'choice' among the mutable keys (pb2 needs ranges)")


def _choice(param: str, value, allowed: tuple) -> str:
    if value not in allowed:
        raise InvalidArgument(param, value, ", ".join(allowed))
    return value


def _budget(task: Task, env_steps) -> int:
    if env_steps is None:
        return task.budget
    return _count("env_steps", env_steps, 1, 10**12)


def _storage(storage_path) -> pathlib.Path:
    path = pathlib.Path(storage_path).expanduser().resolve()
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise InvalidArgument("storage_path", str(storage_path), "a directory (or a path that can become one)")
            break
    return path


def _gpus(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
        raise InvalidArgument("gpus_per_trial", value, "a finite number >= 0")
    return float(value)


# -- one search, as a value --------------------------------------------------------------------

@dataclasses.dataclass
class SearchRun:
    """Everything one search (or evaluation) needs, validated; the phases are functions of it."""

    name: str
    task: Task
    budget: int
    seed: int
    max_concurrent: int
    gpus_per_trial: float
    registry: Registry
    exp_dir: pathlib.Path
    base_config: dict
    progress: Callable = _log
    space: SearchSpace | None = None
    trials: int = 0
    seeds_per_trial: int = 1
    pruner: str = "asha"
    sampler: str = "tpe"
    scheduler: str | None = None  # "pbt" | "pb2": a population, the space's mutable keys changed in training
    top_k: int = 0
    n_selection: int = 0
    n_test: int = 0
    search_id: int | None = None

    objective: str = "train"  # the tuning objective of an episodic task: "train" or "eval"
    tuning_env_steps: int | None = None  # start trials until this many training env steps are spent

    label: str = ""  # the prefix of its progress lines

    def __post_init__(self):
        self.label = self.label or f"[pgu search {self.name}]"

    @property
    def seeds(self) -> SeedPlan:
        return SeedPlan(self.seed)


def _open_registry(registry: str) -> Registry:
    """The registry a search writes: reachable, not in memory (its trials run in other processes)."""
    reg = Registry(registry)
    if reg.in_memory:
        raise InvalidArgument("registry", reg.safe_url, "a database the trial processes can reach too (a SQLite "
                                                        "file or a server URL), not an in-memory one")
    reg.check_reachable()
    reg.check_not_newer()
    return Registry(absolute_sqlite(registry))  # a relative SQLite path means the cwd of now


def _check_new_or_resume(reg: Registry, name: str, exp_dir: pathlib.Path, resume: bool) -> None:
    existing = reg.search_exists(name)
    if resume and not existing:  # the registry is the source of truth (a forgotten --registry lands here)
        raise NothingToResume(name, reg.safe_url)
    if not resume and (existing or exp_dir.exists()):
        raise SearchExists(name)


RESOURCE_WAIT_ENV = "PGU_RESOURCE_WAIT_S"  # how long to wait for an autoscaler (default 120 s on a cluster)


def _largest_run(run: SearchRun) -> dict:
    """The base config with the space's largest value of every key that changes what a run asks for
    (``rllib.resources.RESOURCE_KEYS``), so that the check covers every trial the space can sample."""
    from pgu_rllib.rllib.resources import RESOURCE_KEYS

    config = dict(run.base_config)
    if run.space is not None:
        for key, values in run.space.values_of(RESOURCE_KEYS).items():
            numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if numbers:
                config[key] = max(numbers)
    return config


def _check_resources(run: SearchRun, started_locally: bool, progress) -> None:
    """Every run must fit what the cluster offers (``rllib.resources.need``: the main process, env
    runners, learners, GPUs), the space's largest sampled values included. On a local Ray nothing more
    can appear: refuse at once. On a cluster an autoscaler may add nodes: wait up to
    ``PGU_RESOURCE_WAIT_S`` (120 s), then refuse."""
    import ray

    from pgu_rllib.rllib.resources import check_fits, need

    config = _largest_run(run)
    if run.seeds_per_trial > 1 or run.gpus_per_trial:  # MultiSeedPGU and the phases' runs: tune.with_resources
        config["num_gpus_per_learner"] = run.gpus_per_trial
    wait = 0.0 if started_locally else float(os.environ.get(RESOURCE_WAIT_ENV, "120"))
    t0 = time.time()
    while True:
        have = {k: float(ray.cluster_resources().get(k, 0.0)) for k in ("CPU", "GPU")}
        try:
            check_fits(config, have)
            return
        except MissingResources as err:
            if time.time() - t0 >= wait:
                param, value = ((("gpus_per_trial", run.gpus_per_trial) if run.gpus_per_trial and
                                 err.param == "num_gpus_per_learner" else (err.param, err.value)))
                raise MissingResources(param, value, have, time.time() - t0, asks=need(config)) from None
        progress(f"{run.label} waiting for the cluster to offer what one run asks for (has {have})")
        time.sleep(min(10.0, wait))


def _start(run: SearchRun, *, space_name: str, space_yaml: str, settings: dict, resume: bool) -> Lease:
    """Check resources, then create (or reopen) the search's row holding its lease; returns the lease,
    kept alive until the caller releases it."""
    from pgu_rllib.rllib.ray_session import ensure_ray

    _check_resources(run, ensure_ray(), run.progress)  # before anything is written
    os.environ[REGISTRY_ENV] = run.registry.url
    run.registry.connect()
    lease = Lease(run.registry, run.name)
    row = run.registry.start_search(name=run.name, task=run.task.name, space=space_name, space_yaml=space_yaml,
                                    settings=settings, storage_path=str(run.exp_dir), versions=versions(),
                                    git_commit=git_commit(), resume=resume, lease=lease.claim)
    run.search_id = row.id
    return lease.keep_alive()


# Settings a resume must repeat exactly; ``trials`` may grow (``--resume --trials N`` runs more).
RESUME_MUST_MATCH = ("task", "env_kwargs", "space_yaml", "env_steps", "seed", "top_k", "selection_seeds", "test_seeds",
                     "seeds_per_trial", "objective", "pruner", "sampler", "scheduler", "tuning_env_steps",
                     "base_preset", "kind", "preset", "overrides")


def _check_resume(reg: Registry, name: str, task: str, space_yaml: str, settings: dict) -> None:
    """``--resume`` continues the stored search only: refuse (``SearchChanged``, nothing written) when any
    of ``RESUME_MUST_MATCH`` differs, naming each difference."""
    row = reg.get_search(name) if reg.schema() is not None and reg.search_exists(name) else None
    if row is None:
        return
    stored = {"task": row.task, "space_yaml": row.space_yaml, **row.settings}
    given = {"task": task, "space_yaml": space_yaml, **settings}
    diffs = []
    for key in RESUME_MUST_MATCH:
        before, now = stored.get(key), given.get(key)
        if before != now and not (key in ("objective",) and before is None and now == "train"):
            diffs.append("the space file's content differs" if key == "space_yaml" else f"{key} {before!r} -> {now!r}")
    if diffs:
        raise SearchChanged(name, diffs)


def _cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def search(task: str, space: str = "paper", trials: int = 12, *, max_concurrent: int | None = None,
           env_steps: int | None = None, seed: int = 0, registry: str = DEFAULT_URL,
           storage_path: str = DEFAULT_STORAGE, name: str | None = None, resume: bool = False,
           gpus_per_trial: float = 0.0, top_k: int = 3, selection_seeds: int = 3, test_seeds: int = 5,
           seeds_per_trial: int = 1, pruner: str = "asha", sampler: str = "tpe", scheduler: str | None = None,
           objective: str = "train", tuning_env_steps: int | None = None, progress=_log) -> dict:
    """Search ``space`` on ``task``: tune, select on selection seeds, test the winner on test seeds;
    store the winner in the registry and return a summary (``status`` is ``complete`` or
    ``interrupted``).

    Everything is validated before anything is written: a bad argument raises a ``PGUError``
    (a ``ValueError``) naming it.

    ``objective`` (episodic tasks) is what tuning maximises: ``train``, the mean raw return of the
    last 10 training episodes, or ``eval``, the evaluator's score of the current policy every tenth
    of the budget (its env steps are counted apart). ``tuning_env_steps`` N makes tuning start trials
    until N training env steps are spent (ASHA-stopped trials counted), at most ``trials`` trials, so
    that two spaces can be compared at equal tuning compute.

    ``seeds_per_trial`` k > 1 trains every trial on the same k tuning seeds (1000·S + j) in one
    process and scores it by their mean; ``pruner`` is ``asha`` (successive halving on env steps),
    ``wilcoxon`` (a paired signed-rank test of the per-seed scores against the best finished trial,
    k ≥ 4) or ``none``; ``sampler`` is Optuna's ``tpe``, ``random``, ``cmaes`` or ``gp``.

    ``scheduler="pbt"`` or ``"pb2"`` (Ray Tune's) trains a population of ``trials`` drawn from the
    space (the sampler's first draws) to the full budget; every tenth of the budget (at least two
    iterations) the population waits for all its members (synchronous PBT, so a seeded search exploits at
    the same points whatever the machine's load), then the weak quarter copies a strong member and
    changes the space's ``mutable`` keys within their bounds. Each trial's
    schedule of those values (its lineage) is stored with it, and the selection and test runs, ``export``
    and ``pgu train --from-best`` replay the winner's schedule.
    """
    from pgu_rllib.tasks.training import build_config

    t = get_task(task)
    sp = load_space(space)
    name = check_name(name if name is not None else default_name(t.name, sp.name, check_seed(seed)))
    run = SearchRun(
        name=name, task=t, budget=_budget(t, env_steps), seed=check_seed(seed),
        max_concurrent=0 if max_concurrent is None else _count("max_concurrent", max_concurrent),
        gpus_per_trial=_gpus(gpus_per_trial), registry=_open_registry(registry),
        exp_dir=_storage(storage_path) / name, base_config={}, progress=progress,
        space=sp, trials=check_count("trials", trials), top_k=check_count("top_k", top_k),
        seeds_per_trial=_count("seeds_per_trial", seeds_per_trial, 1, 20), pruner=_choice("pruner", pruner, PRUNERS),
        sampler=_choice("sampler", sampler, SAMPLERS), scheduler=_choice("scheduler", scheduler, SCHEDULERS),
        n_selection=check_count("selection_seeds", selection_seeds), n_test=check_count("test_seeds", test_seeds),
        objective=_objective(t, objective),
        tuning_env_steps=None if tuning_env_steps is None else _count("tuning_env_steps", tuning_env_steps, 1, 10**12))
    if run.scheduler:
        _check_population(run, sp)
        if run.tuning_env_steps is not None:
            raise InvalidArgument("tuning_env_steps", run.tuning_env_steps,
                                  "none with a population scheduler (its trials all run the full budget)")
    if run.pruner == "wilcoxon" and run.seeds_per_trial < MIN_WILCOXON_SEEDS:
        raise InvalidArgument("seeds_per_trial", run.seeds_per_trial,
                              f"an integer >= {MIN_WILCOXON_SEEDS} with pruner='wilcoxon' (its smallest p-value is 2^-k)")
    sp.check(t, run.budget)
    _check_new_or_resume(run.registry, run.name, run.exp_dir, resume)
    base = build_config(t, sp.base_preset, {"pgu_objective": run.objective}, seed=0, budget=run.budget)
    if run.gpus_per_trial:
        base = base.learners(num_gpus_per_learner=run.gpus_per_trial)
    run.base_config = base.to_dict()
    if os.environ.get("RAY_ADDRESS") and (not pathlib.Path(storage_path).is_absolute() or registry == DEFAULT_URL):
        progress(f"{run.label} warning: inside a Ray job the working directory is a temporary copy that Ray "
                 "deletes; pass --storage-path and --registry on shared storage to keep the results")

    settings = {"env_id": t.env_id, "env_kwargs": t.eval_env_kwargs,
                "trials": run.trials, "env_steps": run.budget, "seed": run.seed, "top_k": run.top_k,
                "selection_seeds": run.n_selection, "test_seeds": run.n_test, "seeds_per_trial": run.seeds_per_trial,
                "pruner": run.pruner, "sampler": run.sampler, "scheduler": run.scheduler,
                "gpus_per_trial": run.gpus_per_trial, "base_preset": sp.base_preset, "objective": run.objective,
                "tuning_env_steps": run.tuning_env_steps}
    if resume:
        _check_resume(run.registry, run.name, t.name, sp.source, settings)
    t0 = time.time()
    lease = _start(run, space_name=sp.name, space_yaml=sp.source, settings=settings, resume=resume)
    run.max_concurrent = run.max_concurrent or min(run.trials, _cpus())
    progress(f"{run.label} {_plan(run)}; registry {run.registry.safe_url}, results {run.exp_dir}")
    try:
        _tune(run, resume)
        candidates = _candidates(run.registry.trials(run.search_id), run.top_k, run.budget)
        if not candidates:
            raise SearchFailed(f"search {run.name!r}: every trial failed (the first error is in the "
                               f"error.txt files under {run.exp_dir})")
        seeds = run.seeds.selection(run.n_selection)
        selection = _run_phase(run, Phase.SELECTION, [(i, c["params"], s) for i, c in enumerate(candidates)
                                                      for s in seeds])
        table = _selection_table(candidates, selection)
        winner = max(table, key=lambda c: c["selection_mean"])
        test = _run_phase(run, Phase.TEST, [(winner["rank"], winner["params"], s)
                                            for s in run.seeds.test(run.n_test)])
        summary = _store_best(run, table, winner, test)
        run.registry.set_status(run.name, SearchStatus.COMPLETE)
    except SearchInterrupted as stop:
        return _interrupted(run, stop, resume_hint=f"search(..., name={run.name!r}, resume=True)")
    except BaseException:
        run.registry.set_status(run.name, SearchStatus.FAILED)
        raise
    finally:
        lease.release()
    summary.update({"status": "complete", "registry": run.registry.safe_url, "storage_path": str(run.exp_dir),
                    "wall_s": time.time() - t0, "timings": run.registry.get_search(run.name).timings})
    return summary


def _objective(task: Task, objective) -> str:
    allowed = OBJECTIVES if task.episodic else ("train",)
    if objective not in allowed:
        why = "" if task.episodic else f" (task {task.name} is scored exactly: its objective is its exact metric)"
        raise InvalidArgument("objective", objective, ", ".join(allowed) + why)
    return objective


def _plan(run: SearchRun) -> str:
    """The search's plan in one line: what runs, how many, about how many env steps."""
    tuning = (f"tuning until {run.tuning_env_steps:,} training env steps are spent (at most {_plural(run.trials, 'trial')}"
              f" of {run.budget:,} env steps)" if run.tuning_env_steps else
              f"{_plural(run.trials, 'tuning trial')} of {run.budget:,} env steps"
              + (f" x {run.seeds_per_trial} seeds" if run.seeds_per_trial > 1 else ""))
    later = (run.top_k * run.n_selection + run.n_test) * run.budget
    at_most = run.tuning_env_steps or run.trials * run.seeds_per_trial * run.budget
    return (f"task {run.task.name}, space {run.space.name}, objective {run.objective}: {tuning}, "
            f"{run.max_concurrent} at a time; then top {run.top_k} x {_plural(run.n_selection, 'selection seed')}, "
            f"then the winner on {_plural(run.n_test, 'test seed')}: about {later / 1e6:.3g}M env steps after tuning, "
            f"{(at_most + later) / 1e6:.3g}M at most in all")


def evaluate(task: str, preset: str = "ppo", overrides: dict | None = None, *, env_steps: int | None = None,
             seed: int = 0, test_seeds: int = 5, name: str | None = None, registry: str = DEFAULT_URL,
             storage_path: str = DEFAULT_STORAGE, max_concurrent: int | None = None, gpus_per_trial: float = 0.0,
             resume: bool = False, progress=_log) -> dict:
    """Train one fixed configuration (``preset`` + ``overrides``) on ``test_seeds`` test seeds with
    the search's protocol (same seeds as a search with this ``seed``); store each run under the
    search name ``name`` and return the test summary. For baselines; nothing is selected.
    """
    from pgu_rllib.tasks.training import build_config

    t = get_task(task)
    overrides = dict(overrides or {})
    name = check_name(name if name is not None else default_name(t.name, preset, check_seed(seed)))
    run = SearchRun(name=name, task=t, budget=_budget(t, env_steps), seed=check_seed(seed),
                    max_concurrent=0 if max_concurrent is None else _count("max_concurrent", max_concurrent),
                    gpus_per_trial=_gpus(gpus_per_trial), registry=_open_registry(registry),
                    exp_dir=_storage(storage_path) / name, base_config={}, progress=progress,
                    n_test=check_count("test_seeds", test_seeds))
    run.label = f"[pgu evaluate {name}]"
    _check_new_or_resume(run.registry, name, run.exp_dir, resume)
    config = build_config(t, preset, overrides, seed=0, budget=run.budget)
    if run.gpus_per_trial:
        config = config.learners(num_gpus_per_learner=run.gpus_per_trial)
    run.base_config = config.to_dict()
    settings = {"env_id": t.env_id, "env_kwargs": t.eval_env_kwargs,
                "kind": "evaluation", "preset": preset, "overrides": overrides, "env_steps": run.budget,
                "seed": run.seed, "test_seeds": run.n_test, "gpus_per_trial": run.gpus_per_trial}
    if resume:
        _check_resume(run.registry, name, t.name, "", settings)
    t0 = time.time()
    lease = _start(run, space_name=f"preset:{preset}", space_yaml="", settings=settings, resume=resume)
    run.max_concurrent = run.max_concurrent or min(run.n_test, _cpus())
    progress(f"{run.label} task {t.name}, preset {preset}{' + ' + json.dumps(overrides) if overrides else ''}, "
             f"{_plural(run.n_test, 'test seed')} x {run.budget:,} env steps")
    try:
        test = _run_phase(run, Phase.TEST, [(0, {}, s) for s in run.seeds.test(run.n_test)])
        run.registry.set_status(name, SearchStatus.COMPLETE)
    except SearchInterrupted as stop:
        return _interrupted(run, stop, resume_hint=f"evaluate(..., name={run.name!r}, resume=True)")
    except BaseException:
        run.registry.set_status(name, SearchStatus.FAILED)
        raise
    finally:
        lease.release()
    stats = summarize([e["score"] for e in test])
    return {"status": "complete", "name": name, "task": t.name, "preset": preset, "overrides": overrides,
            "test_scores": [e["score"] for e in test], "test_seeds": [e["seed"] for e in test],
            "policies": [e["policy_path"] for e in test],
            **{f"test_{k}": v for k, v in stats.items() if k != "n"}, "protocol": _protocol(run),
            "registry": run.registry.safe_url, "wall_s": time.time() - t0,
            "timings": run.registry.get_search(name).timings}


def _interrupted(run: SearchRun, stop: SearchInterrupted, resume_hint: str) -> dict:
    run.registry.set_status(run.name, SearchStatus.INTERRUPTED)
    run.progress(f"{run.label} interrupted during {stop.phase}; finished runs are stored. Resume with "
                 f"{resume_hint}")
    return {"name": run.name, "status": "interrupted", "phase": stop.phase, "task": run.task.name,
            "space": run.space.name if run.space else None}


# -- phase 1: tuning ---------------------------------------------------------------------------

def _tune(run: SearchRun, resume: bool) -> None:
    """Run (or continue) the Tune + Optuna search until ``run.trials`` trials are recorded, or until
    ``run.tuning_env_steps`` training env steps are spent (``TuningMeter``)."""
    from ray import tune

    from pgu_rllib.rllib.algorithm import PGU
    from pgu_rllib.service._tune_hooks import TuningMeter

    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")  # save Tune's state every loop: resume loses least
    meter = TuningMeter(run.registry, run.name, run.search_id, run.tuning_env_steps, run.seeds_per_trial)

    def more() -> bool:
        return _finished(run) < run.trials and not meter.exhausted()

    try:
        if resume and tune.Tuner.can_restore(str(run.exp_dir)) and more():
            run.progress(f"{run.label} resuming the tuning phase from {run.exp_dir}")
            tuner = tune.Tuner.restore(str(run.exp_dir), trainable=PGU, resume_unfinished=True, resume_errored=True,
                                       param_space=run.base_config)  # Tune stored its objects as placeholders
            _fit(run, tuner, "tuning")
        if more():
            remaining = run.trials - _finished(run)
            if resume:
                run.progress(f"{run.label} {_plural(_finished(run), 'trial')} in the registry"
                             + (f", {meter.spent:,} tuning env steps spent" if run.tuning_env_steps else "")
                             + f"; running up to {remaining} more")
            _fit(run, _new_tuner(run, remaining), "tuning")
        if more():
            raise SearchInterrupted(run.name, "tuning")
    finally:
        meter.flush()
    if run.tuning_env_steps:
        run.progress(f"{run.label} tuning spent {meter.spent:,} training env steps over "
                     f"{_plural(_finished(run), 'trial')} (limit {run.tuning_env_steps:,})")


def _finished(run: SearchRun) -> int:
    return len(run.registry.trials(run.search_id))


def _fit(run: SearchRun, tuner, phase: str):
    results = tuner.fit()
    if results.num_terminated + results.num_errors < len(results):  # Ctrl-C: Tune saved a resumable state
        raise SearchInterrupted(run.name, phase)
    return results


def _sampler(run: SearchRun):
    import optuna

    startup = min(10, max(3, run.trials // 3))
    seed = run.seed + _finished(run)  # a continued search does not replay the same draws
    return {"tpe": lambda: optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup),
            "random": lambda: optuna.samplers.RandomSampler(seed=seed),
            "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=startup,
                                                          warn_independent_sampling=False),
            "gp": lambda: optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)}[run.sampler]()


def _scheduler(run: SearchRun):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from pgu_rllib.service._tune_hooks import STEPS

    # First rung: a ninth of the budget, but never before 3 training iterations (one iteration's
    # objective is noise: on the bandit it is the initial policy's score for every trial).
    grace = min(max(run.budget // 9, 3 * int(run.base_config.get("_train_batch_size_per_learner") or 1)), run.budget)
    if run.pruner == "asha":
        return ASHAScheduler(time_attr=STEPS, max_t=run.budget, grace_period=grace, reduction_factor=3)
    if run.pruner == "wilcoxon":
        return WilcoxonScheduler(grace_steps=grace)
    return FIFOScheduler()


def _new_tuner(run: SearchRun, n: int):
    from ray import tune

    from pgu_rllib.rllib.algorithm import PGU
    from pgu_rllib.service._tune_hooks import (OBJECTIVE, BudgetOrFinished, RecordTrials, ResumableOptunaSearch,
                                               TrialSpace, short_dirname)

    searcher = ResumableOptunaSearch(space=TrialSpace(run.space, run.seeds.tuning_base, run.seeds_per_trial),
                                     metric=OBJECTIVE, mode="max", sampler=_sampler(run), study_name=run.name,
                                     storage=optuna_storage(run.registry.url))
    searcher.pgu_search_id, searcher.pgu_budget = run.search_id, run.budget
    trainable = PGU if run.seeds_per_trial == 1 else tune.with_resources(
        MultiSeedPGU, {"cpu": 1, "gpu": run.gpus_per_trial})
    keys_ = {"seed"} | ({SEEDS} if run.seeds_per_trial > 1 else set())  # with each trial's active space keys
    finished = _finished(run)
    scheduler = _scheduler(run)
    if run.scheduler:  # a population: its first draws from the space, then the scheduler explores
        from ray.tune.search.basic_variant import BasicVariantGenerator

        searcher = BasicVariantGenerator(points_to_evaluate=_first_draws(run, n))
        scheduler = _population_scheduler(run)
        keys_ |= set(run.space.mutable) | {"pgu_schedule"}
    return tune.Tuner(
        trainable, param_space=run.base_config,
        tune_config=tune.TuneConfig(metric=OBJECTIVE, mode="max", search_alg=searcher, scheduler=scheduler,
                                    num_samples=n, max_concurrent_trials=min(run.max_concurrent, n),
                                    trial_dirname_creator=short_dirname),
        run_config=tune.RunConfig(
            name=run.exp_dir.name if finished == 0 else f"{run.exp_dir.name}-more{finished}",
            storage_path=str(run.exp_dir.parent), stop=BudgetOrFinished(run.budget, run.search_id), verbose=0,
            callbacks=[RecordTrials(run.search_id, keys_, run.trials, run.budget, run.label, space=run.space.params,
                                    schedules=_schedule_reader(run) if run.scheduler else None)],
            # a trial whose worker dies (an infrastructure fault) is re-run from its start, twice at most;
            # only a trial that fails three times is recorded as the configuration's error
            failure_config=tune.FailureConfig(max_failures=FAILURE_RETRIES),
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False)))


def _first_draws(run: SearchRun, n: int) -> list[dict]:
    """``n`` configurations drawn from the space by the search's sampler (seeded), with the tuning seeds."""
    import optuna

    from pgu_rllib.service._tune_hooks import TrialSpace

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=_sampler(run), direction="maximize")
    space = TrialSpace(run.space, run.seeds.tuning_base)
    points = []
    for i in range(n):
        trial = study.ask()
        constants = space(trial)  # suggests the parameters first
        point = {**trial.params, **constants}
        point["seed"] = run.seeds.tuning(1, start=_finished(run) + i)[0]
        for key, spec in run.space.mutable.items():  # a mutable key starts inside its bounds
            if key not in point:
                point[key] = (trial.suggest_categorical(key, spec["choice"]) if isinstance(spec, dict)
                              else trial.suggest_float(key, *spec))
        study.tell(trial, 0.0)
        points.append(point)
    return points


def _population_scheduler(run: SearchRun):
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.schedulers.pb2 import PB2

    from pgu_rllib.service._schedulers import clip_to_bounds
    from pgu_rllib.service._tune_hooks import STEPS

    batch = int(run.base_config.get("_train_batch_size_per_learner") or 1)
    # every tenth of the budget in whole iterations, and never more often than every two: each perturbation
    # point pauses and restores every member (the population is synchronous)
    interval = max(2 * batch, (run.budget // 10) // batch * batch)
    bounds = {k: v for k, v in run.space.mutable.items() if not isinstance(v, dict)}
    if run.scheduler == "pb2":
        return PB2(time_attr=STEPS, perturbation_interval=interval, hyperparam_bounds=bounds, quantile_fraction=0.25,
                   log_config=True, require_attrs=True, synch=True)
    mutations = {k: (v["choice"] if isinstance(v, dict) else tune.uniform(*v)) for k, v in run.space.mutable.items()}
    return PopulationBasedTraining(time_attr=STEPS, perturbation_interval=interval, hyperparam_mutations=mutations,
                                   quantile_fraction=0.25, resample_probability=0.25, log_config=True,
                                   custom_explore_fn=clip_to_bounds(bounds), require_attrs=True, synch=True)


def _schedule_reader(run: SearchRun):
    from pgu_rllib.service._schedulers import ScheduleReader

    return ScheduleReader(str(run.exp_dir), sorted(run.space.mutable),
                          int(run.base_config.get("_train_batch_size_per_learner") or 1))


def _candidates(trials: list[dict], top_k: int, budget: int) -> list[dict]:
    """Top-k distinct configurations: trials that ran the full budget first (by score), then
    trials ASHA stopped early (by score), since an early score is not comparable to a full one."""
    scored = [t for t in trials if t["score"] is not None and math.isfinite(t["score"]) and t["status"] != "error"]
    pool = sorted(scored, key=lambda t: (t["env_steps"] < budget, -t["score"]))
    out, seen = [], set()
    for t in pool:
        params = {k: v for k, v in t["params"].items() if k not in ("seed", SEEDS)}
        key = json.dumps(params, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append({"params": params, "tuning_score": t["score"], "tune_trial_id": t["tune_trial_id"]})
        if len(out) == top_k:
            break
    return out


# -- phases 2 and 3: selection and test runs ----------------------------------------------------

def _run_phase(run: SearchRun, phase: Phase, jobs: list[tuple[int, dict, int]]) -> list[dict]:
    """Train each (candidate, params, seed) job to the full budget and score it; rows are written as
    each run finishes. A stored row is reused only when its seed and configuration hash (resolved
    config, budget, evaluation protocol) match the job's; anything else is re-run and replaced.
    Returns the phase's rows for these jobs."""
    from ray import tune

    from pgu_rllib.service._tune_hooks import EvaluationRun, RecordEvaluations, config_hash, short_dirname

    protocol = run.task.protocol(run.objective)
    hashes = {(i, s): config_hash({**run.base_config, **params}, run.budget, protocol) for i, params, s in jobs}
    stored = {(e["candidate"], e["seed"]): e for e in run.registry.evaluations(run.search_id, phase)}
    done = {key for key, e in stored.items() if key in hashes and e["config_hash"] == hashes[key]}
    stale = sorted(key for key in hashes if key in stored and key not in done)
    todo = [(i, params, s) for i, params, s in jobs if (i, s) not in done]
    run.progress(f"{run.label} {phase.value}: {_plural(len(jobs), 'run')} of {run.budget:,} env steps "
                 f"({len(jobs) - len(todo)} already stored), seeds {sorted({s for _, _, s in jobs})}")
    if stale:
        run.progress(f"{run.label} {phase.value}: {_plural(len(stale), 'stored run')} ran another configuration "
                     f"(candidate, seed {stale}); re-running them")
    if todo:
        t0 = time.time()
        policies = run.exp_dir / "policies" / phase.value
        configs = [{"candidate": i, "seed": s, "params": params, "task": run.task, "budget": run.budget,
                    "config": {**run.base_config, **params, "seed": s}, "config_hash": hashes[(i, s)],
                    "policy_path": str(policies / f"c{i}-s{s}-{hashes[(i, s)]}.npz")} for i, params, s in todo]
        trainable = tune.with_resources(EvaluationRun, {"cpu": 1, "gpu": run.gpus_per_trial})
        recorder = RecordEvaluations(run.search_id, phase.value, len(todo), run.label)
        tuner = tune.Tuner(
            trainable, param_space={"job": tune.grid_search(configs)},
            tune_config=tune.TuneConfig(max_concurrent_trials=min(run.max_concurrent, len(todo)),
                                        trial_dirname_creator=short_dirname, reuse_actors=True),
            run_config=tune.RunConfig(name=f"{run.exp_dir.name}-{phase.value}-{int(t0)}",
                                      storage_path=str(run.exp_dir.parent), verbose=0, callbacks=[recorder],
                                      failure_config=tune.FailureConfig(max_failures=FAILURE_RETRIES),
                                      checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False)))
        try:
            grid = tuner.fit()
        finally:
            rows = run.registry.evaluations(run.search_id, phase)
            new = [r for r in rows if (r["candidate"], r["seed"]) in hashes and (r["candidate"], r["seed"]) not in done
                   and r["config_hash"] == hashes[(r["candidate"], r["seed"])]]
            run.registry.add_timing(run.name, phase.value, wall_s=time.time() - t0,
                                    env_steps=sum(r["curve"][-1][0] for r in new if r["curve"]),
                                    eval_env_steps=sum(r["eval_env_steps"] or 0 for r in new))
        current = {(r["candidate"], r["seed"]) for r in rows if r["config_hash"] == hashes.get((r["candidate"], r["seed"]))}
        missing = [key for key in hashes if key not in current]
        if missing:
            errors = [r.error for r in grid if r.error is not None]
            if errors:
                raise SearchFailed(f"{len(errors)} {phase.value} run(s) failed: {str(errors[0]).splitlines()[0]}")
            raise SearchInterrupted(run.name, phase.value)
    return [r for r in run.registry.evaluations(run.search_id, phase)
            if hashes.get((r["candidate"], r["seed"])) == r["config_hash"]]


def _plural(n: int, noun: str) -> str:
    """``1 run``, ``3 runs``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _selection_table(candidates: list[dict], selection: list[dict]) -> list[dict]:
    table = []
    for i, cand in enumerate(candidates):
        rows = sorted((e for e in selection if e["candidate"] == i), key=lambda e: e["seed"])
        scores = [e["score"] for e in rows]
        table.append({**cand, "rank": i, "selection_scores": scores, "selection_seeds": [e["seed"] for e in rows],
                      "selection_mean": summarize(scores)["mean"]})
    return table


def _protocol(run: SearchRun) -> dict:
    out = {"budget_env_steps": run.budget, **run.task.protocol(run.objective),
           "test_seeds": run.seeds.test(run.n_test)}
    if run.space is not None:
        n = len(run.registry.trials(run.search_id)) if run.search_id is not None else run.trials
        tuning = (run.seeds.tuning(n) if run.seeds_per_trial == 1
                  else run.seeds.tuning(run.seeds_per_trial))  # k > 1: every trial, the same k seeds
        out.update(tuning_seeds=tuning, trials=n, top_k=run.top_k, seeds_per_trial=run.seeds_per_trial,
                   pruner=run.pruner, sampler=run.sampler, tuning_env_steps=run.tuning_env_steps,
                   selection_seeds=run.seeds.selection(run.n_selection),
                   selection="highest mean on the selection seeds among the top-k by tuning score; "
                             "the test seeds are used for nothing but the reported scores")
    return out


def _store_best(run: SearchRun, table: list[dict], winner: dict, test: list[dict]) -> dict:
    from pgu_rllib.tasks.training import build_config, config_summary

    test = sorted(test, key=lambda e: e["seed"])
    stats = summarize([e["score"] for e in test])
    best = {"params": winner["params"], "tuning_score": winner["tuning_score"],
            "selection_mean": winner["selection_mean"], "selection_scores": winner["selection_scores"],
            "selection_seeds": winner["selection_seeds"],
            **{f"test_{k}": v for k, v in stats.items() if k != "n"},
            "test_scores": [e["score"] for e in test], "test_seeds": [e["seed"] for e in test]}
    config = config_summary(build_config(run.task, run.space.base_preset, winner["params"], budget=run.budget))
    protocol = {**_protocol(run), "test_policies": [e["policy_path"] for e in test]}
    replaced = replaces_best(run.registry.best(run.task.name, run.space.name, key=protocol_key(protocol)),
                             run.name, winner["selection_mean"])
    if replaced:
        run.registry.put_best(task=run.task.name, space=run.space.name, search_name=run.name,
                              preset=run.space.base_preset, config=config, protocol=protocol, versions=versions(),
                              git_commit=git_commit(), **best)
    if not run.scheduler:  # a population has no Optuna study
        _tell_study(run, table, best)
    return {"name": run.name, "task": run.task.name, "space": run.space.name, "trials": run.trials,
            "candidates": table, "best": {**best, "config": config}, "registry_updated": replaced,
            "protocol": protocol}


def _tell_study(run: SearchRun, table: list[dict], best: dict) -> None:
    """Put the selection and test phases in the Optuna study (user attributes), so optuna-dashboard shows
    the winner ``pgu best`` shows: ``pgu_winner`` (its Optuna trial number, params, selection and test
    scores) and ``pgu_candidates`` (each candidate's trial number and selection mean). The study's own
    "best trial" stays the best *tuning* value, which chose only the candidates."""
    import optuna

    study = optuna.load_study(study_name=run.name, storage=optuna_storage(run.registry.url))

    def number(params: dict):
        for trial in study.trials:
            if {k: v for k, v in trial.params.items() if k in params} == {k: v for k, v in params.items()
                                                                          if k in trial.params}:
                return trial.number
        return None

    study.set_user_attr("pgu_candidates", [{"trial": number(c["params"]), "rank": c["rank"],
                                            "selection_mean": c["selection_mean"]} for c in table])
    study.set_user_attr("pgu_winner", {"trial": number(best["params"]), "params": best["params"],
                                       "selection_mean": best["selection_mean"], "test_mean": best["test_mean"],
                                       "test_iqm": best["test_iqm"], "test_scores": best["test_scores"]})


def replaces_best(current: dict | None, search_name: str, selection_mean: float) -> bool:
    """The protocol's replacement rule: a winner replaces the stored best row of its (task, space,
    protocol key) when there is none, when that row is this search's own (a resume), or when the
    winner's *selection* mean is at least the stored one's. Test scores never decide."""
    return current is None or current["search_name"] == search_name or selection_mean >= current["selection_mean"]

