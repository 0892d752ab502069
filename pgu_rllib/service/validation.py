"""Every argument of a search checked once, at the edge, before anything is written: a bad one raises a
``PGUError`` naming it and what is allowed (``pgu`` prints it on one line and exits 2)."""
from __future__ import annotations

import math
import pathlib
import re

from pgu_rllib.core.errors import InvalidArgument, NothingToResume, SearchChanged, SearchExists
from pgu_rllib.service.provenance import absolute_sqlite
from pgu_rllib.service.registry import Registry
from pgu_rllib.tasks import Task
from pgu_rllib.tasks.catalog import OBJECTIVES


NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_int(param: str, value, low: int = 1, high: int = 1000) -> int:
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


def check_choice(param: str, value, allowed: tuple) -> str:
    if value not in allowed:
        raise InvalidArgument(param, value, ", ".join(allowed))
    return value


def check_budget(task: Task, env_steps) -> int:
    if env_steps is None:
        return task.budget
    return check_int("env_steps", env_steps, 1, 10**12)


def check_storage(storage_path) -> pathlib.Path:
    path = pathlib.Path(storage_path).expanduser().resolve()
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise InvalidArgument("storage_path", str(storage_path), "a directory (or a path that can become one)")
            break
    return path


def check_gpus(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
        raise InvalidArgument("gpus_per_trial", value, "a finite number >= 0")
    return float(value)


def check_objective(task: Task, objective) -> str:
    allowed = OBJECTIVES if task.episodic else ("train",)
    if objective not in allowed:
        why = "" if task.episodic else f" (task {task.name} is scored exactly: its objective is its exact metric)"
        raise InvalidArgument("objective", objective, ", ".join(allowed) + why)
    return objective


def check_population(run, sp) -> None:
    if not sp.mutable:
        raise InvalidArgument("scheduler", run.scheduler, f"pbt or pb2 with a space that has a 'mutable' section "
                                                          f"({sp.name} has none)")
    if run.seeds_per_trial != 1 or run.pruner != "asha":
        raise InvalidArgument("scheduler", run.scheduler, "pbt or pb2 alone: it replaces the pruner, one seed a trial")
    if run.scheduler == "pb2" and any(isinstance(v, dict) for v in sp.mutable.values()):
        raise InvalidArgument("scheduler", run.scheduler, "pbt with a 'choice' among the mutable keys (pb2 needs ranges)")


def open_registry(registry: str) -> Registry:
    """The registry a search writes: reachable, not in memory (its trials run in other processes)."""
    reg = Registry(registry)
    if reg.in_memory:
        raise InvalidArgument("registry", reg.safe_url, "a database the trial processes can reach too (a SQLite "
                                                        "file or a server URL), not an in-memory one")
    reg.check_reachable()
    reg.check_not_newer()
    return Registry(absolute_sqlite(registry))  # a relative SQLite path means the cwd of now


def check_new_or_resume(reg: Registry, name: str, exp_dir: pathlib.Path, resume: bool) -> None:
    existing = reg.search_exists(name)
    if resume and not existing:  # the registry is the source of truth (a forgotten --registry lands here)
        raise NothingToResume(name, reg.safe_url)
    if not resume and (existing or exp_dir.exists()):
        raise SearchExists(name)


# Settings a resume must repeat exactly; ``trials`` may grow (``--resume --trials N`` runs more).
RESUME_MUST_MATCH = ("task", "env_kwargs", "space_yaml", "env_steps", "seed", "top_k", "selection_seeds", "test_seeds",
                     "seeds_per_trial", "objective", "pruner", "sampler", "scheduler", "tuning_env_steps",
                     "base_preset", "kind", "preset", "overrides")


def check_resume(reg: Registry, name: str, task: str, space_yaml: str, settings: dict) -> None:
    """``--resume`` continues the stored search only: refuse (``SearchChanged``, nothing written) when any
    of ``RESUME_MUST_MATCH`` differs, naming each difference."""
    row = reg.get_search(name) if reg.schema() is not None and reg.search_exists(name) else None
    if row is None:
        return
    stored = {"task": row.task, "space_yaml": row.space_yaml, **row.settings}
    given = {"task": task, "space_yaml": space_yaml, **settings}
    diffs = []
    for key in RESUME_MUST_MATCH:
        if key not in stored:  # a setting an older pgu-rllib did not record: nothing to compare
            continue
        before, now = stored.get(key), given.get(key)
        if before != now and not (key in ("objective",) and before is None and now == "train"):
            diffs.append("the space file's content differs" if key == "space_yaml" else f"{key} {before!r} -> {now!r}")
    if diffs:
        raise SearchChanged(name, diffs)
