"""Pieces Tune pickles and calls back: they must live at module level (restore needs them).

None of them holds the registry URL (it may carry a password): they read it from the driver's
environment (``PGU_REGISTRY_URL``, set by the search service) when they need it, and the
Optuna searcher drops its storage from the state Tune pickles.
"""
from __future__ import annotations

import math
import os
import sys
import time

from ray import tune
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from pgu_rllib.rllib import keys
from pgu_rllib.rllib.accel.optuna_search import StorageFreeOptunaSearch
from pgu_rllib.service.registry import REGISTRY_ENV, optuna_storage

OBJECTIVE = keys.TUNE_OBJECTIVE
STEPS = keys.ENV_STEPS


def registry():
    """The registry of the running search, from the driver's environment."""
    from pgu_rllib.service.registry import Registry

    url = os.environ.get(REGISTRY_ENV)
    if not url:
        raise RuntimeError(f"{REGISTRY_ENV} is not set: Tune callbacks of a search run in its driver process")
    return Registry(url)


class TuningMeter:
    """The tuning phase's env steps, counted as they are sampled: every trial's every iteration, those of
    ASHA-stopped, failed, restarted and interrupted attempts included, training and evaluation apart.

    Written to the registry's phase timings every ``FLUSH_S`` seconds and at the end (so a ``kill -9``
    loses at most ``FLUSH_S`` of the count). With ``limit`` (``--tuning-env-steps``), ``exhausted()`` tells
    the searcher to start no more trials and the stopper to end the running ones: the tuning phase spends
    ``limit`` training env steps (plus at most one iteration per running trial), counting what earlier
    attempts of this search spent.

    The search's Tune objects find it by search id (``meter(search_id)``): they are pickled with Tune's
    state, and a restore unpickles them in the same driver process."""

    FLUSH_S = 30.0

    def __init__(self, registry, name: str, search_id: int, limit: int | None, seeds_per_trial: int = 1):
        self.registry, self.name, self.limit, self.k = registry, name, limit, seeds_per_trial
        phase = (registry.get_search(name).timings or {}).get("tuning", {})
        self.spent_before = int(phase.get("env_steps", 0))
        self.steps = self.eval_steps = 0  # this attempt's, all flushed or not
        self._flushed_steps = self._flushed_eval = 0
        self._last: dict[str, tuple[int, int]] = {}  # trial id -> (env steps, eval env steps) last seen
        self._t_flush = time.time()
        _METERS[search_id] = self

    def observe(self, trial_id: str, steps: int, eval_steps: int = 0) -> None:
        last_steps, last_eval = self._last.get(trial_id, (0, 0))
        if steps < last_steps:  # the trial restarted from scratch: its earlier attempt stays counted
            last_steps, last_eval = 0, 0
        self.steps += self.k * (steps - last_steps)
        self.eval_steps += self.k * max(0, eval_steps - last_eval)
        self._last[trial_id] = (steps, eval_steps)
        if time.time() - self._t_flush >= self.FLUSH_S:
            self.flush()

    @property
    def spent(self) -> int:
        return self.spent_before + self.steps

    def exhausted(self) -> bool:
        return self.limit is not None and self.spent >= self.limit

    def flush(self) -> None:
        now = time.time()
        self.registry.add_timing(self.name, "tuning", wall_s=now - self._t_flush,
                                 env_steps=self.steps - self._flushed_steps,
                                 eval_env_steps=self.eval_steps - self._flushed_eval)
        self._flushed_steps, self._flushed_eval, self._t_flush = self.steps, self.eval_steps, now


_METERS: dict[int, TuningMeter] = {}


def meter(search_id: int) -> TuningMeter | None:
    return _METERS.get(search_id)


