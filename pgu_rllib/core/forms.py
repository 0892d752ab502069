"""The form axis: which gradient the scale multiplies (spec §3).

Each function returns the per-sample surrogate loss to *minimise*; the caller
takes the (masked) mean. ``f`` enters with its gradient stopped.

==== ===================================== =========================================
form ascent direction                      per-sample surrogate loss
==== ===================================== =========================================
Q    ``f·∇q(s,a)``                         ``−sg(f)·q(s,a)``
V    ``f·(∇q(s,a) − E_u ∇q(s,u))``         ``−sg(f)·τ·log π(a|s)``
P    ``U_V + τ·∇E_{u∼π}[sg q(s,u)]``       ``L_V − τ·Σ_u π(u|s)·sg(q(s,u))`` (discrete)
                                           ``L_V + τ²·H(π(·|s))``  (continuous)
==== ===================================== =========================================

**Our choice at τ ≠ 1.** The spec writes the P term without the factor τ.
Since ``∇q − E∇q = τ∇log π``, form V with ``Δ_R = R̂ − q`` has expectation
``τ(∇J + τ∇H)``; the unscaled term would remove only ``τ∇H`` of the
``τ²∇H`` bias. Scaling it by τ makes ``E[U_P] = τ∇J`` exactly for every τ
(tests/test_forms.py); at τ = 1 (the talk's setting, our default) both agree.

Example::

    >>> import torch
    >>> logp = torch.log(torch.tensor([0.5], requires_grad=True))
    >>> surrogate("V", torch.tensor([2.0]), logp=logp, tau=1.0)
    tensor([1.3863], grad_fn=<MulBackward0>)
"""
from __future__ import annotations

import torch

FORMS = ("Q", "V", "P")


def expected_q_discrete(logits: torch.Tensor, q_all: torch.Tensor) -> torch.Tensor:
    """``Σ_u π_θ(u|s)·sg(q_θ(s,u))``: its gradient is ``∇_θ E_{u∼π_θ}[sg q(s,u)]``."""
    return (torch.softmax(logits, dim=-1) * q_all.detach()).sum(-1)


def expected_q_continuous(entropy: torch.Tensor, tau: float) -> torch.Tensor:
    """A surrogate of ``E_{u∼π_θ}[sg q(s,u)]`` under the soft reading: ``−τ·H(π_θ(·|s))``
    (use the distribution's analytic entropy).

    ``∇_θ Σ_u π(u)·sg(τ log π(u) + v) = −τ ∇H`` (spec §3), so only the gradient
    matches; the value is not the expectation.
    """
    return -tau * entropy


def surrogate(
    form: str,
    f: torch.Tensor,
    *,
    logp: torch.Tensor | None = None,
    q_sa: torch.Tensor | None = None,
    expected_q: torch.Tensor | None = None,
    tau: float = 1.0,
) -> torch.Tensor:
    """Per-sample surrogate loss of ``form`` (``"Q"``, ``"V"`` or ``"P"``).

    ``Q`` needs ``q_sa`` (with gradient); ``V`` needs ``logp``; ``P`` needs
    ``logp`` and ``expected_q`` (from ``expected_q_discrete`` or
    ``expected_q_continuous``).
    """
    f = f.detach()
    if form == "Q":
        return -f * q_sa
    if form == "V":
        return -f * tau * logp
    if form == "P":
        return -f * tau * logp - tau * expected_q
    raise ValueError(f"unknown form {form!r}; allowed: {', '.join(FORMS)}")


def k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """DeepSeekMath's unbiased estimator of KL(π_θ‖π_ref) on an action sampled from π_θ:
    ``π_ref/π_θ − log(π_ref/π_θ) − 1`` (≥ 0, 0 where the two agree). Its gradient w.r.t. θ is
    ``(1 − π_ref/π_θ)·∇log π_θ``. The log-ratio is clamped to ±20 like every exponent here.

    >>> k3(torch.log(torch.tensor([0.5, 0.25])), torch.log(torch.tensor([0.5, 0.5])))
    tensor([0.0000, 0.3069])
    """
    log_ratio = (ref_logp - logp).clamp(-20.0, 20.0)
    return torch.exp(log_ratio) - log_ratio - 1.0
