"""The step axis: how the PGU surrogate's gradient becomes a parameter change (no Ray).

* ``first_order``: the optimiser's step (Adam) on the gradient g; the default.
* ``natural``: Δθ = −α·F⁻¹g with F the Fisher matrix of the policy and α = √(2δ / gᵀF⁻¹g), so
  the quadratic model of KL(π_old‖π_new) equals the radius δ (``max_kl``); F⁻¹g by conjugate
  gradient on Fisher-vector products, F + damping·I (Kakade 2001; the survey's NPG).
* ``trust_region``: the natural step, then a backtracking line search (β = ½) that accepts the
  first β^j·Δθ whose measured KL ≤ δ and whose surrogate improves, or no step (TRPO).
* ``optimistic``: Adam is fed the extrapolated gradient g̃_k = g_k + c·(g_k − g_{k−1}) (``optimism`` c).
  This is neither optimistic gradient descent nor Optimistic Adam (Adam's moments smooth g̃, so the
  step is not θ − η(2g_k − g_{k−1})); it is kept as its own variant. c = 0 is first order exactly.
* ``optimistic_sgd``: optimistic gradient descent, θ_{k+1} = θ_k − η·(g_k + c·(g_k − g_{k−1})); c = 1
  is the classical θ_k − η(2g_k − g_{k−1}) (Popov 1980; Daskalakis et al. 2018). With
  ``optimism_adaptive`` the coefficient c follows the hypergradient of the next step's loss (below).
* ``optimistic_adam``: Daskalakis et al. (ICLR 2018), Algorithm 1: Adam's bias-corrected moments
  m̂_k, v̂_k and θ_k = θ_{k−1} − η·(2·m̂_k/(√v̂_k + ε) − m̂_{k−1}/(√v̂_{k−1} + ε)).

**Adaptive optimism** (hypergradient descent, Baydin et al. 2018, on c; the meta-gradient half of
the optimistic-PG talk): the step θ_{k+1} = θ_k − η(g_k + c_k·d_k), d_k = g_k − g_{k−1}, depends on c
through θ_{k+1} alone, so ∂L(θ_{k+1})/∂c = ∇L(θ_{k+1})·∂θ_{k+1}/∂c = −η·g_{k+1}·d_k. When g_{k+1}
arrives, before it moves θ, c takes one gradient step on the previous step's surrogate:
c_{k+1} = max(0, c_k + β_c·η·g_{k+1}·d_k), β_c = ``optimism_lr``. On a quadratic L, L(θ_{k+1}(c)) is a
convex quadratic in c with a closed-form minimiser, and a small β_c moves c towards it
(``tests/test_optimistic.py``).

Example::

    >>> import torch
    >>> A = torch.tensor([[4.0, 1.0], [1.0, 3.0]])
    >>> x, residual = conjugate_gradient(lambda v: A @ v, torch.tensor([1.0, 2.0]), iters=10)
    >>> torch.allclose(A @ x, torch.tensor([1.0, 2.0]), atol=1e-6), residual < 1e-10
    (True, True)
"""
from __future__ import annotations

from typing import Callable

import torch

STEPS = ("first_order", "natural", "trust_region", "optimistic", "optimistic_sgd", "optimistic_adam")
BACKTRACK = 0.5