class ResumableOptunaSearch(StorageFreeOptunaSearch):
    """The search's Optuna searcher (``accel.optuna_search``): its storage re-opened from the driver's
    ``PGU_REGISTRY_URL`` after a restore (never pickled), no trial started once ``--tuning-env-steps``
    are spent or ``--trials`` are taken (``taken``), and a trial stopped before the budget told to the study
    as PRUNED."""

    def __getstate__(self):  # the registry's engine is not picklable
        return {**super().__getstate__(), "_pgu_registry": None}

    def reopen_storage(self):
        url = os.environ.get(REGISTRY_ENV)
        return optuna_storage(url) if url else None

    def suggest(self, trial_id):
        m = meter(getattr(self, "pgu_search_id", None))
        if m is not None and m.exhausted():  # --tuning-env-steps spent: start no more trials
            return OptunaSearch.FINISHED
        if self.taken() >= (getattr(self, "pgu_trials", None) or math.inf):  # --trials reached
            return OptunaSearch.FINISHED
        return super().suggest(trial_id)

    def taken(self) -> int:
        """Trials of the search that count against ``--trials``: those the registry holds, and those this searcher
        started that are still running. Tune's own ``num_samples`` is not enough after a ``kill -9``: the resume
        restores a state saved up to 10 s before the kill, which does not know the trials started (and
        recorded) after it, and would start as many again."""
        search_id = getattr(self, "pgu_search_id", None)
        if search_id is None or not getattr(self, "pgu_trials", None):
            return 0
        if getattr(self, "_pgu_registry", None) is None:
            self._pgu_registry = registry()
        recorded = self._pgu_registry.trial_ids(search_id)
        return len(recorded | self.running())

    def on_trial_complete(self, trial_id, result=None, error=False):
        """A trial the scheduler stopped before the budget (ASHA, Wilcoxon, ``--tuning-env-steps``) is PRUNED
        in the study, as Optuna's own pruners leave it: its truncated score is an intermediate value, not
        a final one, so TPE ranks it below every finished trial and optuna-dashboard's filter shows it."""
        budget = getattr(self, "pgu_budget", None)
        if result and not error and budget is not None and int(result.get(STEPS, 0)) < budget and self.is_open(trial_id):
            self.prune(trial_id)
        else:
            super().on_trial_complete(trial_id, result, error)


class BudgetOrFinished(tune.Stopper):
    """Stop at the env-step budget, or at once for a trial the registry already holds as finished
    (a resume restarted it because Tune's last saved state predates its end), or when the tuning
    phase's ``--tuning-env-steps`` are spent (``TuningMeter``)."""

    def __init__(self, budget: int, search_id: int):
        self.budget, self.search_id = budget, search_id
        self._finished = None

    def __getstate__(self):
        return {**self.__dict__, "_finished": None}  # re-read the registry after a restore

    def __call__(self, trial_id, result) -> bool:
        if self._finished is None:
            self._finished = {t["tune_trial_id"] for t in registry().trials(self.search_id) if t["status"] != "error"}
        m = meter(self.search_id)
        if m is not None:  # Tune asks the stopper before the callbacks see the result: count it here first
            m.observe(trial_id, int(result.get(STEPS, 0)), int(result.get(keys.PGU, {}).get(keys.EVAL_ENV_STEPS) or 0))
        return (trial_id in self._finished or int(result.get(STEPS, 0)) >= self.budget
                or (m is not None and m.exhausted()))

    def stop_all(self) -> bool:
        return False


class TrialSpace:
    """Optuna define-by-run: the YAML space, plus the tuning seeds: one per trial (base + trial number),
    or, with ``seeds_per_trial`` k > 1, the same k seeds (base + j) for every trial (paired)."""

    def __init__(self, space, seed_base: int, seeds_per_trial: int = 1):
        self.space, self.seed_base, self.seeds_per_trial = space, seed_base, seeds_per_trial

    def __setstate__(self, state):  # searcher states pickled before seeds_per_trial existed
        self.__dict__.update({"seeds_per_trial": 1, **state})

    def __call__(self, trial) -> dict:
        constants = self.space(trial)
        if self.seeds_per_trial == 1:
            constants.setdefault("seed", self.seed_base + trial.number)
        else:
            constants.setdefault("seed", self.seed_base)
            constants.setdefault("pgu_seeds", [self.seed_base + j for j in range(self.seeds_per_trial)])
        return constants


