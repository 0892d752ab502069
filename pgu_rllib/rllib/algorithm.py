"""``PGUConfig`` and ``PGU``: PPO's algorithm with the PGU update rule.

``PGUConfig`` adds the update-rule keys of ``UpdateRule`` (spec §1–§4) to ``PPOConfig``,
settable through ``.training(...)`` or ``update_from_dict`` (how Tune passes them), and
checked in ``validate()``. It also holds three run-level keys that the task recipes set:

* ``pgu_budget``: the run's env-step budget T (MDPO's η_t and ``lr_anneal`` need it);
* ``lr_anneal``: anneal ``lr`` linearly to 0 at T (CleanRL's MuJoCo schedule), so a search
  that samples a float ``lr`` keeps the recipe's shape;
* ``log_std_init``: the initial log-std of a Gaussian policy (RLlib starts it at 0);
* ``pgu_objective``: the tuning objective, ``train`` (recent training returns) or ``eval`` (the
  periodic evaluation every ``pgu_eval_interval`` env steps; see ``callbacks.py``).

Example::

    >>> from pgu_rllib import PGUConfig
    >>> config = (PGUConfig().environment("CartPole-v1")
    ...           .env_runners(num_env_runners=0)
    ...           .training(form="P", scale="mla", alpha_o=1.0, alpha_r=0.5, delta_r="q"))
    >>> config.validate()
"""
from __future__ import annotations

import dataclasses
import math

from ray.rllib.algorithms.algorithm_config import NotProvided
from ray.rllib.algorithms.ppo import PPO, PPOConfig
from ray.rllib.utils import force_list

from pgu_rllib.rllib.accel.guard import patches_enabled
from pgu_rllib.rllib.accel.internals import ModelConfigIncludes
from pgu_rllib.rllib.accel.env_runner import PGUEnvRunner
from pgu_rllib.rllib.accel.torch_lazy import no_compiler_imports
from pgu_rllib.rllib.learner import PGUTorchLearner
from pgu_rllib.rllib.ray_session import quiet_logs
from pgu_rllib.core.scales import scale_params
from pgu_rllib.core.update_rule import KEYS, UpdateRule

OBJECTIVES = ("train", "eval")
# Keys a population-based search may change during training, and a schedule may set: the learner
# reads them at every update (PGUTorchLearner.set_rule_values).
MUTABLE_KEYS = (*scale_params(), "max_kl", "optimism", "ref_kl_coeff", "cg_damping", "lr", "entropy_coeff",
                "vf_loss_coeff", "grad_clip", "kl_coeff")
CALLBACKS_STATE = "pgu_callbacks"  # the key of the callbacks' state in PGU's checkpoint


def _refuse(message: str) -> None:
    """A config outside its domain: one ``ValueError`` naming the key and what is allowed."""
    raise ValueError(message)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _schedule_or(check):
    """A number passing ``check``, or an RLlib schedule ``[[t, v], ...]`` whose values pass it."""
    def ok(v):
        if isinstance(v, (list, tuple)):
            return bool(v) and all(isinstance(p, (list, tuple)) and len(p) == 2 and _number(p[0]) and check(p[1])
                                   for p in v)
        return check(v)
    return ok