def conjugate_gradient(fvp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, *, iters: int = 10,
                       tol: float = 1e-10) -> tuple[torch.Tensor, float]:
    """Solve F x = b for symmetric positive-definite F given as ``fvp(v) = F v``; return x and the
    final squared residual ‖b − F x‖²."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = float(r @ r)
    for _ in range(iters):
        if rr < tol:
            break
        fp = fvp(p)
        alpha = rr / float(p @ fp)
        x += alpha * p
        r -= alpha * fp
        new_rr = float(r @ r)
        p = r + (new_rr / rr) * p
        rr = new_rr
    return x, rr


def natural_step(g: torch.Tensor, fvp: Callable[[torch.Tensor], torch.Tensor], *, max_kl: float, iters: int,
                 damping: float) -> torch.Tensor:
    """Δθ = −√(2δ / gᵀd)·d with d = (F + damping·I)⁻¹ g: the step that moves the loss downhill with a
    quadratic KL of δ. Zero when g is zero."""
    d, _ = conjugate_gradient(lambda v: fvp(v) + damping * v, g, iters=iters)
    gd = float(g @ d)
    if not gd > 0:
        return torch.zeros_like(g)
    return -((2.0 * max_kl / gd) ** 0.5) * d


def line_search(step: torch.Tensor, evaluate: Callable[[torch.Tensor], tuple[float, float]], *, loss0: float,
                max_kl: float, steps: int) -> tuple[torch.Tensor, int]:
    """TRPO's backtracking: the first β^j·``step`` (j < ``steps``) whose ``evaluate(Δθ) = (loss, kl)``
    has kl ≤ ``max_kl`` and loss < ``loss0``; (zeros, −1) when none is."""
    scale = 1.0
    for j in range(steps):
        loss, kl = evaluate(scale * step)
        if kl <= max_kl and loss < loss0:
            return scale * step, j
        scale *= BACKTRACK
    return torch.zeros_like(step), -1


def optimistic(g: torch.Tensor, previous: torch.Tensor | None, optimism: float) -> torch.Tensor:
    """g + c·(g − g_prev) (g itself on the first step, when there is no g_prev)."""
    if previous is None or optimism == 0.0:
        return g
    return g + optimism * (g - previous)


class OptimisticSGD(torch.optim.Optimizer):
    """Optimistic gradient descent: θ ← θ − lr·(g + c·(g − g_prev)), g_prev = 0 at the first step (a
    plain gradient step). ``adaptive`` adapts c by hypergradient descent (module docstring). The
    previous gradient, the previous direction d and c are optimiser state, so they are checkpointed."""

    def __init__(self, params, lr: float, optimism: float = 1.0, adaptive: bool = False, optimism_lr: float = 0.0):
        super().__init__(params, {"lr": lr, "optimism": optimism, "adaptive": adaptive, "optimism_lr": optimism_lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if group["adaptive"]:  # ∂L(θ_k)/∂c of the last step is −lr·g_k·d_{k−1}: one step of c on it
                hyper = sum(float((p.grad * self.state[p]["d"]).sum()) for p in params if "d" in self.state[p])
                group["optimism"] = max(0.0, group["optimism"] + group["optimism_lr"] * group["lr"] * hyper)
            for p in params:
                state = self.state[p]
                g = p.grad
                d = g - state["g_prev"] if "g_prev" in state else torch.zeros_like(g)
                p.add_(g + group["optimism"] * d, alpha=-group["lr"])
                state["g_prev"], state["d"] = g.clone(), d
        return None


class OptimisticAdam(torch.optim.Optimizer):
    """Optimistic Adam (Daskalakis et al., ICLR 2018, Algorithm 1), bias-corrected:
    θ_k = θ_{k−1} − lr·(2·m̂_k/(√v̂_k + ε) − m̂_{k−1}/(√v̂_{k−1} + ε)), the second term 0 at k = 1."""

    def __init__(self, params, lr: float, betas: tuple = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(k=0, m=torch.zeros_like(p), v=torch.zeros_like(p), prev=torch.zeros_like(p))
                state["k"] = k = int(state["k"]) + 1  # a restored state may hold it as a tensor
                g = p.grad
                state["m"].mul_(b1).add_(g, alpha=1 - b1)
                state["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
                direction = (state["m"] / (1 - b1 ** k)) / ((state["v"] / (1 - b2 ** k)).sqrt() + group["eps"])
                p.add_(2 * direction - state["prev"], alpha=-group["lr"])
                state["prev"] = direction
        return None
