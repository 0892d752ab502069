"""The step axis (docs/spec.md §3, ``core/steps.py``, ``rllib/steps.py``): Fisher-vector products
against the explicit Fisher on a categorical and a Gaussian policy, conjugate gradient to a stated
tolerance, the natural step's KL, the trust-region line search on the real learner, the optimistic
step, GRPO's groups, and the new presets' defining properties."""
import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

from pgu_rllib.core.presets import PRESETS
from pgu_rllib.core.steps import conjugate_gradient, line_search, natural_step, optimistic
from pgu_rllib.rllib.connectors import group_relative
from pgu_rllib.rllib.steps import fisher_vector_product
from pgu_rllib.tasks.training import build_config


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _categorical(seed=0, states=16, features=4, actions=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(states, features, generator=g)
    w = (0.5 * torch.randn(actions, features, generator=g)).requires_grad_()
    return x, w


def test_fisher_vector_product_is_the_fisher_of_a_categorical_policy():
    x, w = _categorical()
    logits = x @ w.T
    p = torch.softmax(logits, -1)
    kl = (p.detach() * (torch.log_softmax(logits.detach(), -1) - torch.log_softmax(logits, -1))).sum(-1).mean()
    fvp = fisher_vector_product(kl, [w])
    # explicit F = E_s Σ_a π(a|s) ∇log π(a|s) ∇log π(a|s)ᵀ, by enumeration
    n = w.numel()
    fisher = torch.zeros(n, n)
    for s in range(x.shape[0]):
        for a in range(w.shape[0]):
            score = torch.autograd.grad(torch.log_softmax(x[s] @ w.T, -1)[a], w)[0].reshape(-1)
            fisher += p[s, a].detach() * torch.outer(score, score) / x.shape[0]
    v = torch.randn(n, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(fvp(v), fisher @ v, atol=1e-10)


def test_fisher_vector_product_is_the_fisher_of_a_gaussian_policy():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 3, generator=g)
    w = (0.3 * torch.randn(2, 3, generator=g)).requires_grad_()
    log_std = (0.2 * torch.randn(2, generator=g)).requires_grad_()

    def kl_of(w_, ls_):  # KL(N_old ‖ N_θ), old = the current parameters held fixed
        mu_old, ls_old = (x @ w.T).detach(), log_std.detach()
        mu, ls = x @ w_.T, ls_.expand_as(mu_old)
        return (ls - ls_old + ((2 * ls_old).exp() + (mu_old - mu) ** 2) / (2 * (2 * ls).exp()) - 0.5).sum(-1).mean()

    fvp = fisher_vector_product(kl_of(w, log_std), [w, log_std])
    hessian = torch.autograd.functional.hessian(lambda flat: kl_of(flat[:6].view(2, 3), flat[6:]),
                                                torch.cat([w.detach().reshape(-1), log_std.detach()]))
    # the Gaussian's Fisher in closed form: x xᵀ/σ² for the mean weights, 2 for each log σ
    sigma2 = (2 * log_std.detach()).exp()
    closed = torch.zeros(8, 8)
    for i in range(2):
        closed[3 * i:3 * i + 3, 3 * i:3 * i + 3] = (x.T @ x) / x.shape[0] / sigma2[i]
        closed[6 + i, 6 + i] = 2.0
    v = torch.randn(8, generator=g)
    assert torch.allclose(hessian, closed, atol=1e-10)
    assert torch.allclose(fvp(v), closed @ v, atol=1e-10)


def test_conjugate_gradient_solves_to_the_stated_tolerance():
    g = torch.Generator().manual_seed(2)
    q, _ = torch.linalg.qr(torch.randn(20, 20, generator=g))
    a = q @ torch.diag(torch.logspace(-2, 0, 20)) @ q.T  # condition number 100
    b = torch.randn(20, generator=g)
    x, residual = conjugate_gradient(lambda v: a @ v, b, iters=40, tol=1e-20)
    assert float(torch.linalg.vector_norm(a @ x - b) / torch.linalg.vector_norm(b)) < 1e-8
    x10, residual10 = conjugate_gradient(lambda v: a @ v, b, iters=10, tol=1e-20)
    assert residual10 > residual  # fewer iterations, a larger residual: the tolerance is the stop rule
    x_small, r_small = conjugate_gradient(lambda v: a @ v, b, iters=40, tol=1e-6)
    assert r_small < 1e-6


def test_the_natural_step_has_the_kl_radius_to_second_order():
    x, w = _categorical(seed=4)
    logits = x @ w.T
    kl0 = (torch.softmax(logits.detach(), -1) * (torch.log_softmax(logits.detach(), -1)
                                                  - torch.log_softmax(logits, -1))).sum(-1).mean()
    fvp = fisher_vector_product(kl0, [w])
    r = torch.randn(x.shape[0], 3, generator=torch.Generator().manual_seed(5))
    loss = -(torch.softmax(x @ w.T, -1) * r).sum(-1).mean()
    g = torch.autograd.grad(loss, w)[0].reshape(-1)
    for delta in (1e-3, 1e-4):
        step = natural_step(g, fvp, max_kl=delta, iters=50, damping=0.0)
        assert float(0.5 * step @ fvp(step)) == pytest.approx(delta, rel=1e-6)  # the quadratic model
        w_new = w.detach() + step.view_as(w)
        p_old = torch.log_softmax(x @ w.detach().T, -1)
        measured = float((p_old.exp() * (p_old - torch.log_softmax(x @ w_new.T, -1))).sum(-1).mean())
        assert measured == pytest.approx(delta, rel=0.1)
        assert float(g @ step) < 0  # downhill


def test_line_search_accepts_only_steps_within_the_radius_that_improve():
    step = torch.ones(4)
    seen = []

    def evaluate(d):  # KL grows with ‖d‖², the loss improves only for small steps
        kl, loss = float(d @ d), float(-(d @ d) + 0.2 * (d @ d) ** 2)
        seen.append((kl, loss))
        return loss, kl

    accepted, j = line_search(step, evaluate, loss0=0.0, max_kl=0.5, steps=10)
    assert j == 2 and float(accepted @ accepted) <= 0.5  # ½² · 4 = 0.25 is the first within δ
    none, j = line_search(step, lambda d: (1.0, 0.0), loss0=0.0, max_kl=0.5, steps=5)  # never improves
    assert j == -1 and not none.any()


def _cartpole(preset, overrides=None, seed=0):
    config = build_config("cartpole", preset, overrides or {}, seed=seed, budget=10_000)
    learner = config.build_learner(env=gym.make("CartPole-v1"))
    runner = SingleAgentEnvRunner(config=config)
    runner.set_state(learner.get_state(components="rl_module"))
    return config, learner, runner


def _policy_logits(learner, episodes):
    obs = torch.as_tensor(np.concatenate([np.asarray(e.get_observations()[:-1]) for e in episodes]),
                          dtype=torch.float32)
    with torch.no_grad():
        return learner.module["default_policy"].forward_train({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]


def test_trpo_never_takes_a_step_beyond_its_kl_radius():
    torch.set_default_dtype(torch.float32)
    config, learner, runner = _cartpole("trpo", {"max_kl": 0.002, "cg_damping": 0.0})
    accepted = 0
    for _ in range(4):
        episodes = runner.sample(num_timesteps=512)
        before = _policy_logits(learner, episodes)
        res = learner.update(episodes=copy.deepcopy(episodes), timesteps={"num_env_steps_sampled_lifetime": 512},
                             num_epochs=1, minibatch_size=None)
        after = _policy_logits(learner, episodes)
        p, q = torch.log_softmax(before, -1), torch.log_softmax(after, -1)
        measured = float((p.exp() * (p - q)).sum(-1).mean())
        assert measured <= 0.002 * (1 + 1e-4), measured
        accepted += float(res["default_policy"]["line_search_backtracks"].peek()) >= 0 and measured > 0
        runner.set_state(learner.get_state(components="rl_module"))
    assert accepted >= 3  # it does move


def test_trpo_steps_on_the_bandit_whose_critic_is_its_policy():
    """The bandit's q_θ is both the policy's logits and Δ_R's baseline, so Δ_R moves with θ. The line
    search must compare the loss whose gradient made the step (f held at θ_old): recomputing f made
    every step look worse, and TRPO never left θ = 0 (found by experiments/steps_evidence.py)."""
    torch.set_default_dtype(torch.float32)
    config = build_config("bandit", "trpo", {}, seed=0, budget=10_000)
    runner = (config.env_runner_cls or SingleAgentEnvRunner)(config=config)  # None: the patches are off
    learner = config.build_learner(env=runner.env)
    runner.set_state(learner.get_state(components="rl_module"))
    accepted = 0
    for _ in range(4):
        episodes = runner.sample(num_timesteps=config.train_batch_size_per_learner)
        res = learner.update(episodes=episodes, timesteps={"num_env_steps_sampled_lifetime": 256}, num_epochs=1,
                             minibatch_size=None)
        metrics = res["default_policy"]
        accepted += float(metrics["line_search_backtracks"].peek()) >= 0
        assert float(metrics["step_kl"].peek()) <= config.max_kl * (1 + 1e-4)
        runner.set_state(learner.get_state(components="rl_module"))
    theta = torch.cat([p.detach().reshape(-1) for p in learner.module["default_policy"].parameters()])
    assert accepted >= 3 and float(theta.abs().max()) > 0.05, (accepted, theta)


def test_npg_takes_one_natural_step_per_batch():
    torch.set_default_dtype(torch.float32)
    config, learner, runner = _cartpole("npg", {"max_kl": 0.001})
    assert [n for n, _ in learner.get_optimizers_for_module("default_policy")] == ["policy_step", "default_optimizer"]
    for _ in range(3):
        episodes = runner.sample(num_timesteps=512)
        res = learner.update(episodes=copy.deepcopy(episodes), timesteps={"num_env_steps_sampled_lifetime": 512},
                             num_epochs=1, minibatch_size=None)
        runner.set_state(learner.get_state(components="rl_module"))
    metrics = {k: float(v.peek()) for k, v in res["default_policy"].items() if hasattr(v, "peek")}
    assert metrics["delta_o_abs_max"] == 0.0  # one step per batch
    # the damped step's quadratic KL is at most δ; measured on the batch it is close to δ
    assert 0.5 * 0.001 < metrics["step_kl"] < 1.3 * 0.001


def test_optimistic_with_zero_extrapolation_is_first_order_exactly():
    torch.set_default_dtype(torch.float32)
    params = []
    for step, extra in (("first_order", {}), ("optimistic", {"optimism": 0.0})):
        torch.manual_seed(0)
        config, learner, runner = _cartpole("ppo", {"step": step, **extra}, seed=1)
        for _ in range(3):
            episodes = runner.sample(num_timesteps=512)
            learner.update(episodes=copy.deepcopy(episodes), timesteps={"num_env_steps_sampled_lifetime": 512},
                           num_epochs=2, minibatch_size=128, shuffle_batch_per_epoch=False)
            runner.set_state(learner.get_state(components="rl_module"))
        params.append([p.detach().clone() for p in learner.module["default_policy"].parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*params))


def test_the_optimistic_gradient_extrapolates_the_last_one():
    g0, g1 = torch.tensor([1.0, -2.0]), torch.tensor([3.0, 0.5])
    assert torch.equal(optimistic(g0, None, 1.0), g0)
    assert torch.equal(optimistic(g1, g0, 1.0), 2 * g1 - g0)
    assert torch.equal(optimistic(g1, g0, 0.0), g1)


def test_group_relative_signal_standardises_within_states():
    obs = np.array([[0.0, 1.0]] * 3 + [[2.0, 2.0]] * 2 + [[5.0, 5.0]])
    returns = np.array([1.0, 0.0, 1.0, 3.0, 1.0, 7.0])
    valid = np.ones(6, bool)
    out = group_relative(returns, obs, valid)
    first = (returns[:3] - returns[:3].mean()) / returns[:3].std()
    assert np.allclose(out[:3], first) and np.allclose(out[3:5], [1.0, -1.0]) and out[5] == 0.0
    valid[0] = False  # an artificial timestep is no member of its group
    assert np.allclose(group_relative(returns, obs, valid)[1:3], [-1.0, 1.0])


def test_grpo_needs_groups_and_the_bandit_gives_them():
    with pytest.raises(ValueError, match="delta_r='group' .* needs several actions sampled for each state"):
        build_config("cartpole", "grpo", {}, seed=0)
    from pgu_rllib.tasks.bandit import UnitCircleBandit

    env = UnitCircleBandit({"n_actions": 8, "group_size": 4})
    contexts = [tuple(env.reset(seed=0 if i == 0 else None)[0]) for i in range(8)]
    assert len(set(contexts[:4])) == 1 and len(set(contexts[4:])) == 1 and contexts[0] != contexts[4]
    config = build_config("bandit", "grpo", {"env_config": {"n_actions": 8, "group_size": 8}}, seed=0)
    assert config.delta_r == "group" and config.scale == "ppo_clip"


def test_the_new_presets_are_their_algorithms():
    assert PRESETS["npg"]["step"] == "natural" and PRESETS["trpo"]["step"] == "trust_region"
    assert PRESETS["optimistic_pg"]["step"] == "optimistic" and PRESETS["optimistic_pg"]["optimism"] == 1.0
    for name in ("npg", "trpo", "optimistic_pg"):
        assert PRESETS[name]["num_epochs"] == 1 and PRESETS[name]["minibatch_size"] is None
