"""``EpisodeReturns``: an objective that is always present and never NaN.

Ray 2.60's ``env_runners/episode_return_mean`` is per iteration: absent before
the first episode ends and NaN in iterations where none ends (notes §2.4).
This callback records every finished episode's return (the *raw* return when
the env scales rewards and puts the raw one in ``info["raw_reward"]``) and
adds, under ``result["pgu"]``:

* ``episode_return_mean``: mean of the last ``WINDOW`` (10) finished episodes;
  ``None`` until one has finished;
* ``objective``: the same, or the task's floor (the lowest return possible)
  before the first episode, so Tune/Optuna always see a finite number;
* ``episodes_total``: episodes finished so far;
* the task's own metrics (``task.metrics(algorithm)``, e.g. the bandit's exact greedy expected
  reward); a task with an exact objective scores itself (``task.objective(metrics, history)``),
  replacing the episode-return objective.

The task is the object the recipe put in ``config.pgu_task`` (``pgu_rllib.tasks.Task``); this
module only calls its ``floor``, ``metrics`` and ``objective``, so the RLlib layer never
imports the tasks layer. A plain ``PGUConfig`` has no task: the objective is then the episode
return and the floor −1e6.

**The eval objective** (``config.pgu_objective == "eval"``, episodic tasks): every
``pgu_eval_interval`` env steps and at the budget, the task's evaluator scores the current policy
(``task.evaluate``: deterministic, seeded, normalisation frozen; it reads the algorithm and changes
nothing in it), and ``objective`` is the latest evaluation's mean (the floor before the first one),
as RL Zoo's ``TrialEvalCallback`` does. ``eval_return_mean`` and ``eval_env_steps`` (the evaluation's
own env steps, never counted as training steps) are reported with it.

The window, the episode count, the objective history and the evaluation state are part of the
algorithm's checkpoint
(``get_state``/``set_state``, saved by ``PGU.get_state``): a trial that Tune pauses and restores
(PBT/PB2 do it at every perturbation, a resumed search once) goes on with the same area and window
as a run that was never paused.

An episode longer than what one ``sample()`` call collects reaches the callbacks as
chunks with the same id; ``on_episode_end`` sees only the last one. The partial
returns of unfinished chunks are therefore kept per episode id (``on_sample_end``)
and added to the last chunk's return.
"""
from __future__ import annotations

import collections
import math

from ray.rllib.callbacks.callbacks import RLlibCallback

from pgu_rllib.rllib import keys

WINDOW = 10


def chunk_raw_return(episode) -> float:
    """The return of this episode chunk, summing ``info["raw_reward"]`` where the env provides it.

    ``infos[0]`` belongs to the reset, or, in a continuation chunk, to the previous chunk's
    last step, so it is skipped.
    """
    infos = episode.get_infos()[1:]
    raw = [i["raw_reward"] for i in infos if isinstance(i, dict) and "raw_reward" in i]
    return float(sum(raw)) if raw else float(episode.get_return())


