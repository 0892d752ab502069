"""Spec §5: the ``ppo`` preset (form V, ppo_clip(ε), Δ_R = advantage, τ = 1) gives exactly
the gradient of RLlib's own ``PPOTorchLearner`` on the same batch and weights (atol 1e-6),
with the KL penalty on and off. No ``ray.init``: learners are built locally."""
import gymnasium as gym
import pytest
import torch
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

from pgu_rllib import PRESETS, PGUConfig

BATCH = 512


def _configure(config, env_id, use_kl):
    config = (config.environment(env_id).env_runners(num_env_runners=0).debugging(seed=3)
              .training(train_batch_size_per_learner=BATCH, minibatch_size=BATCH, num_epochs=1,
                        lr=1e-3, clip_param=0.2, use_kl_loss=use_kl, kl_coeff=0.3,
                        entropy_coeff=0.01, vf_loss_coeff=0.5, vf_clip_param=10.0))
    return config


def _grads(learner, batch):
    """Named gradients of the learner's total loss on ``batch`` (no optimizer step)."""
    fwd_out = learner.module.forward_train(batch)
    losses = learner.compute_losses(fwd_out=fwd_out, batch=batch)
    learner.compute_gradients(losses)
    module = learner.module["default_policy"]
    return {n: p.grad.detach().clone() for n, p in module.named_parameters() if p.grad is not None}


def _perturb(learner):
    with torch.no_grad():
        for p in learner.module["default_policy"].parameters():
            p.add_(0.05 * torch.randn_like(p))


@pytest.mark.parametrize("env_id", ["CartPole-v1", "HalfCheetah-v5"])
@pytest.mark.parametrize("use_kl", [False, True])
def test_ppo_preset_gradient_equals_rllib_ppo(env_id, use_kl):
    ppo_cfg = _configure(PPOConfig(), env_id, use_kl)
    pgu_cfg = _configure(PGUConfig(), env_id, use_kl).update_from_dict(
        {**PRESETS["ppo"], "use_kl_loss": use_kl, "epsilon": 0.2})
    env = gym.make(env_id)
    ppo = ppo_cfg.build_learner(env=env)
    pgu = pgu_cfg.build_learner(env=env)
    pgu.set_state(ppo.get_state(components="rl_module"))  # same weights

    runner = SingleAgentEnvRunner(config=ppo_cfg)
    runner.set_state(ppo.get_state(components="rl_module"))
    episodes = runner.sample(num_timesteps=BATCH, random_actions=False)
    # Move the weights off the behaviour policy so Δ_O ≠ 0 and the clip is active somewhere.
    _perturb(ppo)
    pgu.set_state(ppo.get_state(components="rl_module"))

    batch = ppo._learner_connector(rl_module=ppo.module, batch={}, episodes=episodes,
                                   shared_data={}, metrics=ppo.metrics)
    g_ppo, g_pgu = _grads(ppo, batch), _grads(pgu, batch)

    assert list(g_ppo) == list(g_pgu) and len(g_ppo) > 0
    for name in g_ppo:
        assert torch.allclose(g_ppo[name], g_pgu[name], atol=1e-6, rtol=0), \
            (name, (g_ppo[name] - g_pgu[name]).abs().max())
    vals_ppo = list(g_ppo.values())
    # the check is not vacuous: some samples were clipped, and the gradients are non-zero
    clipped = pgu.metrics.peek(("default_policy", "f_zero_frac"))
    assert 0.0 < float(clipped) < 1.0
    assert max(float(v.abs().max()) for v in vals_ppo) > 1e-3
    if use_kl:
        assert float(pgu.metrics.peek(("default_policy", "mean_kl_loss"))) > 0


def test_other_rule_differs_from_ppo_gradient():
    """Sanity: the comparison can fail, e.g. with scale sq instead of ppo_clip."""
    env_id = "CartPole-v1"
    ppo_cfg = _configure(PPOConfig(), env_id, False)
    pgu_cfg = _configure(PGUConfig(), env_id, False).update_from_dict({**PRESETS["ppo"], "scale": "sq"})
    env = gym.make(env_id)
    ppo, pgu = ppo_cfg.build_learner(env=env), pgu_cfg.build_learner(env=env)
    runner = SingleAgentEnvRunner(config=ppo_cfg)
    runner.set_state(ppo.get_state(components="rl_module"))
    episodes = runner.sample(num_timesteps=BATCH)
    _perturb(ppo)
    pgu.set_state(ppo.get_state(components="rl_module"))
    batch = ppo._learner_connector(rl_module=ppo.module, batch={}, episodes=episodes,
                                   shared_data={}, metrics=ppo.metrics)
    g_ppo, g_pgu = _grads(ppo, batch), _grads(pgu, batch)
    diffs = [float((g_ppo[n] - g_pgu[n]).abs().max()) for n in g_ppo]
    assert max(diffs) > 1e-4
