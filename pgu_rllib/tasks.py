"""The task registry: env id, model, default budget, evaluation protocol.

A task also owns its *recipe* (``Task.configure``): the PPO knobs, network
and normalisation every preset trains with, so presets change only the
update rule.

Example::

    >>> get_task("cartpole").env_id
    'CartPole-v1'
"""
from __future__ import annotations

import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    env_id: str
    model: str
    budget: int  # default env steps of one training run
    eval_episodes: int
    eval_deterministic: bool
    floor: float  # lowest possible episode return: the objective before any episode ends
    recipe: Callable  # (PGUConfig) -> PGUConfig
    summarize: Callable | None = None  # (Algorithm) -> extra summary keys, e.g. the bandit's regret

    def describe(self) -> str:
        mode = "deterministic" if self.eval_deterministic else "stochastic"
        return (f"{self.env_id}; model {self.model}; budget {self.budget:,} env steps; "
                f"eval {self.eval_episodes} episodes, {mode}")

    def configure(self, config):
        """Apply this task's env and recipe to a ``PGUConfig`` (returns it)."""
        from pgu_rllib.callbacks import EpisodeReturns

        callback = type("EpisodeReturns", (EpisodeReturns,), {"floor": self.floor})
        config = (config.environment(self.env_id)
                  .env_runners(num_env_runners=0)
                  .callbacks(callback))
        return self.recipe(config)


def _mlp(config, hidden=(64, 64), activation="tanh"):
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    return config.rl_module(model_config=DefaultModelConfig(
        fcnet_hiddens=list(hidden), fcnet_activation=activation, vf_share_layers=False))


def _classic_recipe(config):
    config = config.training(
        lr=3e-4, gamma=0.99, lambda_=0.95, train_batch_size_per_learner=512, minibatch_size=64,
        num_epochs=10, vf_loss_coeff=0.5, vf_clip_param=float("inf"), entropy_coeff=0.0,
        grad_clip=0.5, grad_clip_by="global_norm", use_kl_loss=False)
    return _mlp(config)


TASKS: dict[str, Task] = {
    "cartpole": Task("cartpole", "CartPole-v1", "64-64 tanh actor and critic", 50_000,
                     eval_episodes=10, eval_deterministic=True, floor=0.0, recipe=_classic_recipe),
}


def get_task(name: str) -> Task:
    """Task ``name``; ``ValueError`` lists the known ones."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]
