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
DELTA_R_CHOICES = ("advantage", "q", "v", "return", "group")


def delta_o(logp: torch.Tensor, behaviour_logp: torch.Tensor, *, on_policy: bool = False) -> torch.Tensor:
    """``Δ_O = log π_θ(a|s) − log b(a|s)``, detached and clamped to ±20.

    ``on_policy=True`` (one gradient step per batch: the policy being updated is the one
    that sampled the batch) returns exact zeros. Computed, the difference would be the
    rounding between the sampler's forward pass and the learner's over a batch of another
    shape (≤ 2e-7 on CartPole, tests/test_presets.py), not off-policyness.
    """
    if on_policy:
        return torch.zeros_like(logp).detach()
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
    returns: torch.Tensor | None = None,
    group: torch.Tensor | None = None,
    q_sa: torch.Tensor | None = None,
    v_s: torch.Tensor | None = None,
    normalize: bool = False,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The prediction error Δ_R, detached (spec §1; the table in docs/spec.md §1).

    * ``"advantage"``: ``Â``, RLlib's GAE column, already standardised over the batch;
    * ``"q"``: ``R̂ − q_θ(s, a)``, ``R̂`` the λ-return value target (the talk's Δ_R);
    * ``"v"``: ``R̂ − v_θ(s)``, the raw advantage with a learned state baseline
      (``G_t − V(s)`` at λ = 1; our addition, for ``reinforce_baseline``);
    * ``"return"``: ``G_t``, the discounted return-to-go to the end of the episode,
      no baseline and no bootstrap (our addition, for ``reinforce``);
    * ``"group"``: GRPO's group-relative signal, ``G_t`` standardised among the samples of the
      same state (computed over the whole batch, before minibatches).

    ``normalize`` standardises over the (minibatch) valid entries; ``UpdateRule.validate``
    rejects it with ``"advantage"`` (already standardised) and with form P (it biases P).
    """
    if kind == "advantage":
        return advantages.detach()
    if kind == "group":
        return group.detach()
    if kind == "q":
        out = value_targets - q_sa.detach()
    elif kind == "v":
        out = value_targets - v_s.detach()
    elif kind == "return":
        out = returns.detach().clone()
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
