"""The step axis: how the PGU surrogate's gradient becomes a parameter change (no Ray).

* ``first_order``: the optimiser's step (Adam) on the gradient g; the default.
* ``natural``: Δθ = −α·F⁻¹g with F the Fisher matrix of the policy and α = √(2δ / gᵀF⁻¹g), so
  the quadratic model of KL(π_old‖π_new) equals the radius δ (``max_kl``); F⁻¹g by conjugate
  gradient on Fisher-vector products, F + damping·I (Kakade 2001; the survey's NPG).
* ``trust_region``: the natural step, then a backtracking line search (β = ½) that accepts the
  first β^j·Δθ whose measured KL ≤ δ and whose surrogate improves, or no step (TRPO).
* ``optimistic``: the optimiser sees g̃_k = g_k + c·(g_k − g_{k−1}) (``optimism`` c; c = 1 is the
  classical θ_{k+1} = θ_k − η(2g_k − g_{k−1}); Chelu et al. 2023); c = 0 is first order exactly.

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

STEPS = ("first_order", "natural", "trust_region", "optimistic")
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
