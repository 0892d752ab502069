"""``SearchRun``: one search (or evaluation), validated, as a value the phases are functions of.

It holds the task, the budget, the seed plan (``seeds``), the search method's names, the registry and
where Tune writes; ``service.search`` builds it from the caller's arguments.
"""
from __future__ import annotations

import dataclasses
import pathlib
import sys
from typing import Callable

from pgu_rllib.service.registry import Registry
from pgu_rllib.service.seeds import SeedPlan
from pgu_rllib.service.spaces import SearchSpace
from pgu_rllib.tasks import Task


DEFAULT_STORAGE = "pgu_results/tune"


FAILURE_RETRIES = 2  # re-runs of a trial or run whose process died


def log_line(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def plural(n: int, noun: str) -> str:
    """``1 run``, ``3 runs``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


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
    progress: Callable = log_line
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

    tracking: str | None = None  # "mlflow" | "wandb": Tune's logger callback for the tuning trials
    tracking_uri: str | None = None
    objective: str = "train"  # the tuning objective of an episodic task: "train" or "eval"
    tuning_env_steps: int | None = None  # start trials until this many training env steps are spent
    population: int = 1  # K > 1: runs of one structure train K to a process (``service._population``)

    label: str = ""  # the prefix of its progress lines
    phase: str = "its start"  # the phase running (or last begun): what an interruption names

    def __post_init__(self):
        self.label = self.label or f"[pgu search {self.name}]"

    @property
    def seeds(self) -> SeedPlan:
        return SeedPlan(self.seed)


def finished_trials(run: SearchRun) -> int:
    """Tuning trials the registry holds for this search."""
    return len(run.registry.trial_ids(run.search_id))
