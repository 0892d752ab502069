"""The exact expected update of any PGU rule on the unit-circle bandit, and its fixed points.

``expected_update(theta, rule)`` is E[U](θ) for the talk's 2-parameter model at Δ_O = 0 (the
first minibatch of an on-policy batch, the small-step limit of any run): the expectation over
actions (π = softmax(q_θ/τ)) and Bernoulli rewards is a sum with exact weights, and over
contexts x ~ N(0, I₂) a product Gauss–Hermite rule (``points`` per axis; the integrand is
smooth, 24 points agree with 48 to ~1e-10). It runs the rule through the library's own
``delta_r``/``make_scale``/``surrogate``, with the module's V(x) = E_π[q_θ(x,·)] and R̂ = r.
Standardisation (``delta_r="advantage"``, ``normalize_delta_r``) uses the population mean and
std, the limit of RLlib's per-batch standardisation. ``delta_r="group"`` (GRPO) standardises each
reward among the G rewards of its context's group: with ``group_size=None`` the population of the
context (the limit of large groups); with ``group_size=G`` exactly, since with binary rewards a
sample's group-relative signal depends only on its own reward r and the count k of successes among
the G: (r − k/G)/std, std = √(k/G·(1 − k/G)) (0 when all agree), and k − r ~ Binomial(G − 1, p̄(x))
for the other G − 1 samples, p̄(x) = Σ_a π(a|x)·r̄(x, a). GRPO's reference penalty β·KL(π_θ‖π_ref)
(``ref_kl_coeff``) enters exactly too: the k3 estimator is unbiased, so its expected gradient is
∇KL(π_θ‖π_ref), with π_ref the initial policy (θ = ``theta_ref``, the recipe's start 0).

``fixed_point(rule)`` follows θ' = E[U](θ) from θ = 0 (the recipe's start) until
‖E[U]‖ < 1e-9 and reports where it converges, the greedy policy's expected reward there, the
Jacobian's eigenvalues (negative real parts: a stable fixed point that runs settle at), and the
best greedy value on the way (what a run stopped at the right moment would report).

Example::

    >>> from pgu_rllib.core.update_rule import UpdateRule
    >>> fp = fixed_point(UpdateRule(form="P", scale="sq", delta_r="q", parameterisation="logit"))
    >>> fp["converged"], round(fp["greedy"], 3)
    (True, 0.712)
"""
from __future__ import annotations

import numpy as np
import torch

from pgu_rllib.tasks.bandit import THETA_STAR, action_embedding, eval_contexts, greedy_expected_reward
from pgu_rllib.core.forms import expected_q_discrete, surrogate
from pgu_rllib.core.signals import delta_r as delta_r_of

N_ACTIONS = 8


