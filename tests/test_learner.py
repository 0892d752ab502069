"""The learner alone, without ``ray.init``: every form on CartPole-v1 (categorical, soft and
logit readings) and HalfCheetah-v5 (Gaussian); metrics; errors."""
import math

import gymnasium as gym
import pytest
import ray
import torch
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

from pgu_rllib import PGUConfig

N = 256


def _setup(env_id, **rule):
    cfg = (PGUConfig().environment(env_id).env_runners(num_env_runners=0).debugging(seed=0)
           .training(**{"train_batch_size_per_learner": N, "minibatch_size": 64, "num_epochs": 2,
                        "lr": 1e-3, **rule}))
    learner = cfg.build_learner(env=gym.make(env_id))
    runner = SingleAgentEnvRunner(config=cfg)
    runner.set_state(learner.get_state(components="rl_module"))
    return learner, runner


def _update(learner, runner):
    episodes = runner.sample(num_timesteps=N)
    before = [p.detach().clone() for p in learner.module["default_policy"].parameters()]
    res = learner.update(episodes=episodes, timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: N},
                         num_epochs=2, minibatch_size=64, shuffle_batch_per_epoch=True)
    after = list(learner.module["default_policy"].parameters())
    moved = max(float((a.detach() - b).abs().max()) for a, b in zip(after, before))
    return {k: float(v.peek()) for k, v in res["default_policy"].items() if hasattr(v, "peek")}, moved


# Every allowed (form, Δ_R): P only with Δ_R = R̂ − q (docs/spec.md §3); "return" needs whole
# episodes and has its own tests (tests/test_presets.py).
FORM_DELTA_R = [(f, dr) for f in "QV" for dr in ("advantage", "q", "v")] + [("P", "q")]
CASES = [("CartPole-v1", f, par, dr) for f, dr in FORM_DELTA_R for par in ("soft", "logit")]
CASES += [("HalfCheetah-v5", f, "soft", dr) for f, dr in FORM_DELTA_R]


@pytest.mark.parametrize("env_id,form,parameterisation,delta_r", CASES)
def test_learner_updates_without_ray_init(env_id, form, parameterisation, delta_r):
    learner, runner = _setup(env_id, form=form, scale="mla", alpha_o=1.0, alpha_r=0.5,
                             parameterisation=parameterisation, delta_r=delta_r,
                             normalize_delta_r=delta_r != "advantage" and form != "P")
    metrics, moved = _update(learner, runner)
    assert not ray.is_initialized()
    assert moved > 0
    for key in ("delta_o_mean", "abs_f_mean", "f_zero_frac", "surrogate_loss", "policy_loss",
                "vf_loss", "entropy"):
        assert math.isfinite(metrics[key]), key
    assert 0.0 <= metrics["f_zero_frac"] <= 1.0
    assert metrics["abs_f_mean"] > 0


@pytest.mark.parametrize("env_id", ["CartPole-v1", "HalfCheetah-v5"])
def test_delta_o_is_zero_while_weights_equal_the_behaviour_policy(env_id):
    """Spec §1: Δ_O = 0 on an on-policy minibatch (lr = 0 keeps every minibatch on-policy)."""
    learner, runner = _setup(env_id, scale="sq", lr=0.0)
    for _ in range(2):
        metrics, moved = _update(learner, runner)
        assert moved == 0.0
        assert abs(metrics["delta_o_mean"]) < 1e-5, metrics["delta_o_mean"]
    learner, runner = _setup(env_id, scale="sq", lr=1e-2)
    metrics, moved = _update(learner, runner)
    assert abs(metrics["delta_o_mean"]) > 1e-4  # off-policy after updates


def test_ppo_clip_zeroes_some_samples_after_several_epochs():
    learner, runner = _setup("CartPole-v1", scale="ppo_clip", epsilon=0.01)
    episodes = runner.sample(num_timesteps=N)
    res = learner.update(episodes=episodes, timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: N},
                         num_epochs=4, minibatch_size=64, shuffle_batch_per_epoch=True)
    assert float(res["default_policy"]["f_zero_frac"].peek()) > 0