def config_hash(config: dict, budget: int, protocol: dict | None = None) -> str:
    """What a run ran, as 16 hex digits: its resolved configuration without the seed, its budget and
    the evaluation protocol. Rows are reused on resume only when this and the seed match.

    The configuration counts by its values that differ from ``PGUConfig``'s defaults, so a key a later
    pgu-rllib adds (at the default that keeps the old behaviour) leaves every stored hash valid."""
    import hashlib
    import json

    skip = {"seed", "pgu_seeds", "pgu_task", "callbacks_class", "env", "env_runner_cls", "_rl_module_spec",
            "rl_module_spec", "env_to_module_connector", "module_to_env_connector"}
    defaults = _default_config()
    resolved = {k: v for k, v in sorted(config.items())
                if k not in skip and not (k in defaults and _same(defaults[k], v))}
    text = json.dumps({"config": resolved, "budget": budget, "protocol": protocol}, sort_keys=True, default=_stable)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_DEFAULTS: dict | None = None


def _default_config() -> dict:
    global _DEFAULTS
    if _DEFAULTS is None:
        from pgu_rllib.rllib.algorithm import PGUConfig

        _DEFAULTS = PGUConfig().to_dict()
    return _DEFAULTS


def _same(a, b) -> bool:
    import json

    return json.dumps(a, sort_keys=True, default=_stable) == json.dumps(b, sort_keys=True, default=_stable)


def _stable(obj) -> str:
    """A JSON stand-in for objects in a config (classes, functions, dataclasses): their qualified name
    and, for dataclasses and plain objects, their fields."""
    import dataclasses

    if isinstance(obj, type) or callable(obj):
        return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', type(obj).__name__)}"
    if dataclasses.is_dataclass(obj):
        return repr(sorted(dataclasses.asdict(obj).items()))
    return repr(obj)


def short_dirname(trial) -> str:
    """``PGU_<trial id>_<key params>``: the trial's sampled values in its folder name (as Tune's default
    does), shortened so the path stays usable: at most 6 keys, 3 significant digits, 100 characters."""
    import re

    params = getattr(trial, "evaluated_params", None) or {}
    job = (trial.config or {}).get("job") if isinstance(trial.config, dict) else None
    if isinstance(job, dict):  # a selection or test run: its candidate and seed
        params = {"c": job.get("candidate"), "seed": job.get("seed")}
    tag = ",".join(f"{str(k).split('/')[-1]}={v:.3g}" if isinstance(v, float) else f"{str(k).split('/')[-1]}={v}"
                   for k, v in list(params.items())[:6] if k != "seed" or job)
    tag = re.sub(r"[^A-Za-z0-9=.,_-]", "", tag)
    name = "PGU" if trial.trainable_name == "PGUTrial" else trial.trainable_name  # tuning trials: PGU_<id>, as ever
    return f"{name}_{trial.trial_id}" + (f"_{tag}"[:100] if tag else "")


def sampled_params(config: dict, keys: set[str]) -> dict:
    """The keys a search varied, read off a trial's config (``lambda_`` is ``lambda``)."""
    out = {}
    for key in sorted(keys):
        attr = "lambda_" if key == "lambda" else key
        value = config.get(key, config.get(attr))
        if value is not None:  # e.g. alpha_o exists only when scale is mla
            out[key] = value
    return out


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


PROGRESS_S = 30.0  # a progress line at most this often while runs are going


