"""Optimistic steps that are the methods they are named after (issue 22 §3, §4): optimistic gradient
descent and Optimistic Adam against hand-written recurrences, the hypergradient of the optimism c on a
quadratic with a closed-form best c, and the learner's identical next step after save/restore."""
import copy
import math

import gymnasium as gym
import pytest
import torch
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

from pgu_rllib import PGUConfig
from pgu_rllib.core.steps import OptimisticAdam, OptimisticSGD

A = torch.tensor([[3.0, 0.5], [0.5, 1.0]], dtype=torch.float64)


def grad(theta):  # ∇ of ½θᵀAθ + sin(θ₀) (not quadratic, so the gradients change in every step)
    return A @ theta + torch.stack([torch.cos(theta[0]), torch.zeros((), dtype=torch.float64)])


def run(optimizer_cls, steps=5, **kwargs):
    theta = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = optimizer_cls([theta], **kwargs)
    out = []
    for _ in range(steps):
        theta.grad = grad(theta.detach())
        opt.step()
        out.append(theta.detach().clone())
    return out


def test_optimistic_sgd_is_theta_minus_eta_2g_minus_g_prev():
    eta, theta, g_prev, expected = 0.1, torch.tensor([1.0, -2.0], dtype=torch.float64), None, []
    for _ in range(5):
        g = grad(theta)
        theta = theta - eta * (2 * g - (g_prev if g_prev is not None else g))  # the first step: θ − ηg
        g_prev = g
        expected.append(theta)
    for got, want in zip(run(OptimisticSGD, lr=eta, optimism=1.0), expected):
        assert float((got - want).abs().max()) < 1e-10


def test_optimistic_adam_is_daskalakis_et_al_algorithm_1():
    eta, b1, b2, eps = 0.05, 0.9, 0.999, 1e-8
    theta = torch.tensor([1.0, -2.0], dtype=torch.float64)
    m = v = prev = torch.zeros(2, dtype=torch.float64)
    expected = []
    for k in range(1, 6):
        g = grad(theta)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        now = (m / (1 - b1 ** k)) / (torch.sqrt(v / (1 - b2 ** k)) + eps)
        theta = theta - 2 * eta * now + eta * prev
        prev = now
        expected.append(theta)
    for got, want in zip(run(OptimisticAdam, lr=eta, betas=(b1, b2), eps=eps), expected):
        assert float((got - want).abs().max()) < 1e-10


def test_the_hypergradient_moves_c_towards_the_closed_form_best_c():
    """On L(θ) = ½·a·θ², the next iterate θ⁺(c) = θ − η(aθ + c·a(θ − θ_prev)) and L(θ⁺(c)) is a convex
    quadratic in c, minimised by c* = (1 − ηa)·θ / (ηa·(θ − θ_prev)). One hypergradient step from any c
    (small β_c) lands closer to c*."""
    a, eta, beta = 2.0, 0.1, 0.5
    for c0 in (0.0, 0.5, 1.0, 3.0):
        theta = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
        opt = OptimisticSGD([theta], lr=eta, optimism=c0, adaptive=True, optimism_lr=beta)
        theta.grad = a * theta.detach()
        opt.step()  # θ_1 = θ_0 − η·a·θ_0 (no previous gradient)
        theta.grad = a * theta.detach()
        opt.step()  # uses c0 (no hypergradient yet: d_0 = 0)
        assert opt.param_groups[0]["optimism"] == c0
        c_before = c0
        # the hypergradient of step 2 arrives with g_3; check the claim on step 2's own optimum
        t_prev2, t_now2 = 1.0 - eta * a, float(theta.detach())
        c_star2 = (1 - eta * a) * t_now2 / (eta * a * (t_now2 - t_prev2))
        theta.grad = a * theta.detach()
        opt.step()
        c_after = opt.param_groups[0]["optimism"]
        assert abs(c_after - max(c_star2, 0.0)) < abs(c_before - max(c_star2, 0.0)) or c_after == max(c_star2, 0.0)


def _learner(step, **extra):
    cfg = (PGUConfig().environment("CartPole-v1").env_runners(num_env_runners=0).debugging(seed=0)
           .training(train_batch_size_per_learner=128, minibatch_size=64, num_epochs=2, lr=1e-3, step=step,
                     **extra))
    return cfg, cfg.build_learner(env=gym.make("CartPole-v1"))


@pytest.mark.parametrize("step,extra", [("optimistic", {"optimism": 1.0}), ("optimistic_sgd", {"optimism": 1.0}),
                                        ("optimistic_sgd", {"optimism_adaptive": True, "optimism_lr": 5.0}),
                                        ("optimistic_adam", {})])
def test_a_restored_learner_takes_the_identical_next_step(step, extra):
    cfg, learner = _learner(step, **extra)
    runner = SingleAgentEnvRunner(config=cfg)
    runner.set_state(learner.get_state(components="rl_module"))
    batches = [runner.sample(num_timesteps=128) for _ in range(3)]

    def update(lrn, episodes):
        return lrn.update(episodes=episodes, timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: 128}, num_epochs=2,
                          minibatch_size=64, shuffle_batch_per_epoch=False)

    for episodes in batches[:2]:
        update(learner, episodes)
    _, restored = _learner(step, **extra)
    restored.set_state(learner.get_state())
    # the learner connector appends to the episodes it is given: each learner gets its own copy
    out_a, out_b = update(learner, copy.deepcopy(batches[2])), update(restored, copy.deepcopy(batches[2]))
    for p, q in zip(learner.module["default_policy"].parameters(), restored.module["default_policy"].parameters()):
        assert torch.equal(p, q)
    if step == "optimistic_sgd":
        c = [float(o["default_policy"]["optimism_c"].peek()) for o in (out_a, out_b)]
        assert c[0] == c[1] and (c[0] != 1.0) == bool(extra.get("optimism_adaptive"))
    assert not math.isnan(float(out_a["default_policy"]["policy_loss"].peek()))
