"""Reading the policy as ``π_θ(a|s) ∝ exp(q_θ(s,a)/τ)`` (spec §2).

* ``logit`` (discrete only): ``q_θ(s,·) = τ · logits``; no value head is needed.
* ``soft`` (any action space): ``q_θ(s,a) = τ·log π_θ(a|s) + v_θ(s)``.

In both, ``∇q(s,a) − E_u ∇q(s,u) = τ ∇log π(a|s)``.

Example::

    >>> import torch
    >>> q_soft(torch.tensor([-0.5]), torch.tensor([2.0]), tau=2.0)
    tensor([1.])
"""
from __future__ import annotations

import math

import torch

PARAMETERISATIONS = ("soft", "logit")


def check_tau(tau) -> float:
    """Return ``tau`` as a float, or raise ``ValueError`` unless it is finite and > 0."""
    try:
        t = float(tau)
    except (TypeError, ValueError):
        raise ValueError(f"tau={tau!r} is not a number; allowed: a finite number > 0") from None
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"tau={tau!r} is out of range; allowed: a finite number > 0")
    return t


def q_soft(logp: torch.Tensor, value: torch.Tensor, tau: float) -> torch.Tensor:
    """``q_θ(s,a) = τ·log π_θ(a|s) + v_θ(s)`` (soft parameterisation)."""
    return tau * logp + value


def q_logit(logits: torch.Tensor, tau: float) -> torch.Tensor:
    """``q_θ(s,·) = τ·logits`` for every action (logit parameterisation)."""
    return tau * logits


def q_all_actions(parameterisation: str, logits: torch.Tensor, value: torch.Tensor | None, tau: float):
    """``q_θ(s,u)`` for every discrete action ``u``, shape ``(B, n)``."""
    if parameterisation == "logit":
        return q_logit(logits, tau)
    return q_soft(torch.log_softmax(logits, dim=-1), value.unsqueeze(-1), tau)