def test_logit_parameterisation_on_continuous_actions_is_an_error():
    learner, runner = _setup("HalfCheetah-v5", parameterisation="logit")
    with pytest.raises(ValueError, match="parameterisation='logit' needs a discrete action space"):
        _update(learner, runner)


class NaNRewardCartPole(gym.Wrapper):
    """CartPole whose 3rd step pays a NaN reward: a diverging reward signal."""

    def __init__(self, env_config=None):
        super().__init__(gym.make("CartPole-v1"))
        self._t = 0

    def reset(self, **kwargs):
        self._t = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        self._t += 1
        return obs, (float("nan") if self._t == 3 else r), term, trunc, info


def test_non_finite_signal_names_module_and_step():
    cfg = (PGUConfig().environment(NaNRewardCartPole).env_runners(num_env_runners=0)
           .training(train_batch_size_per_learner=N, minibatch_size=N, num_epochs=1,
                     scale="sq", delta_r="q"))
    learner = cfg.build_learner(env=NaNRewardCartPole())
    runner = SingleAgentEnvRunner(config=cfg)
    episodes = runner.sample(num_timesteps=N)
    before = [p.detach().clone() for p in learner.module["default_policy"].parameters()]
    with pytest.raises(FloatingPointError, match=r"non-finite delta_r .* in module 'default_policy' at learner step 1"):
        learner.update(episodes=episodes, timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: N},
                       num_epochs=1, minibatch_size=N)
    after = list(learner.module["default_policy"].parameters())
    assert all(torch.equal(a.detach(), b) for a, b in zip(after, before))  # no NaN reached the weights


def test_kl_schedule_fixed_freezes_the_coefficient():
    for schedule in ("adaptive", "fixed"):
        learner, runner = _setup("CartPole-v1", scale="sq", use_kl_loss=True, kl_coeff=0.5,
                                 kl_target=1e-9, kl_schedule=schedule)
        _update(learner, runner)
        coeff = float(learner.curr_kl_coeffs_per_module["default_policy"])
        assert (coeff == 0.5) is (schedule == "fixed"), coeff


@pytest.mark.parametrize("key,value,needle", [
    ("form", "X", "form='X' is not allowed; allowed: Q, V, P"),
    ("delta_r", "td", "delta_r='td' is not allowed; allowed: advantage, q, v, return"),
    ("kl_direction", "both", "kl_direction='both' is not allowed; allowed: old_new, new_old"),
    ("kl_schedule", "cosine", "kl_schedule='cosine' is not allowed; allowed: adaptive, fixed, mdpo"),
    ("parameterisation", "hard", "parameterisation='hard' is not allowed; allowed: soft, logit"),
    ("tau", 0.0, "tau=0.0 is out of range; allowed: a finite number > 0"),
    ("tau", -1.0, "tau=-1.0 is out of range"),
    ("normalize_delta_r", "yes", "normalize_delta_r='yes' is not allowed; allowed: true, false"),
])
def test_config_validate_rejects_bad_keys(key, value, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        PGUConfig().environment("CartPole-v1").training(**{key: value}).validate()


@pytest.mark.parametrize("rule,needle", [
    ({"form": "P", "delta_r": "advantage"}, "form='P' with delta_r='advantage' is not PGPB: E[U] = (τ/σ)∇J − τ²∇H"),
    ({"form": "P", "delta_r": "v"}, "form='P' with delta_r='v' is not PGPB"),
    ({"form": "P", "delta_r": "return"}, "form='P' with delta_r='return' is not PGPB"),
    ({"form": "P", "delta_r": "q", "normalize_delta_r": True}, "form='P' with normalize_delta_r=true is not PGPB"),
    ({"delta_r": "advantage", "normalize_delta_r": True}, "it is already standardised (by RLlib over the batch)"),
    ({"delta_r": "return"}, "delta_r='return' .* needs batch_mode='complete_episodes'"),
    ({"use_kl_loss": True, "kl_schedule": "mdpo"}, "kl_schedule='mdpo' needs pgu_budget"),
    ({"lr_anneal": True}, "lr_anneal=true needs pgu_budget"),
])
def test_combinations_outside_the_family_are_refused(rule, needle):
    """Docs/spec.md §3: a combination that is not PGPB is never run (or stored) as form P."""
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        PGUConfig().environment("CartPole-v1").training(**rule).validate()