def quadrature(points: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """Contexts and weights of the product Gauss–Hermite rule for N(0, I₂) (weights sum to 1)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(points)
    weights = weights / weights.sum()
    x = np.stack(np.meshgrid(nodes, nodes, indexing="ij"), -1).reshape(-1, 2)
    w = np.outer(weights, weights).reshape(-1)
    return torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64)


def _standardize(y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    mean = (weights * y).sum()
    std = (weights * (y - mean) ** 2).sum().sqrt()
    return (y - mean) / std.clamp_min(1e-4)


def _group_signal(rhat: torch.Tensor, p_bar: torch.Tensor, group_size: int) -> torch.Tensor:
    """E over the other G − 1 rewards of a sample's group-relative signal, per (context, ·, reward r):
    Σ_j Binom(j; G − 1, p̄(x))·(r − k/G)/std(k), k = j + r, std = √(k/G·(1 − k/G)), 0 when std = 0."""
    from scipy.stats import binom

    g = group_size
    j = np.arange(g)
    probs = torch.tensor(binom.pmf(j[None, :], g - 1, p_bar.detach().numpy()[:, None]), dtype=torch.float64)  # (M, G)
    out = []
    for r in (0.0, 1.0):
        k = torch.tensor(j + r, dtype=torch.float64)
        mean = k / g
        std = (mean * (1 - mean)).sqrt()
        signal = torch.where(std > 0, (r - mean) / std.clamp_min(1e-12), torch.zeros_like(std))  # (G,)
        out.append((probs * signal).sum(-1))  # (M,)
    return torch.stack(out, -1).unsqueeze(1).expand_as(rhat)  # (M, N, 2): depends on x and r only


def expected_update(theta, rule, *, n_actions: int = N_ACTIONS, grid=None, group_size: int | None = None,
                    theta_ref=(0.0, 0.0)) -> np.ndarray:
    """E[U](θ) of ``rule`` (an ``UpdateRule``) on the bandit, an array of shape (2,). ``group_size`` G:
    GRPO's groups of G samples exactly (None: the large-group limit)."""
    x, w = grid if grid is not None else quadrature()
    theta = torch.tensor(np.asarray(theta, dtype=float), dtype=torch.float64, requires_grad=True)
    psi = torch.tensor(action_embedding(n_actions), dtype=torch.float64)
    star = torch.tensor(THETA_STAR, dtype=torch.float64)
    tau = float(rule.tau)
    q = (theta * x + theta - star) @ psi.T                      # q_θ(x, ·), (M, N)
    logits = q / tau
    pi = torch.softmax(logits, -1).detach()
    logp = torch.log_softmax(logits, -1)
    r_bar = torch.sigmoid((x @ psi.T))                           # r̄(x, ·) = σ(⟨x, ψ⟩)
    value = (pi * q.detach()).sum(-1, keepdim=True)              # the module's V(x) = E_π[q]
    # every (context, action, reward) with its exact probability
    r = torch.tensor([0.0, 1.0], dtype=torch.float64).view(1, 1, 2)
    weight = w.view(-1, 1, 1) * pi.unsqueeze(-1) * torch.stack([1 - r_bar, r_bar], -1)
    shape = weight.shape
    rhat = r.expand(shape)
    q_sa = q.unsqueeze(-1).expand(shape)
    advantages = group = None
    if rule.delta_r == "advantage":
        advantages = _standardize(rhat - value.unsqueeze(-1), weight)
    if rule.delta_r == "group" and group_size:  # GRPO's groups of G, exactly (binary rewards)
        group = _group_signal(rhat, (pi * r_bar).sum(-1), group_size)
    elif rule.delta_r == "group":  # per context: the limit of GRPO's groups as they grow
        per_x = weight / weight.sum((1, 2), keepdim=True)
        mean = (per_x * rhat).sum((1, 2), keepdim=True)
        std = ((per_x * (rhat - mean) ** 2).sum((1, 2), keepdim=True)).sqrt()
        group = (rhat - mean) / std.clamp_min(1e-4)
    y = delta_r_of(rule.delta_r, advantages=advantages, value_targets=rhat, returns=rhat, group=group, q_sa=q_sa,
                   v_s=value.unsqueeze(-1).expand(shape), normalize=False)
    if rule.normalize_delta_r:
        y = _standardize(y, weight)
    f = rule.scale_fn()(torch.zeros_like(y), y)
    expected_q = expected_q_discrete(logits, q).view(-1, 1, 1).expand(shape)
    loss = surrogate(rule.form, f, logp=logp.unsqueeze(-1).expand(shape), q_sa=q_sa, expected_q=expected_q, tau=tau)
    total = (weight * loss).sum()
    if getattr(rule, "ref_kl_coeff", 0.0) > 0:  # E[∇k3] = ∇KL(π_θ‖π_ref), π_ref at theta_ref
        ref = torch.tensor(np.asarray(theta_ref, dtype=float), dtype=torch.float64)
        logp_ref = torch.log_softmax(((ref * x + ref - star) @ psi.T) / tau, -1)
        kl = (torch.softmax(logits, -1) * (logp - logp_ref)).sum(-1)
        total = total + rule.ref_kl_coeff * (w * kl).sum()
    (grad,) = torch.autograd.grad(total, theta)
    return -grad.numpy()


def greedy_value(theta, n_actions: int = N_ACTIONS) -> float:
    """The task's metric: the greedy policy's expected reward on its 4096 fixed contexts."""
    return greedy_expected_reward(np.asarray(theta), eval_contexts(), n_actions)[0]


def fixed_point(rule, *, theta0=(0.0, 0.0), max_move: float = 0.05, max_steps: int = 200_000, tol: float = 1e-9,
                n_actions: int = N_ACTIONS, group_size: int | None = None) -> dict:
    """Follow θ' = E[U](θ) from ``theta0`` until ‖E[U]‖ < ``tol``: Euler steps θ += c·E[U] with
    c = min(1, max_move/‖E[U]‖), so the path follows the flow (θ moves at most ``max_move`` a
    step) and the steps near the fixed point are plain ones. Also returns the path's peak greedy
    value (checked every 5th step) and where it was reached."""
    grid = quadrature()
    theta = np.asarray(theta0, dtype=float)
    u = expected_update(theta, rule, n_actions=n_actions, grid=grid, group_size=group_size)
    steps, peak, peak_at = 0, greedy_value(theta, n_actions), 0
    while np.linalg.norm(u) >= tol and steps < max_steps and np.all(np.abs(theta) < 1e3):
        theta = theta + min(1.0, max_move / np.linalg.norm(u)) * u
        u = expected_update(theta, rule, n_actions=n_actions, grid=grid, group_size=group_size)
        steps += 1
        if steps % 5 == 0 and (g := greedy_value(theta, n_actions)) > peak:
            peak, peak_at = g, steps
    converged = bool(np.linalg.norm(u) < tol)
    eps = 1e-5
    jac = np.stack([(expected_update(theta + eps * e, rule, n_actions=n_actions, grid=grid, group_size=group_size)
                     - expected_update(theta - eps * e, rule, n_actions=n_actions, grid=grid, group_size=group_size)) / (2 * eps)
                    for e in np.eye(2)], -1)
    greedy = greedy_value(theta, n_actions)
    return {"theta": theta.tolist(), "greedy": greedy, "converged": converged, "residual": float(np.linalg.norm(u)),
            "steps": steps, "jacobian_eigenvalues": [complex(v) if np.iscomplex(v) else float(np.real(v))
                                                     for v in np.linalg.eigvals(jac)],
            "stable": bool(converged and max(np.real(np.linalg.eigvals(jac))) < 0),
            "peak_greedy": max(peak, greedy), "peak_at_step": peak_at if peak > greedy else steps}
