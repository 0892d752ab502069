"""GRPO's reference KL (issue 22 §2): β·KL(π_θ‖π_ref) with DeepSeekMath's k3 estimator, π_ref the initial
policy or refreshed every K updates, kept across save/restore."""
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

from pgu_rllib.core.forms import k3
from pgu_rllib.tasks.bandit import UnitCircleBandit, eval_contexts


def test_k3_is_unbiased_for_kl_new_ref_on_the_bandit():
    """E_{a∼π_θ}[k3] = KL(π_θ‖π_ref) exactly, by enumeration of the 8 actions, on 4096 contexts (float64)."""
    from pgu_rllib.tasks.bandit import action_embedding, phi

    x, psi = eval_contexts(), action_embedding(8)
    logits = torch.as_tensor(phi(np.array([1.3, -0.4]), x) @ psi.T)  # q_θ(x, ·), float64
    logits_ref = torch.as_tensor(phi(np.array([0.2, 0.9]), x) @ psi.T)
    logp, logp_ref = torch.log_softmax(logits, -1), torch.log_softmax(logits_ref, -1)
    expected = (logp.exp() * k3(logp, logp_ref)).sum(-1)
    exact = (logp.exp() * (logp - logp_ref)).sum(-1)
    assert float((expected - exact).abs().max()) < 1e-12
    assert float(exact.mean()) > 0.05  # the two policies really differ


def _bandit_learner(**rule):
    from pgu_rllib.tasks.training import build_config

    config = build_config("bandit", "grpo", {"env_config": {"n_actions": 8, "group_size": 8}, **rule}, seed=0,
                          budget=1024)
    env = UnitCircleBandit(config.env_config)
    learner = config.build_learner(env=env)
    runner = SingleAgentEnvRunner(config=config)
    runner.set_state(learner.get_state(components="rl_module"))
    return config, learner, runner


def _update(learner, runner, config):
    episodes = runner.sample(num_timesteps=config.train_batch_size_per_learner)
    res = learner.update(episodes=episodes, timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: 256},
                         num_epochs=config.num_epochs, minibatch_size=config.minibatch_size,
                         shuffle_batch_per_epoch=True)
    runner.set_state(learner.get_state(components="rl_module"))
    return {k: float(v.peek()) for k, v in res["default_policy"].items() if hasattr(v, "peek")}


def test_the_learner_reports_the_exact_kl_to_the_initial_policy():
    config, learner, runner = _bandit_learner()
    module = learner.module["default_policy"]
    initial = module.theta.detach().clone()
    metrics = _update(learner, runner, config)
    assert metrics["rule_ref_kl_coeff"] == 0.04 and metrics["ref_kl"] > 0
    # the exact KL(π_θ‖π_ref) on a batch of states, computed here from the two logit vectors
    obs = torch.as_tensor(eval_contexts()[:64], dtype=torch.float32)
    with torch.no_grad():
        logp = torch.log_softmax(module.forward_train({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS], -1)
        ref_logits = learner.reference_logits("default_policy", {Columns.OBS: obs})
        logp_ref = torch.log_softmax(ref_logits, -1)
    by_hand = float((logp.exp() * (logp - logp_ref)).sum(-1).mean())
    dist = module.get_train_action_dist_cls()
    reported = float(dist.from_logits(logp).kl(dist.from_logits(logp_ref)).mean())
    assert reported == pytest.approx(by_hand, abs=1e-6) and by_hand > 0
    assert torch.equal(learner._pgu_reference["default_policy"].theta, initial)  # π_ref stayed the initial policy


def test_the_penalty_pulls_toward_the_reference_and_k_refreshes_it():
    config, learner, runner = _bandit_learner(ref_refresh=2, lr=0.2)
    ref = lambda: learner._pgu_reference["default_policy"].theta.detach().clone()  # noqa: E731
    start = ref()
    _update(learner, runner, config)
    assert torch.equal(ref(), start)  # one update: not yet refreshed
    _update(learner, runner, config)
    assert torch.equal(ref(), learner.module["default_policy"].theta.detach())  # after K = 2 updates: the policy


def test_the_reference_survives_save_and_restore():
    config, learner, runner = _bandit_learner(lr=0.2)
    for _ in range(2):
        _update(learner, runner, config)
    state = learner.get_state()
    ref = learner._pgu_reference["default_policy"].theta.detach().clone()
    _, fresh, _ = _bandit_learner(lr=0.2)
    assert not torch.equal(fresh._pgu_reference["default_policy"].theta, learner.module["default_policy"].theta)
    fresh.set_state(state)
    assert torch.equal(fresh._pgu_reference["default_policy"].theta, ref) and fresh._pgu_updates == 2
    # the next step of both is the same
    batch = {Columns.OBS: torch.as_tensor(eval_contexts()[:8], dtype=torch.float32)}
    assert torch.equal(fresh.reference_logits("default_policy", batch), learner.reference_logits("default_policy", batch))


def test_grpo_presets():
    from pgu_rllib.core.presets import PRESETS

    assert PRESETS["grpo"]["ref_kl_coeff"] == 0.04 and PRESETS["grpo"]["ref_refresh"] == 0
    assert PRESETS["grpo_no_kl"]["ref_kl_coeff"] == 0.0
    assert {k: v for k, v in PRESETS["grpo"].items() if not k.startswith("ref_")} == \
           {k: v for k, v in PRESETS["grpo_no_kl"].items() if not k.startswith("ref_")}
