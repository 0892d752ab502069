"""Tune schedulers and trainables for searches that fit RL (issue 16).

* ``PGUTrial``: one tuning trial, ``PGU`` on one seed inside a Trainable that Tune can reuse
  (``reset_config``): the next trial of a search runs in the same worker process, so the process start
  and the torch/RLlib imports (about 8 s on 2 cores) are paid once per worker, not once per trial.
  Its results, checkpoints and resources are ``PGU``'s own.
* ``MultiSeedPGU``: one trial trains k seeds of one configuration in lockstep, in one process
  (one CPU, so k times the trial's time), and reports their mean (the objective), IQM and each
  seed's objective every iteration, so a scheduler acts on the aggregate.
* ``WilcoxonScheduler``: Optuna's ``WilcoxonPruner`` rule as a Tune scheduler: from the first rung
  on, a trial stops when its per-seed objectives are worse than the best finished trial's, paired
  by seed (every trial trains the same k tuning seeds), by a one-sided Wilcoxon signed-rank test at
  p < ``p_threshold`` (Optuna's default, 0.1). With k seeds the smallest p is 2⁻ᵏ, so k ≥ 4.
"""
from __future__ import annotations

import json
import pathlib
import statistics

import numpy as np
from ray import tune
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from pgu_rllib.rllib import keys

SEEDS = "pgu_seeds"  # a trial's config key: the seeds it trains (seeds_per_trial > 1)
SEED_OBJECTIVES = "seed_objectives"  # result["pgu"][...]: each seed's objective
MIN_WILCOXON_SEEDS = 4


class PGUTrial(tune.Trainable):
    """``PGU`` as Tune's trainable, built anew on ``reset_config`` (Tune's ``reuse_actors``). Same seed, same
    numbers: the algorithm seeds every generator it uses when it is built (``tests/test_actor_reuse.py``)."""

    def __init__(self, *args, **kwargs):
        from pgu_rllib.rllib.ray_session import quiet_logs

        quiet_logs()
        super().__init__(*args, **kwargs)

    @classmethod
    def default_resource_request(cls, config):
        from pgu_rllib.rllib.algorithm import PGU

        return PGU.default_resource_request(config)

    def setup(self, config: dict) -> None:
        from pgu_rllib.rllib.algorithm import PGU, discard_logdir

        self.algo = PGU(config=config)
        discard_logdir(self.algo)

    def reset_config(self, new_config: dict) -> bool:
        self.algo.stop()
        self.setup(new_config)
        return True

    def step(self) -> dict:
        result = self.algo.train()  # the counters Tune keeps per trial (and restores) are this Trainable's own
        for key in ("training_iteration", "timesteps_total", "episodes_total", "done"):
            result.pop(key, None)
        return result

    def save_checkpoint(self, checkpoint_dir: str):
        return self.algo.save_checkpoint(checkpoint_dir)

    def load_checkpoint(self, checkpoint) -> None:
        self.algo.load_checkpoint(checkpoint)

    def cleanup(self) -> None:
        self.algo.stop()


class MultiSeedPGU(tune.Trainable):
    """``PGU`` on every seed of ``config["pgu_seeds"]``; reports ``result["pgu"]`` as PGU does, with
    the objective the mean over seeds."""

    def __init__(self, *args, **kwargs):
        from pgu_rllib.rllib.ray_session import quiet_logs

        quiet_logs()
        super().__init__(*args, **kwargs)

    def setup(self, config: dict) -> None:
        from pgu_rllib.rllib.algorithm import PGU, discard_logdir

        base = {k: v for k, v in config.items() if k != SEEDS}
        self.algos = [PGU(config={**base, "seed": int(s)}) for s in config[SEEDS]]
        for algo in self.algos:
            discard_logdir(algo)

    def reset_config(self, new_config: dict) -> bool:  # Tune's reuse_actors: see PGUTrial
        self.cleanup()
        self.setup(new_config)
        return True

    def step(self) -> dict:
        from pgu_rllib.core.stats import iqm

        results = [algo.train() for algo in self.algos]
        objectives = [float(r[keys.PGU][keys.OBJECTIVE]) for r in results]
        return {keys.PGU: {keys.OBJECTIVE: statistics.fmean(objectives), "objective_iqm": iqm(objectives),
                           SEED_OBJECTIVES: objectives, keys.NODE_ID: results[0][keys.PGU].get(keys.NODE_ID)},
                keys.ENV_STEPS: min(int(r[keys.ENV_STEPS]) for r in results)}

    def cleanup(self) -> None:
        for algo in self.algos:
            algo.stop()


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
