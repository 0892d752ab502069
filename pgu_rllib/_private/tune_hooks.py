"""Pieces Tune pickles and calls back: they must live at module level (restore needs them)."""
from __future__ import annotations

import math
import sys
import time

import optuna
from ray import tune
from ray.tune.search.optuna import OptunaSearch

OBJECTIVE = "pgu/objective"
STEPS = "num_env_steps_sampled_lifetime"


class ResumableOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that tolerates a resume re-running a trial Optuna already finished (a kill
    between Optuna's ``tell`` and Tune's state save): updates to a finished Optuna trial are
    dropped instead of failing the search."""

    def on_trial_result(self, trial_id, result):
        try:
            super().on_trial_result(trial_id, result)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass

    def on_trial_complete(self, trial_id, result=None, error=False):
        try:
            super().on_trial_complete(trial_id, result, error)
        except optuna.exceptions.UpdateFinishedTrialError:
            self._ot_trials.pop(trial_id, None)


class BudgetOrFinished(tune.Stopper):
    """Stop at the env-step budget, or at once for a trial the registry already holds as finished
    (a resume restarted it because Tune's last saved state predates its end)."""

    def __init__(self, budget: int, registry_url: str, search_id: int):
        self.budget, self.registry_url, self.search_id = budget, registry_url, search_id
        self._finished = None

    def __getstate__(self):
        return {**self.__dict__, "_finished": None}  # re-read the registry after a restore

    def __call__(self, trial_id, result) -> bool:
        if self._finished is None:
            from pgu_rllib.registry import Registry

            rows = Registry(self.registry_url).trials(self.search_id)
            self._finished = {t["tune_trial_id"] for t in rows if t["status"] != "error"}
        return trial_id in self._finished or int(result.get(STEPS, 0)) >= self.budget

    def stop_all(self) -> bool:
        return False


class TrialSpace:
    """Optuna define-by-run: the YAML space, plus a tuning seed per trial (base + trial number)."""

    def __init__(self, space, seed_base: int):
        self.space, self.seed_base = space, seed_base

    def __call__(self, trial) -> dict:
        constants = self.space(trial)
        constants.setdefault("seed", self.seed_base + trial.number)
        return constants


def short_dirname(trial) -> str:
    return f"{trial.trainable_name}_{trial.trial_id}"


def sampled_params(config: dict, keys: set[str]) -> dict:
    """The keys a search varied, read off a trial's config (``lambda_`` is ``lambda``)."""
    out = {}
    for key in sorted(keys):
        attr = "lambda_" if key == "lambda" else key
        value = config.get(key, config.get(attr))
        if value is not None:  # e.g. alpha_o exists only when scale is mla
            out[key] = value
    return out


class RecordTrials(tune.Callback):
    """Writes one registry row per finished trial and prints a progress line."""

    def __init__(self, registry_url: str, search_id: int, keys: set[str], total: int, budget: int, label: str):
        self.registry_url, self.search_id, self.keys = registry_url, search_id, keys
        self.total, self.budget, self.label = total, budget, label
        self._curves: dict[str, list] = {}
        self._done, self._best, self._t0 = 0, None, time.time()
        self._registry = None
        self._known = None

    def _reg(self):
        if self._registry is None:
            from pgu_rllib.registry import Registry

            self._registry = Registry(self.registry_url)
        return self._registry

    def __getstate__(self):  # the engine is not picklable; Tune pickles callbacks for restore
        state = dict(self.__dict__)
        state["_registry"] = state["_known"] = None
        return state

    def on_trial_result(self, iteration, trials, trial, result, **info):
        obj = result.get("pgu", {}).get("objective")
        if obj is not None and math.isfinite(obj):
            self._curves.setdefault(trial.trial_id, []).append([int(result.get(STEPS, 0)), float(obj)])

    def _record(self, trial, status: str) -> None:
        if self._known is None:  # rows written before a restore are final: never rewrite them
            self._known = {t["tune_trial_id"] for t in self._reg().trials(self.search_id) if t["status"] != "error"}
        if trial.trial_id in self._known:
            return
        last = trial.last_result or {}
        pgu = last.get("pgu", {})
        score = pgu.get("objective")
        steps = int(last.get(STEPS, 0))
        if status == "complete" and steps < self.budget:
            status = "stopped_early"
        if self._done == 0:  # after a resume, count what the registry already holds
            self._done = len(self._reg().trials(self.search_id))
        self._reg().record_trial(
            self.search_id, tune_trial_id=trial.trial_id, params=sampled_params(trial.config, self.keys),
            score=score, env_steps=steps, iterations=int(last.get("training_iteration", 0)), status=status,
            node_id=pgu.get("node_id"), curve=self._curves.get(trial.trial_id, []))
        self._done += 1
        if score is not None and status != "error" and (self._best is None or score > self._best):
            self._best = score
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in sampled_params(trial.config, self.keys).items())
        print(f"[pgu {self.label}] trial {self._done}/{self.total} {status:<13} score {_fmt(score):>9} "
              f"| best {_fmt(self._best):>9} | {params} | {time.time() - self._t0:6.0f}s",
              file=sys.stderr, flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._record(trial, "complete")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._record(trial, "error")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


def heldout_trainable(config: dict) -> None:
    """Train one candidate on one held-out seed to the full budget; report its final score."""
    from pgu_rllib.algorithm import PGU

    job = config["job"]
    budget = int(job["pgu_budget"])
    algo = PGU(config=job["pgu_config"])
    try:
        steps, result = 0, {}
        while steps < budget:
            result = algo.train()
            steps = int(result[STEPS])
            tune.report({OBJECTIVE: result["pgu"]["objective"], STEPS: steps,
                         "node_id": result["pgu"].get("node_id")})
        score = final_score(algo, result)
        tune.report({OBJECTIVE: result["pgu"]["objective"], STEPS: steps, "score": score,
                     "node_id": result["pgu"].get("node_id")})
    finally:
        algo.stop()


def final_score(algo, result) -> float:
    """The task's evaluation protocol: exact task metric if the task has one, else the mean raw
    return of ``evaluation_duration`` evaluation episodes (deterministic per the task)."""
    from pgu_rllib.callbacks import RETURNS_KEY

    pgu = result.get("pgu", {})
    if any(k in pgu for k in ("greedy_expected_reward", "greedy_success")):
        return float(pgu["objective"])
    evaluation = algo.evaluate()
    returns = evaluation.get("env_runners", {}).get(RETURNS_KEY) or []
    if returns:
        return float(sum(returns) / len(returns))
    return float(pgu["objective"])
