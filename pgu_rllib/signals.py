"""The two learning signals per sample, Δ_O and Δ_R (spec §1).

Both leave with gradients stopped. ``Δ_O`` is clamped to ``[-20, 20]``; a
non-finite signal raises (``check_finite``) instead of reaching the weights.

Example::

    >>> import torch
    >>> delta_o(torch.tensor([-1.0]), torch.tensor([-1.0]))
    tensor([0.])
"""
from __future__ import annotations

import torch

DELTA_O_CLAMP = 20.0
DELTA_R_CHOICES = ("advantage", "q", "return")


def delta_o(logp: torch.Tensor, behaviour_logp: torch.Tensor) -> torch.Tensor:
    """``Δ_O = log π_θ(a|s) − log b(a|s)``, detached and clamped to ±20."""
    return (logp.detach() - behaviour_logp).clamp(-DELTA_O_CLAMP, DELTA_O_CLAMP)


def masked_standardize(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``(x − mean) / max(std, 1e-4)`` over the valid entries (RLlib's GAE rule)."""
    valid = x if mask is None else x[mask]
    return (x - valid.mean()) / valid.std().clamp_min(1e-4)


def delta_r(
    kind: str,
    *,
    advantages: torch.Tensor | None = None,
    value_targets: torch.Tensor | None = None,
    q_sa: torch.Tensor | None = None,
    normalize: bool = False,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The prediction error Δ_R, detached.

    * ``"advantage"``: ``Â`` (RLlib's GAE column, already standardised per batch);
    * ``"q"``: ``R̂ − q_θ(s, a)`` with ``R̂`` the λ-return value target (spec §1);
    * ``"return"``: ``R̂`` itself, no baseline (REINFORCE; our addition, spec §6).

    ``normalize`` standardises ``"q"`` and ``"return"`` over the (minibatch)
    valid entries; it is ignored for ``"advantage"``, which RLlib standardised.
    """
    if kind == "advantage":
        return advantages.detach()
    if kind == "q":
        out = value_targets - q_sa.detach()
    elif kind == "return":
        out = value_targets.detach().clone()
    else:
        raise ValueError(f"unknown delta_r {kind!r}; allowed: {', '.join(DELTA_R_CHOICES)}")
    return masked_standardize(out, mask) if normalize else out


def check_finite(name: str, value: torch.Tensor, *, module_id: str, step: int) -> None:
    """Raise ``FloatingPointError`` naming the signal, module and step on NaN/inf."""
    if not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise FloatingPointError(
            f"non-finite {name} ({bad} of {value.numel()} samples) in module {module_id!r} "
            f"at learner step {step}"
        )
