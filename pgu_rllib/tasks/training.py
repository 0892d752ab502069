"""One training run: build a config from task + preset + overrides, train, summarise.

Example::

    >>> from pgu_rllib.tasks.training import build_config
    >>> cfg = build_config("cartpole", "ppo", {"lr": 1e-3}, seed=0)
    >>> cfg.lr, cfg.scale
    (0.001, 'ppo_clip')
"""
from __future__ import annotations

import sys
import time

from pgu_rllib.core.presets import get_preset
from pgu_rllib.tasks import get_task
from pgu_rllib.core.update_rule import KEYS
from pgu_rllib.rllib import keys


def allowed_keys() -> set[str]:
    """Config keys a preset or ``--set`` may name: ``PGUConfig.to_dict()`` keys (``model_config``
    is a dict merged into the task's model, see ``build_config``)."""
    from pgu_rllib.rllib.algorithm import PGUConfig

    keys = set(PGUConfig().to_dict())
    return keys | {k.lstrip("_") for k in keys}


def _apply_model_config(config, overrides: dict):
    """Merge ``overrides`` into the config's model config (a ``DefaultModelConfig``)."""
    import dataclasses

    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    if not isinstance(overrides, dict):
        raise ValueError(f"model_config={overrides!r} is not allowed; allowed: a mapping of DefaultModelConfig fields")
    fields = {f.name for f in dataclasses.fields(DefaultModelConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"model_config: unknown field(s) {', '.join(unknown)}; allowed: DefaultModelConfig fields")
    from pgu_rllib.rllib.accel import internals

    current = internals.model_config(config)
    current = dataclasses.asdict(current) if dataclasses.is_dataclass(current) else dict(current)
    return config.rl_module(model_config=DefaultModelConfig(**{**current, **overrides}))


def build_config(task: str, preset: str = "ppo", overrides: dict | None = None, seed: int = 0,
                 budget: int | None = None):
    """A validated ``PGUConfig`` for ``task`` (recipe sized for ``budget`` env steps) with
    ``preset`` then ``overrides`` applied."""
    from pgu_rllib.rllib.algorithm import PGUConfig

    t = get_task(task)
    point = {**get_preset(preset), **(overrides or {})}
    model = point.pop("model_config", None)
    known = allowed_keys()
    unknown = sorted(k for k in point if k not in known)
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(unknown)}; "
                         f"allowed: update-rule keys {', '.join(KEYS)} or any PPOConfig key")
    defaults = PGUConfig()
    for key, value in point.items():  # RLlib merges a mapping key into its default: refuse a non-mapping first
        if isinstance(getattr(defaults, key, None), dict) and not isinstance(value, dict):
            raise ValueError(f"{key}={value!r} is not allowed; allowed: a mapping (e.g. {key}={{option: value}})")
    config = t.configure(PGUConfig(), budget).update_from_dict(point).debugging(seed=seed)
    if model is not None:
        config = _apply_model_config(config, model)
    config.validate()
    return config