_POSITIVE_INT = (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1")
# PPO knobs every recipe, space and --set goes through: (attribute, check, what is allowed).
DOMAINS = {
    "lr": (_schedule_or(lambda v: _number(v) and v > 0), "a finite number > 0 (or a schedule [[t, lr], ...])"),
    "gamma": (lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "lambda_": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "entropy_coeff": (_schedule_or(lambda v: _number(v) and v >= 0), "a finite number >= 0 (or a schedule)"),
    "vf_loss_coeff": (lambda v: _number(v) and v >= 0, "a finite number >= 0"),
    "kl_coeff": (lambda v: _number(v) and v >= 0, "a finite number >= 0"),
    "kl_target": (lambda v: _number(v) and v > 0, "a finite number > 0"),
    "clip_param": (lambda v: _number(v) and v > 0, "a finite number > 0"),
    "vf_clip_param": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
                      "a number > 0 (inf: no clipping)"),
    "grad_clip": (lambda v: v is None or (_number(v) and v > 0), "null or a finite number > 0"),
    "num_epochs": _POSITIVE_INT,
    "minibatch_size": (lambda v: v is None or _POSITIVE_INT[0](v), "null (the whole batch) or an integer >= 1"),
    "train_batch_size_per_learner": _POSITIVE_INT,
    "num_envs_per_env_runner": _POSITIVE_INT,
    "lr_anneal": (lambda v: isinstance(v, bool), "true, false"),
    "rollout_fragment_length": (lambda v: v == "auto" or _POSITIVE_INT[0](v), "auto or an integer >= 1"),
    "batch_mode": (lambda v: v in ("truncate_episodes", "complete_episodes"), "truncate_episodes, complete_episodes"),
    "framework_str": (lambda v: v == "torch", "torch (the PGU learner is a torch learner)"),
    "env_config": (lambda v: isinstance(v, dict), "a mapping of the env's options"),
    "num_env_runners": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0"),
    "num_gpus_per_learner": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "log_std_init": (lambda v: v is None or _number(v), "null or a finite number"),
}


class PGUConfig(ModelConfigIncludes, PPOConfig):
    """``PPOConfig`` plus the update-rule keys; defaults give PPO's clipped update."""

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or PGU)
        for key, value in dataclasses.asdict(UpdateRule()).items():
            setattr(self, key, value)
        self.pgu_task = None  # the pgu task name, set by Task.configure
        self.pgu_budget = None  # env steps of this run, set by Task.configure
        self.lr_anneal = False
        self.log_std_init = None
        self.pgu_schedule = None  # [[env steps, {mutable key: value}], ...]: values put in effect on the way
        self.pgu_objective = "train"  # the tuning objective: training returns, or the periodic evaluation
        self.pgu_eval_interval = None  # env steps between periodic evaluations (default: a tenth of the budget)
        if patches_enabled():
            self.env_runner_cls = PGUEnvRunner  # RLlib's runner minus per-step connector timers

    def training(self, **kwargs) -> "PGUConfig":
        """PPO's ``training()`` plus the update-rule keys (``UpdateRule``'s fields) and
        ``lr_anneal``."""
        ours = {k: kwargs.pop(k) for k in (*KEYS, "lr_anneal") if k in kwargs}
        super().training(**kwargs)
        for key, value in ours.items():
            if value is not NotProvided:
                setattr(self, key, value)
        return self

    def model_config_includes(self) -> dict:
        """What every module's model config carries besides RLlib's own (``accel.internals``)."""
        extra = {}
        if self.parameterisation == "logit":  # the logit modules emit q/τ, so they need τ (spec §2)
            extra["pgu_tau"] = float(self.tau)
        if self.log_std_init is not None:
            extra["pgu_log_std_init"] = float(self.log_std_init)
        return extra

    def update_rule(self) -> UpdateRule:
        """This config's update rule as a plain ``UpdateRule``."""
        return UpdateRule.from_object(self)

    def validate(self) -> None:
        for attr, (ok, allowed) in DOMAINS.items():  # before RLlib's checks, which can crash on bad types
            value = getattr(self, attr)
            if not ok(value):
                name = {"framework_str": "framework"}.get(attr, attr.rstrip("_"))
                _refuse(f"{name}={value!r} is not allowed; allowed: {allowed}")
        if isinstance(self.pgu_budget, int) and self.train_batch_size_per_learner > self.pgu_budget:
            _refuse(f"train_batch_size_per_learner={self.train_batch_size_per_learner!r} is larger than the "
                              f"run's budget of {self.pgu_budget:,} env steps: one iteration would sample past it; "
                              f"allowed: at most the budget")
        super().validate()
        try:
            self.update_rule().validate()
        except ValueError as err:
            _refuse(str(err))
        if self.delta_r == "return" and self.batch_mode != "complete_episodes":
            _refuse("delta_r='return' (Monte-Carlo returns) needs batch_mode='complete_episodes'; "
                              "a cut episode chunk has no return-to-go")
        needs_budget = [k for k, on in (("kl_schedule='mdpo'", self.use_kl_loss and self.kl_schedule == "mdpo"),
                                        ("lr_anneal=true", self.lr_anneal)) if on]
        if needs_budget and not (isinstance(self.pgu_budget, int) and self.pgu_budget > 0):
            _refuse(f"{needs_budget[0]} needs pgu_budget, the run's env steps (a positive integer); "
                              f"got {self.pgu_budget!r}")
        if self.delta_r == "group" and int((self.env_config or {}).get("group_size", 1)) < 2:
            _refuse("delta_r='group' (GRPO) needs several actions sampled for each state: an env that "
                              "takes group_size >= 2 in env_config (the bandit: --set "
                              "'env_config={n_actions: 8, group_size: 8}'); the other tasks cannot")
        if self.pgu_schedule is not None:
            _check_schedule(self.pgu_schedule, _refuse)
        if self.pgu_objective not in OBJECTIVES:
            _refuse(f"pgu_objective={self.pgu_objective!r} is not allowed; allowed: {', '.join(OBJECTIVES)}")
        if self.pgu_eval_interval is not None and not _POSITIVE_INT[0](self.pgu_eval_interval):
            _refuse(f"pgu_eval_interval={self.pgu_eval_interval!r} is not allowed; allowed: null or "
                              f"{_POSITIVE_INT[1]}")
        if self.lr_anneal and not isinstance(self.lr, (int, float)):
            _refuse(f"lr_anneal=true needs a number lr, got {self.lr!r}")

    def get_default_learner_class(self):
        return PGUTorchLearner