class EpisodeReturns(RLlibCallback):
    def __init__(self):
        super().__init__()
        self._window = collections.deque(maxlen=WINDOW)
        self._total = 0
        self._partial: dict[str, float] = {}  # episode id -> return of its earlier chunks
        self._history: list[float] = []  # the task's objective metric, one per iteration
        self._eval: float | None = None  # the latest periodic evaluation's mean (objective "eval")
        self._eval_steps = 0  # env steps the periodic evaluations took
        self._next_eval = 0  # env steps at which the next periodic evaluation is due

    def get_state(self) -> dict:
        """What a checkpoint keeps: the return window, the episode count, the objective history and the
        periodic evaluation's state."""
        return {"window": list(self._window), "total": self._total, "history": list(self._history),
                "eval": self._eval, "eval_steps": self._eval_steps, "next_eval": self._next_eval}

    def set_state(self, state: dict) -> None:
        self._window = collections.deque(state["window"], maxlen=WINDOW)
        self._total, self._history = int(state["total"]), list(state["history"])
        self._eval, self._eval_steps = state.get("eval"), int(state.get("eval_steps", 0))
        self._next_eval = int(state.get("next_eval", 0))
        self._partial = {}  # a restored run starts new episodes

    def on_algorithm_init(self, *, algorithm, **kwargs):
        import torch

        torch.set_num_threads(1)  # one torch thread per trial process (oversubscription costs 10x)

    def on_sample_end(self, *, samples, **kwargs):
        for chunk in samples:
            if not chunk.is_done:  # the episode goes on in the next sample() call
                self._partial[chunk.id_] = self._partial.get(chunk.id_, 0.0) + chunk_raw_return(chunk)

    def on_episode_end(self, *, episode, metrics_logger=None, **kwargs):
        total = self._partial.pop(episode.id_, 0.0) + chunk_raw_return(episode)
        if metrics_logger is not None:
            metrics_logger.log_value(keys.EPISODE_RETURNS, total, reduce="item_series")

    def on_train_result(self, *, algorithm, metrics_logger=None, result, **kwargs):
        _drop_non_finite(result.get("env_runners", {}))
        returns = result.get("env_runners", {}).pop(keys.EPISODE_RETURNS, None)
        if returns is None:
            returns = []
        elif not isinstance(returns, (list, tuple)):  # item_series reduces a single item to a scalar
            returns = [returns]
        finite = [float(r) for r in returns if math.isfinite(float(r))]
        self._window.extend(finite)
        self._total += len(finite)
        mean = sum(self._window) / len(self._window) if self._window else None
        task = getattr(algorithm.config, "pgu_task", None)
        floor = task.floor if task is not None else -1e6
        pgu = result[keys.PGU] = {
            keys.EPISODE_RETURN_MEAN: mean,
            keys.OBJECTIVE: mean if mean is not None else float(floor),
            keys.EPISODES_TOTAL: self._total,
            keys.EPISODES_THIS_ITER: len(finite),
            keys.NODE_ID: _node_id(),
        }
        if task is not None and task.metrics is not None:
            metrics = task.metrics(algorithm)
            pgu.update(metrics)
            objective = task.objective(metrics, self._history)
            if objective is not None:
                pgu[keys.OBJECTIVE] = objective
        if getattr(algorithm.config, "pgu_objective", "train") == "eval" and task is not None and task.episodic:
            self._periodic_eval(algorithm, int(result.get(keys.ENV_STEPS, 0)))
            pgu[keys.OBJECTIVE] = self._eval if self._eval is not None else float(floor)
            pgu[keys.EVAL_RETURN_MEAN] = self._eval
            pgu[keys.EVAL_ENV_STEPS] = self._eval_steps

    def _periodic_eval(self, algorithm, steps: int) -> None:
        """Evaluate when ``pgu_eval_interval`` env steps have passed since the last one, or at the budget."""
        config = algorithm.config
        budget = int(config.pgu_budget or 0)
        if steps >= self._next_eval or (budget and steps >= budget):
            ev = config.pgu_task.evaluate(algorithm)
            self._eval, self._eval_steps = ev.mean, self._eval_steps + ev.env_steps
            interval = int(config.pgu_eval_interval or max(1, budget // 10))
            self._next_eval = (steps // interval + 1) * interval


def _drop_non_finite(results: dict) -> None:
    """Remove RLlib's NaN episode statistics of an iteration in which no episode ended (Ray 2.60 reports them
    as NaN): the result's loggers would print a warning for each, and ``pgu/objective`` says the same thing
    without NaN."""
    for key in [k for k, v in results.items() if isinstance(v, float) and not math.isfinite(v)]:
        del results[key]
    for value in results.values():
        if isinstance(value, dict):
            _drop_non_finite(value)


def _node_id() -> str | None:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