def config_summary(config) -> dict:
    """The keys a person reads: the update rule and the PPO knobs that shape it."""
    out = {k: getattr(config, k) for k in KEYS}
    for k in ("lr", "lr_anneal", "gamma", "lambda_", "num_epochs", "minibatch_size", "train_batch_size_per_learner",
              "use_kl_loss", "kl_coeff", "entropy_coeff", "vf_loss_coeff", "grad_clip"):
        out[k.rstrip("_")] = getattr(config, k)
    return out


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def train(task: str, preset: str = "ppo", overrides: dict | None = None, env_steps: int | None = None,
          seed: int = 0, progress=_progress, save_policy: str | None = None) -> dict:
    """Train once on a local (or the current) Ray and return a JSON-able summary.

    ``env_steps_per_s`` counts training iterations only; ``startup_s`` is the
    time to start Ray and build the algorithm. On an episodic task ``eval_return_mean`` is the
    evaluator's score of the final policy (the score a search would store), and ``save_policy``
    writes that policy for ``pgu rollout``.
    """
    from pgu_rllib.rllib.ray_session import ensure_ray

    t0 = time.perf_counter()
    if save_policy and not get_task(task).episodic:
        raise ValueError(f"--save-policy={save_policy!r}: task {task!r} is scored exactly and stores no policy; "
                         f"allowed with the episodic tasks")
    budget = int(env_steps or get_task(task).budget)
    config = build_config(task, preset, overrides, seed, budget)
    if ensure_ray():  # a local Ray: a run that asks for more than this machine has would wait forever
        import ray

        from pgu_rllib.rllib.resources import check_fits

        check_fits(config.to_dict(), ray.cluster_resources())
    from pgu_rllib.rllib.algorithm import discard_logdir

    algo = config.build_algo()
    discard_logdir(algo)
    startup_s = time.perf_counter() - t0
    try:
        result, iter_time = _train_to_budget(algo, get_task(task), budget, t0, progress)
        steps = int(result[keys.ENV_STEPS])
        summary = {
            "task": get_task(task).name,
            "preset": preset,
            "seed": seed,
            "config": config_summary(config),
            "env_steps": steps,
            "iterations": int(result.get("training_iteration", 0)),
            "episodes": result[keys.PGU][keys.EPISODES_TOTAL],
            "episode_return_mean": result[keys.PGU][keys.EPISODE_RETURN_MEAN],
            "env_steps_per_s": steps / iter_time if iter_time > 0 else None,
            "startup_s": startup_s,
            "wall_s": time.perf_counter() - t0,
            "learner": learner_summary(result),
        }
        extra = {k: v for k, v in result[keys.PGU].items()
                 if k not in (keys.EPISODE_RETURN_MEAN, keys.EPISODES_TOTAL, keys.EPISODES_THIS_ITER, keys.OBJECTIVE)}
        summary.update(extra)
        t = get_task(task)
        if t.episodic:
            score, policy, eval_steps = t.score(algo, result)
            summary.update({keys.EVAL_RETURN_MEAN: score, keys.EVAL_ENV_STEPS: eval_steps,
                            "eval_returns": policy.meta["eval_returns"], "eval_protocol": t.evaluation_protocol()})
            if save_policy:
                policy.meta.update(seed=seed, env_steps=steps, preset=preset, overrides=overrides or {})
                summary["policy_path"] = str(policy.save(save_policy))
        return summary
    finally:
        algo.stop()


def _train_to_budget(algo, task, budget: int, t0: float, progress) -> tuple[dict, float]:
    """``algo.train()`` until ``budget`` env steps, a progress line per iteration; the last result and the
    seconds spent in training iterations."""
    steps, iter_time, result = 0, 0.0, {}
    while steps < budget:
        t_iter = time.perf_counter()
        result = algo.train()
        iter_time += time.perf_counter() - t_iter
        steps = int(result[keys.ENV_STEPS])
        pgu = result[keys.PGU]
        ret = pgu[keys.EPISODE_RETURN_MEAN]
        key = task.objective_key
        task_score = "" if key is None else f"  {key} {pgu[key]:.4f}  objective {pgu[keys.OBJECTIVE]:.4f}"
        progress(f"[pgu train] iter {result['training_iteration']:>3}  env_steps {steps:>8,}/{budget:,}  "
                 f"return(last 10) {'-' if ret is None else f'{ret:9.2f}'}{task_score}  "
                 f"steps/s {steps / iter_time:7.0f}  elapsed {time.perf_counter() - t0:6.1f}s")
    return result, iter_time


def learner_summary(result: dict) -> dict:
    """The last iteration's PGU learner metrics (``keys.LEARNER_METRICS``) of the default module, plus
    the values in effect: the update rule's (``rule_<key>``) and the learning rate."""
    module = result.get("learners", {}).get("default_policy", {})
    out = {k: (float(module[k]) if k in module else None) for k in keys.LEARNER_METRICS}
    out.update({k: float(v) for k, v in module.items() if k.startswith("rule_")})
    if "default_optimizer_learning_rate" in module:
        out["learning_rate"] = float(module["default_optimizer_learning_rate"])
    return out