class _Recorder(tune.Callback):
    """Base of the two recorders: keeps each trial's objective curve, pickles without state, and every
    ``PROGRESS_S`` seconds prints one line of the phase's progress (runs going and done, env steps against
    the plan, the best score so far, an estimate of the time left)."""

    def __init__(self, search_id: int, total: int, label: str, planned_steps: int | None = None,
                 phase: str = "tuning"):
        self.search_id, self.total, self.label = search_id, total, label
        self.planned_steps, self.phase = planned_steps, phase
        self._curves: dict[str, list] = {}
        self._done, self._t0 = 0, time.time()
        self._registry = None
        self._steps: dict[str, int] = {}  # trial id -> its latest env steps
        self._t_line = time.time()

    def _reg(self):
        if self._registry is None:
            self._registry = registry()
        return self._registry

    def __getstate__(self):  # the engine is not picklable; Tune pickles callbacks for restore
        return {**self.__dict__, "_registry": None}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        obj = result.get(OBJECTIVE, result.get(keys.PGU, {}).get(keys.OBJECTIVE))
        if obj is not None and math.isfinite(obj):
            curve, point = self._curves.setdefault(trial.trial_id, []), [int(result.get(STEPS, 0)), float(obj)]
            if curve and curve[-1][0] == point[0]:  # the final report repeats the last step with its score
                curve[-1] = point
            else:
                curve.append(point)
        self._steps[trial.trial_id] = int(result.get(STEPS, 0))
        if time.time() - self._t_line >= PROGRESS_S:
            self._t_line = time.time()
            running = sum(1 for t in trials if t.status == "RUNNING")
            self._line(self._progress(running))

    def _best_so_far(self):
        return None

    def _spent(self) -> int:
        m = meter(self.search_id) if self.phase == "tuning" else None
        return m.spent if m is not None else sum(self._steps.values())

    def _progress(self, running: int) -> str:
        spent, elapsed = self._spent(), time.time() - self._t0
        line = f"{self.phase}: {running} running, {self._done}/{self.total} done, {spent:,} env steps"
        if self.planned_steps:
            line += f" of ~{self.planned_steps:,}"
            if spent > 0 and elapsed > 0:
                left = max(0.0, elapsed * (self.planned_steps - spent) / spent)
                line += f", about {left / 60:.0f} min left"
        best = self._best_so_far()
        return line + ("" if best is None else f", best {_fmt(best)}")

    def _line(self, text: str) -> None:
        print(f"{self.label} {text} | {time.time() - self._t0:6.0f}s", file=sys.stderr, flush=True)