def discard_logdir(algo) -> None:
    """Remove the empty ``~/ray_results/<timestamp>`` folder Ray 2.60's ``Trainable`` makes for an algorithm built
    outside Tune (inside another trainable, or by ``pgu train``): its results go to the outer trial or nowhere,
    and a search would otherwise leave one folder per run there."""
    import pathlib
    import shutil

    from ray.train.constants import DEFAULT_STORAGE_PATH

    logdir = pathlib.Path(algo.logdir)
    if logdir.parent == pathlib.Path(DEFAULT_STORAGE_PATH) and not any(logdir.iterdir()):
        shutil.rmtree(logdir, ignore_errors=True)


def _check_schedule(schedule, error) -> None:
    ok = isinstance(schedule, list) and all(
        isinstance(e, (list, tuple)) and len(e) == 2 and isinstance(e[0], int) and e[0] >= 0
        and isinstance(e[1], dict) and set(e[1]) <= set(MUTABLE_KEYS) for e in schedule)
    if not ok or [e[0] for e in schedule] != sorted(e[0] for e in schedule):
        error(f"pgu_schedule={schedule!r} is not allowed; allowed: a list of [env steps, {{key: value}}] in "
              f"increasing env steps, with keys among {', '.join(MUTABLE_KEYS)}")


class PGU(PPO):
    """PPO with the PGU learner; Tune dicts merge into ``PGUConfig``. A ``pgu_schedule`` is replayed:
    each entry's values are put in effect before the first iteration that starts at or after its
    env steps."""

    def __init__(self, *args, **kwargs):
        quiet_logs()  # in the trial's own process, before Tune's and RLlib's start-up lines
        no_compiler_imports()  # RLlib seeds with torch.use_deterministic_algorithms (accel.torch_lazy)
        self._schedule_done = 0
        super().__init__(*args, **kwargs)

    def training_step(self) -> None:
        schedule = self.config.pgu_schedule or []
        if self._schedule_done < len(schedule):
            from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME

            steps = self.metrics.peek((ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0)
            due = {}
            while self._schedule_done < len(schedule) and schedule[self._schedule_done][0] <= steps:
                due.update(schedule[self._schedule_done][1])
                self._schedule_done += 1
            if due:
                self.learner_group.foreach_learner(lambda learner: learner.set_rule_values(due))
        return super().training_step()

    def get_state(self, components=None, *, not_components=None, **kwargs) -> dict:
        """RLlib's state plus the callbacks' (``EpisodeReturns``: the objective's history), so that a
        restored trial scores like one that never stopped."""
        state = super().get_state(components, not_components=not_components, **kwargs)
        if components is None:
            state[CALLBACKS_STATE] = [cb.get_state() if hasattr(cb, "get_state") else None
                                      for cb in force_list(self.callbacks)]
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        for cb, cb_state in zip(force_list(self.callbacks), state.get(CALLBACKS_STATE, [])):
            if cb_state is not None and hasattr(cb, "set_state"):
                cb.set_state(cb_state)

    @classmethod
    def get_default_config(cls) -> PGUConfig:
        return PGUConfig()
