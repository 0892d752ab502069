"""The fused optimiser step (issue 6) does RLlib's arithmetic: same clip, same Adam, same NaN guard."""
import copy

import gymnasium as gym
import pytest
import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.utils.torch_utils import clip_gradients

from pgu_rllib.rllib._fast_update import clip_by_global_norm
from pgu_rllib.rllib.learner import PGUTorchLearner
from pgu_rllib.tasks.training import build_config


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])  # clip inactive, near, active
def test_clip_by_global_norm_equals_rllib(scale):
    torch.manual_seed(0)
    grads = [torch.randn(64, 17) * scale, torch.randn(64) * scale, torch.randn(6, 64) * scale]
    ours = {i: g.clone() for i, g in enumerate(grads)}
    theirs = {i: g.clone() for i, g in enumerate(grads)}
    n_ours = clip_by_global_norm(ours, grad_clip=0.5, grad_clip_by="global_norm")
    n_theirs = clip_gradients(theirs, grad_clip=0.5, grad_clip_by="global_norm")
    assert torch.allclose(n_ours, n_theirs, rtol=1e-6)
    for i in ours:
        assert torch.allclose(ours[i], theirs[i], rtol=1e-5, atol=1e-7)
    clipped = float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in ours.values()])))
    assert clipped == pytest.approx(min(float(n_ours), 0.5), rel=1e-4)


class RLlibStepLearner(PGUTorchLearner):
    """The same loss with RLlib's own optimiser step, for comparison."""

    configure_optimizers_for_module = PPOTorchLearner.configure_optimizers_for_module
    _get_clip_function = staticmethod(PPOTorchLearner._get_clip_function)
    apply_gradients = PPOTorchLearner.apply_gradients


def _learners():
    config = build_config("halfcheetah", "ppo", {}, seed=0, budget=10_000)
    env = gym.make("HalfCheetah-v5")
    fast = config.build_learner(env=env)
    slow = config.copy(copy_frozen=False).learners(learner_class=RLlibStepLearner).build_learner(env=env)
    slow.set_state(fast.get_state(components="rl_module"))
    episodes = SingleAgentEnvRunner(config=config).sample(num_timesteps=256)
    return fast, slow, episodes


def test_update_matches_rllib_step():
    torch.manual_seed(0)
    fast, slow, episodes = _learners()
    assert fast.get_optimizer().defaults["fused"] and not slow.get_optimizer().defaults["fused"]
    start = {k: v.detach().clone() for k, v in fast.module["default_policy"].named_parameters()}
    for learner in (fast, slow):
        learner.update(episodes=copy.deepcopy(episodes),  # the learner connector edits episodes
                       timesteps={"num_env_steps_sampled_lifetime": 256},
                       num_epochs=2, minibatch_size=64, shuffle_batch_per_epoch=False)
    p_fast = dict(fast.module["default_policy"].named_parameters())
    p_slow = dict(slow.module["default_policy"].named_parameters())
    for name, p in p_fast.items():
        assert torch.allclose(p, p_slow[name], atol=1e-6), name
    assert sum(not torch.equal(p, start[n]) for n, p in p_fast.items()) >= len(p_fast) - 1  # it really trained


def test_nan_gradient_takes_rllib_path():
    fast, _, _ = _learners()
    params = list(fast._params.values())
    before = [p.detach().clone() for p in params]
    grads = {pid: torch.zeros_like(p) for pid, p in fast._params.items()}
    first = next(iter(grads))
    grads[first] = torch.full_like(grads[first], float("nan"))
    fast.apply_gradients(grads)
    # RLlib's path: the NaN gradient becomes 0 and the step is skipped, so nothing moves.
    assert torch.equal(fast._params[first].grad, torch.zeros_like(grads[first]))
    assert all(torch.equal(b, p.detach()) for b, p in zip(before, params))
