"""The private-API guards (``pgu_rllib.rllib.compat``): the patched env runner samples exactly what
RLlib's runner samples; ``PGU_DISABLE_RAY_PATCHES=1`` runs RLlib's own runner and optimiser step
with the same update; a Ray without an attribute we need fails at once, naming it."""
import copy

import gymnasium as gym
import numpy as np
import pytest
import ray
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

from pgu_rllib.rllib import compat
from pgu_rllib.rllib._env_runner import PGUEnvRunner
from pgu_rllib.tasks.training import build_config


def _columns(episodes):
    return {k: np.concatenate([np.asarray(getter(e)) for e in episodes]) for k, getter in {
        "obs": lambda e: e.get_observations(), "actions": lambda e: e.get_actions(),
        "rewards": lambda e: e.get_rewards(),
        "logp": lambda e: e.get_extra_model_outputs(Columns.ACTION_LOGP)}.items()}


@pytest.mark.parametrize("task", ["cartpole", "hopper"])  # one env; 16 envs with the MeanStdFilter
def test_patched_env_runner_samples_what_rllibs_runner_samples(task):
    config = build_config(task, "ppo", {}, seed=7, budget=10_000)
    assert config.env_runner_cls is PGUEnvRunner
    samples = []
    for cls in (PGUEnvRunner, SingleAgentEnvRunner):
        torch.manual_seed(7)
        runner = cls(config=config)
        samples.append(_columns(runner.sample(num_timesteps=600) + runner.sample(num_timesteps=600)))
    for key in samples[0]:
        assert np.array_equal(samples[0][key], samples[1][key]), key


def test_disabling_the_patches_runs_rllibs_own_path_with_the_same_update(monkeypatch):
    def update(disabled: bool):
        monkeypatch.setenv(compat.DISABLE_ENV, "1" if disabled else "0")
        config = build_config("cartpole", "ppo", {}, seed=0, budget=10_000)
        assert (config.env_runner_cls is None) is disabled  # None: RLlib picks its own runner
        learner = config.build_learner(env=gym.make("CartPole-v1"))
        assert learner.get_optimizer().defaults["fused"] is not disabled
        torch.manual_seed(0)
        learner.module["default_policy"].load_state_dict(initial)
        learner.update(episodes=copy.deepcopy(episodes), timesteps={"num_env_steps_sampled_lifetime": 512},
                       num_epochs=2, minibatch_size=64, shuffle_batch_per_epoch=False)
        return {k: v.detach().clone() for k, v in learner.module["default_policy"].state_dict().items()}

    config = build_config("cartpole", "ppo", {}, seed=0, budget=10_000)
    ref = config.build_learner(env=gym.make("CartPole-v1"))
    initial = copy.deepcopy(ref.module["default_policy"].state_dict())
    runner = SingleAgentEnvRunner(config=config)
    runner.set_state(ref.get_state(components="rl_module"))
    episodes = runner.sample(num_timesteps=512)
    patched, stock = update(False), update(True)
    for name in patched:
        assert torch.allclose(patched[name], stock[name], atol=1e-6), name


def test_patches_are_off_on_another_ray_version(monkeypatch):
    compat._version_ok.cache_clear()
    monkeypatch.setattr(ray, "__version__", "2.61.0")
    try:
        assert not compat.patches_enabled()
    finally:
        compat._version_ok.cache_clear()
    monkeypatch.setattr(ray, "__version__", compat.TESTED_RAY)
    monkeypatch.delenv(compat.DISABLE_ENV, raising=False)
    assert compat.patches_enabled()


def test_a_missing_private_attribute_is_named():
    class Old:
        pass

    with pytest.raises(RuntimeError, match=r"resuming an Optuna search needs Old._ot_trials, which ray .* lacks"):
        compat.require(Old, ("_ot_trials",), "resuming an Optuna search")
