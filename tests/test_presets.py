"""Each preset is its algorithm (spec §6), checked on the real learner without ``ray.init``:

* reinforce, reinforce_baseline, a2c: one gradient step per batch and Δ_O ≡ 0 exactly;
* reinforce: Δ_R is the Monte-Carlo return-to-go, no baseline, no mean subtraction, no critic;
* reinforce_baseline: Δ_R = G_t − V(s);
* mdpo: the penalty is KL(π_θ‖π_old) (closed form, categorical and Gaussian), coefficient 1/η_t;
* pgpb: E[U] = τ∇J by exact enumeration; sil_scale is named for what it is.
"""
import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

from pgu_rllib import PGUConfig
from pgu_rllib.rllib.learner import mdpo_kl_coeff
from pgu_rllib.core.presets import DESCRIPTIONS, PRESETS
from pgu_rllib.tasks.training import build_config
from pgu_rllib.core.update_rule import UpdateRule

ONE_STEP = ("reinforce", "reinforce_baseline", "a2c")


def _learner_and_runner(config, env):
    learner = config.build_learner(env=env)
    runner = SingleAgentEnvRunner(config=config)
    runner.set_state(learner.get_state(components="rl_module"))
    return learner, runner


def _sample(runner, config):
    """What PPO's training step does with num_env_runners=0: sample until the batch is full."""
    episodes, steps = [], 0
    while steps < config.train_batch_size_per_learner:
        new = runner.sample()
        episodes += new
        steps += sum(len(e) for e in new)
    return episodes, steps


def _update(learner, config, episodes, steps):
    res = learner.update(episodes=episodes, timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: steps},
                         num_epochs=config.num_epochs, minibatch_size=config.minibatch_size,
                         shuffle_batch_per_epoch=True)
    return {k: float(v.peek()) for k, v in res["default_policy"].items() if hasattr(v, "peek")}


def _adam_steps(learner) -> int:
    opt = learner.get_optimizer()
    return int(next(iter(opt.state.values()))["step"])


@pytest.mark.parametrize("preset", ONE_STEP)
def test_one_step_presets_take_one_gradient_step_per_batch_with_zero_delta_o(preset):
    config = build_config("cartpole", preset, {}, seed=3, budget=10_000)
    assert config.num_epochs == 1 and config.minibatch_size is None
    learner, runner = _learner_and_runner(config, gym.make("CartPole-v1"))
    for update in range(1, 4):
        episodes, steps = _sample(runner, config)
        metrics = _update(learner, config, episodes, steps)
        assert metrics["delta_o_abs_max"] == 0.0  # on every minibatch (a max over all of them)
        assert _adam_steps(learner) == update  # exactly one optimiser step per batch
        runner.set_state(learner.get_state(components="rl_module"))


