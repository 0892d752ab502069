"""Tune schedulers and trainables for searches that fit RL (issue 16).

(The trainables these schedulers act on are in ``_trainables``.)

* ``WilcoxonScheduler``: Optuna's ``WilcoxonPruner`` rule as a Tune scheduler: from the first rung
  on, a trial stops when its per-seed objectives are worse than the best finished trial's, paired
  by seed (every trial trains the same k tuning seeds), by a one-sided Wilcoxon signed-rank test at
  p < ``p_threshold`` (Optuna's default, 0.1). With k seeds the smallest p is 2⁻ᵏ, so k ≥ 4.
"""
from __future__ import annotations

import json
import pathlib

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from pgu_rllib.rllib import keys
from pgu_rllib.service._trainables import SEED_OBJECTIVES

MIN_WILCOXON_SEEDS = 4


class WilcoxonScheduler(FIFOScheduler):
    def __init__(self, *, grace_steps: int, p_threshold: float = 0.1):
        super().__init__()
        self.grace_steps, self.p_threshold = grace_steps, p_threshold
        self._history: dict[str, list] = {}  # trial id -> [(env steps, per-seed objectives)]
        self._finished: dict[str, float] = {}  # trial id -> final mean objective

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        steps = int(result.get(keys.ENV_STEPS, 0))
        mine = result.get(keys.PGU, {}).get(SEED_OBJECTIVES)
        if mine is None:
            return TrialScheduler.CONTINUE
        self._history.setdefault(trial.trial_id, []).append((steps, list(mine)))
        if steps < self.grace_steps or not self._finished:
            return TrialScheduler.CONTINUE
        best = max(self._finished, key=self._finished.get)
        earlier = [objs for s, objs in self._history.get(best, []) if s <= steps]
        if not earlier:
            return TrialScheduler.CONTINUE
        return TrialScheduler.STOP if worse(mine, earlier[-1], self.p_threshold) else TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        objective = (result or {}).get(keys.PGU, {}).get(keys.OBJECTIVE)
        if objective is not None and trial.trial_id in self._history:
            self._finished[trial.trial_id] = float(objective)


def worse(mine, reference, p_threshold: float) -> bool:
    """Is ``mine`` worse than ``reference`` (paired per seed), by a one-sided Wilcoxon signed-rank test?"""
    from scipy.stats import wilcoxon

    d = np.asarray(reference, dtype=float) - np.asarray(mine, dtype=float)
    if len(d) < MIN_WILCOXON_SEEDS or not np.any(d):
        return False
    return bool(wilcoxon(d, alternative="greater").pvalue < p_threshold)


def clip_to_bounds(bounds: dict):
    """PBT's explore step (×0.8 or ×1.2, or a resample) kept inside each mutable key's [lo, hi]."""
    def explore(config: dict) -> dict:
        for key, (lo, hi) in bounds.items():
            if key in config:
                config[key] = min(max(config[key], lo), hi)
        return config

    return explore


class ScheduleReader:
    """A trial's schedule of the mutable keys, from the lineage PBT/PB2 logs for it
    (``pbt_policy_<trial id>.txt``: the donor's file, then each exploit ``[target, donor, target iteration,
    donor iteration, donor config, new config]``): ``[[env steps, {key: value}], ...]`` starting at 0, env
    steps = the donor's iteration × the batch size."""

    def __init__(self, folder: str, keys: list, batch: int):
        self.folder, self.keys, self.batch = folder, keys, batch

    def __call__(self, trial_id: str, final_config: dict) -> list:
        path = pathlib.Path(self.folder) / f"pbt_policy_{trial_id}.txt"
        events = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        pick = lambda config: {k: config[k] for k in self.keys if k in config}  # noqa: E731
        if not events:
            return [[0, pick(final_config)]]
        schedule = [[0, pick(events[0][4])]]
        for _, _, _, donor_iteration, _, new_config in events:
            schedule.append([int(donor_iteration) * self.batch, pick(new_config)])
        return schedule