class RecordTrials(_Recorder):
    """Writes one registry row per finished tuning trial and prints a progress line."""

    def __init__(self, search_id: int, keys: set[str], total: int, budget: int, label: str, schedules=None,
                 space: dict | None = None, planned_steps: int | None = None):
        super().__init__(search_id, total, label, planned_steps, "tuning")
        self.keys, self.budget, self.schedules, self.space = keys, budget, schedules, space or {}
        self._best, self._known = None, None

    def __getstate__(self):
        return {**super().__getstate__(), "_known": None}

    def _best_so_far(self):
        return self._best

    def on_trial_result(self, iteration, trials, trial, result, **info):
        super().on_trial_result(iteration, trials, trial, result, **info)
        if self.schedules is not None:  # a population: say when a member's values change (PBT/PB2 explore)
            now = {k: trial.config.get(k) for k in sorted(self.keys - {"seed", "pgu_schedule"})
                   if k in trial.config}
            seen = self.__dict__.setdefault("_values", {})
            before = seen.get(trial.trial_id)
            if before is not None and before != now:
                changes = ", ".join(f"{k} {_fmt(before.get(k))} -> {_fmt(v)}" for k, v in now.items()
                                    if before.get(k) != v)
                self._line(f"population: trial {trial.trial_id} now trains with {changes} "
                           f"(at {int(result.get(STEPS, 0)):,} env steps)")
            seen[trial.trial_id] = now

    def _record(self, trial, status: str) -> None:
        if self._known is None:  # rows written before a restore are final (errors may be re-run)
            rows = self._reg().trials(self.search_id)
            self._known = {t["tune_trial_id"] for t in rows if t["status"] != "error"}
            scores = [t["score"] for t in rows if t["status"] != "error" and t["score"] is not None]
            self._best = max(scores, default=None)
        if trial.trial_id in self._known:
            return
        last = trial.last_result or {}
        pgu = last.get(keys.PGU, {})
        score = pgu.get(keys.OBJECTIVE)
        steps = int(last.get(STEPS, 0))
        if status == "complete" and steps < self.budget:
            status = "stopped_early"
        from pgu_rllib.service.spaces import active_keys

        params = sampled_params(trial.config, self.keys | active_keys(self.space, trial.config))
        metrics = {"train_return": pgu.get(keys.EPISODE_RETURN_MEAN), "eval_return": pgu.get(keys.EVAL_RETURN_MEAN),
                   "eval_env_steps": int(pgu.get(keys.EVAL_ENV_STEPS) or 0)}
        if self.schedules is not None:  # a population member: the values its weights were trained with
            params["pgu_schedule"] = self.schedules(trial.trial_id, trial.config)
        self._reg().record_trial(
            self.search_id, tune_trial_id=trial.trial_id, params=params, score=score, env_steps=steps,
            iterations=int(last.get("training_iteration", 0)), status=status, node_id=pgu.get(keys.NODE_ID),
            curve=self._curves.get(trial.trial_id, []), metrics=metrics,
            config_hash=config_hash(trial.config, self.budget))
        self._known.add(trial.trial_id)
        self._done = len(self._reg().trial_ids(self.search_id))  # a re-run replaces its error row
        if score is not None and status != "error" and (self._best is None or score > self._best):
            self._best = score
        shown = {k: v for k, v in params.items() if k != "pgu_schedule"}
        self._line(f"trial {self._done}/{self.total} {status:<13} score {_fmt(score):>9} | best {_fmt(self._best):>9} "
                   f"| {', '.join(f'{k}={_fmt(v)}' for k, v in shown.items())}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._record(trial, "complete")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._record(trial, "error")


class RecordEvaluations(_Recorder):
    """Writes each finished selection or test run to the registry at once (so a kill loses none); its
    progress lines count the runs of the phase ``PhaseQueue`` began last."""

    def __init__(self, search_id: int, label: str, budget: int):
        super().__init__(search_id, 0, label, None, "selection")
        self.budget = budget

    def begin(self, phase: str, total: int) -> None:
        self.phase, self.total, self.planned_steps = phase, total, total * self.budget
        self._done, self._t0, self._steps = 0, time.time(), {}

    def on_trial_complete(self, iteration, trials, trial, **info):
        last = trial.last_result or {}
        if "score" not in last:
            return
        job = trial.config["job"]
        self._reg().record_evaluation(self.search_id, job["phase"], {
            "candidate": job["candidate"], "seed": job["seed"], "params": job["params"], "score": float(last["score"]),
            "node_id": last.get(keys.NODE_ID), "curve": self._curves.get(trial.trial_id, []),
            "wall_s": float(last.get("time_total_s", 0.0)), "config_hash": job.get("config_hash"),
            "policy_path": last.get("policy_path"), "eval_env_steps": int(last.get(keys.EVAL_ENV_STEPS, 0))})
        self._done += 1
        self._line(f"{self.phase} run {self._done}/{self.total} candidate {job['candidate']} seed {job['seed']} "
                   f"score {_fmt(float(last['score']))}")


class PhaseQueue(Searcher):
    """Tune's search algorithm for the selection and test runs, in one Tune run: it hands out the first
    phase's jobs (``phases._Stage``) and, once every one has finished, asks ``then`` for the next phase (the
    test runs of the winner the selection runs chose; None: no next phase). With ``reuse_actors`` the worker
    that ran the last selection run goes on to the test runs: one worker start (torch and RLlib imports,
    the first build) fewer per search. Never restored from Tune's state: a resume plans the phases again
    from the registry's rows (``phases.run_phase``)."""

    def __init__(self, first, then, recorder: RecordEvaluations):
        super().__init__()
        self._then, self._recorder = then, recorder
        self._queue: list[dict] = []
        self._running: set[str] = set()
        self._begin(first)

    def _begin(self, stage) -> None:
        stage.t0, self._stage, self._queue = time.time(), stage, list(stage.configs)
        self._recorder.begin(stage.phase.value, len(stage.configs))

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # the jobs are the whole configuration

    def suggest(self, trial_id: str):
        if not self._queue and not self._running and self._then is not None:
            then, self._then = self._then, None
            self._stage.t1 = time.time()
            stage = then()
            if stage is not None and stage.configs:
                self._begin(stage)
        if self._queue:
            self._running.add(trial_id)
            return {"job": self._queue.pop(0)}
        return None if self._running else Searcher.FINISHED

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        self._running.discard(trial_id)

    def save(self, checkpoint_path: str) -> None:  # nothing to restore (see the class)
        pass

    def restore(self, checkpoint_path: str) -> None:
        pass

    def __getstate__(self):  # Tune pickles its search algorithm with the experiment; the stages hold the registry
        return {}