def test_zero_delta_o_of_one_step_presets_only_drops_rounding():
    """Computed instead of set to 0, Δ_O of a one-step update is the rounding between the
    sampler's forward pass (1 row) and the learner's (the whole batch): below 1e-6."""
    config = build_config("cartpole", "a2c", {}, seed=3, budget=10_000)
    learner, runner = _learner_and_runner(config, gym.make("CartPole-v1"))
    episodes, _ = _sample(runner, config)
    module = learner.module["default_policy"]
    diffs = []
    for ep in episodes:
        obs = torch.as_tensor(np.asarray(ep.get_observations()[:-1]), dtype=torch.float32)
        logits = module.forward_train({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
        logp = torch.log_softmax(logits, -1).gather(-1, torch.as_tensor(ep.get_actions()).long()[:, None])[:, 0]
        diffs.append(float((logp.detach() - torch.as_tensor(ep.get_extra_model_outputs(Columns.ACTION_LOGP))).abs().max()))
    assert max(diffs) < 1e-6


def _returns_to_go(rewards, gamma):
    out, g = np.zeros(len(rewards)), 0.0
    for t in reversed(range(len(rewards))):
        g = rewards[t] + gamma * g
        out[t] = g
    return out


def test_reinforce_uses_monte_carlo_returns_of_whole_episodes_without_baseline():
    config = build_config("cartpole", "reinforce", {}, seed=5, budget=10_000)
    assert config.batch_mode == "complete_episodes" and not config.use_critic and not config.normalize_delta_r
    learner, runner = _learner_and_runner(config, gym.make("CartPole-v1"))
    episodes, steps = _sample(runner, config)
    assert all(ep.is_done for ep in episodes)  # whole episodes only
    returns = np.concatenate([_returns_to_go(ep.get_rewards(), config.gamma) for ep in episodes])
    metrics = _update(learner, config, episodes, steps)
    # f = Δ_R at Δ_O = 0 with scale sq: |f| averages the raw returns (no mean removed, no scaling)
    assert metrics["abs_f_mean"] == pytest.approx(float(np.mean(np.abs(returns))), rel=1e-5)
    assert metrics["abs_f_mean"] > 5.0  # a standardised Δ_R would average about 0.8
    assert metrics["vf_loss"] == 0.0  # no critic


def test_reinforce_baseline_subtracts_the_learned_value():
    config = build_config("cartpole", "reinforce_baseline", {}, seed=6, budget=10_000)
    learner, runner = _learner_and_runner(config, gym.make("CartPole-v1"))
    episodes, steps = _sample(runner, config)
    module = learner.module["default_policy"]
    expected = []
    with torch.no_grad():
        for ep in episodes:
            obs = torch.as_tensor(np.asarray(ep.get_observations()[:-1]), dtype=torch.float32)
            values = module.compute_values({Columns.OBS: obs}).numpy()
            expected.append(_returns_to_go(ep.get_rewards(), config.gamma) - values)
    metrics = _update(learner, config, episodes, steps)
    assert all(ep.is_terminated for ep in episodes)  # so λ = 1 targets are exactly G_t
    assert metrics["abs_f_mean"] == pytest.approx(float(np.mean(np.abs(np.concatenate(expected)))), rel=1e-4)


def _kl_closed_form(new, old, discrete: bool, reverse: bool):
    if not reverse:
        new, old = old, new
    if discrete:  # KL(p‖q) = Σ p (log p − log q)
        lp, lq = torch.log_softmax(new, -1), torch.log_softmax(old, -1)
        return (lp.exp() * (lp - lq)).sum(-1)
    mu_p, ls_p = new.chunk(2, -1)
    mu_q, ls_q = old.chunk(2, -1)
    return (ls_q - ls_p + ((2 * ls_p).exp() + (mu_p - mu_q) ** 2) / (2 * (2 * ls_q).exp()) - 0.5).sum(-1)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_mdpo_penalises_kl_of_the_new_policy_to_the_old(env_id):
    discrete = env_id == "CartPole-v1"
    config = (PGUConfig().environment(env_id).env_runners(num_env_runners=0).debugging(seed=0)
              .training(train_batch_size_per_learner=256, lr=0.0, **{k: v for k, v in PRESETS["mdpo"].items()},
                        num_epochs=1, minibatch_size=None))
    config.pgu_budget = 10_000
    learner, runner = _learner_and_runner(config, gym.make(env_id))
    episodes = runner.sample(num_timesteps=256)
    module = learner.module["default_policy"]
    with torch.no_grad():  # move the learner's policy away from the one that sampled
        for p in module.pi.parameters():
            p.add_(0.3 * torch.randn_like(p))
    new, old = [], []
    with torch.no_grad():
        for ep in episodes:
            obs = torch.as_tensor(np.asarray(ep.get_observations()[:-1]), dtype=torch.float32)
            new.append(module.forward_train({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS])
            old.append(torch.as_tensor(ep.get_extra_model_outputs(Columns.ACTION_DIST_INPUTS)))
    new, old = torch.cat(new), torch.cat(old)
    reverse = float(_kl_closed_form(new, old, discrete, reverse=True).mean())
    forward = float(_kl_closed_form(new, old, discrete, reverse=False).mean())
    metrics = _update(learner, config, episodes, 256)
    assert metrics["mean_kl_loss"] == pytest.approx(reverse, rel=1e-4)
    assert abs(reverse - forward) > 100 * 1e-4 * reverse  # the two directions are distinguishable here


def test_mdpo_coefficient_is_one_over_an_annealed_eta():
    assert mdpo_kl_coeff(1.0, 0, 1000) == 1.0
    assert mdpo_kl_coeff(1.0, 500, 1000) == pytest.approx(2.0)
    assert mdpo_kl_coeff(2.0, 750, 1000) == pytest.approx(8.0)
    assert mdpo_kl_coeff(1.0, 1000, 1000) == pytest.approx(100.0)  # η floored at 0.01
    config = build_config("cartpole", "mdpo", {}, seed=0, budget=4000)
    learner, runner = _learner_and_runner(config, gym.make("CartPole-v1"))
    episodes = runner.sample(num_timesteps=512)
    metrics = _update(learner, config, episodes, 3000)  # t = 3000 of T = 4000: η = 0.25
    assert metrics["curr_kl_coeff"] == pytest.approx(4.0 * config.kl_coeff)


def test_pgpb_preset_is_the_unbiased_row():
    from test_expectations import _bandit, expected_update

    rule = UpdateRule(**{k: v for k, v in PRESETS["pgpb"].items() if k in UpdateRule.keys()}).validate()
    assert (rule.form, rule.scale, rule.delta_r, rule.normalize_delta_r) == ("P", "sq", "q", False)
    for tau in (1.0, 0.5):
        z, v, r = _bandit(1)
        u, _ = expected_update("P", "q", False, "soft", tau, z, v, r)
        z_ = z.double().clone().requires_grad_()
        g_j = torch.autograd.grad((torch.softmax(z_, -1) * r.double()).sum(), z_)[0]
        assert torch.allclose(u.double(), tau * g_j, atol=1e-6)


def test_sil_scale_is_named_for_what_it_is():
    assert "sil" not in PRESETS and PRESETS["sil_scale"]["scale"] == "sil"
    assert "not SIL" in DESCRIPTIONS["sil_scale"]
    assert set(PRESETS) == set(DESCRIPTIONS)
