"""The scale axis: ``f(Δ_O, Δ_R)``, how much each sample counts (spec §4).

Every scale is an elementwise torch function of ``x = Δ_O`` (log importance
ratio) and ``y = Δ_R`` (prediction error). ``exp`` arguments are clamped to
``[-20, 20]`` (spec §1) so a scale is safe to call on raw signals.

Example::

    >>> import torch
    >>> from pgu_rllib.core.scales import make_scale
    >>> f = make_scale("mla", alpha_o=1.0, alpha_r=0.0)
    >>> f(torch.tensor([0.0, 0.0]), torch.tensor([1.0, -1.0]))
    tensor([ 1., -1.])
"""
from __future__ import annotations

import math
from typing import Callable

import torch

EXP_CLAMP = 20.0
ScaleFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _exp(z: torch.Tensor) -> torch.Tensor:
    return torch.exp(z.clamp(-EXP_CLAMP, EXP_CLAMP))


def f_sq(x, y):
    """``e^x · y``: importance-weighted policy gradient (with form V)."""
    return _exp(x) * y


def f_ml(x, y):
    """``e^x · (e^y − 1)``: gradient of KL(p̂ ‖ π_θ), max-likelihood."""
    return _exp(x) * (_exp(y) - 1.0)


def f_sil(x, y):
    """``e^x · (y)_+``: the self-imitation lower bound."""
    return _exp(x) * torch.relu(y)


def f_mla_piecewise(x, y):
    """The talk's table entry: ``−½(1+x)²`` if ``1+x+y ≤ 0 < 1+x``, else ``y·(1+x+y/2)_+``."""
    u = 1.0 + x
    inner = (u + y <= 0) & (u > 0)
    return torch.where(inner, -0.5 * u**2, y * torch.relu(u + 0.5 * y))


def make_mla(alpha_o: float, alpha_r: float) -> ScaleFn:
    """``f = y · max(1 + α_o·x + α_r·y, (1 + α_o·x)_+ / 2)``, the parametric family."""

    def f_mla(x, y):
        u = 1.0 + alpha_o * x
        return y * torch.maximum(u + alpha_r * y, 0.5 * torch.relu(u))

    return f_mla


def make_ppo_clip(epsilon: float) -> ScaleFn:
    """``e^x·y`` inside PPO's trust region for the sign of y, else 0 (PPO's clip)."""
    hi, lo = math.log1p(epsilon), math.log1p(-epsilon)

    def f_ppo_clip(x, y):
        keep = ((y > 0) & (x < hi)) | ((y < 0) & (x > lo))
        return torch.where(keep, _exp(x) * y, torch.zeros_like(y))

    return f_ppo_clip


# name -> (factory, {param: (low, high, low_inclusive)})
_SCALES = {
    "sq": (lambda: f_sq, {}),
    "ml": (lambda: f_ml, {}),
    "sil": (lambda: f_sil, {}),
    "mla_piecewise": (lambda: f_mla_piecewise, {}),
    "mla": (make_mla, {"alpha_o": (0.0, math.inf, True), "alpha_r": (0.0, math.inf, True)}),
    "ppo_clip": (make_ppo_clip, {"epsilon": (0.0, 1.0, False)}),
}
SCALE_NAMES = tuple(_SCALES)
SCALE_PARAMS = {name: tuple(params) for name, (_, params) in _SCALES.items()}


def _check_param(scale: str, key: str, value, bounds) -> float:
    low, high, low_inclusive = bounds
    allowed = f"{'[' if low_inclusive else '('}{low:g}, {high:g})"
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"scale {scale!r}: {key}={value!r} is not a number; allowed {allowed}") from None
    ok = (v >= low if low_inclusive else v > low) and v < high
    if not (ok and math.isfinite(v)):
        raise ValueError(f"scale {scale!r}: {key}={value!r} is out of range; allowed {allowed}")
    return v


def make_scale(name: str, **params) -> ScaleFn:
    """Return the scale function ``f(delta_o, delta_r) -> tensor`` called ``name``.

    ``name`` is one of ``sq, ml, sil, mla_piecewise, mla, ppo_clip``; ``mla``
    needs ``alpha_o, alpha_r`` (each ≥ 0), ``ppo_clip`` needs ``epsilon`` in
    (0, 1); the others take none. Anything else raises ``ValueError`` naming
    the bad value and what is allowed.

    Example::

        >>> f = make_scale("ppo_clip", epsilon=0.2)
        >>> f(torch.tensor([0.0, 0.5]), torch.tensor([2.0, 2.0]))
        tensor([2., 0.])
    """
    if name not in _SCALES:
        raise ValueError(f"unknown scale {name!r}; allowed: {', '.join(SCALE_NAMES)}")
    factory, spec = _SCALES[name]
    extra = sorted(set(params) - set(spec))
    if extra:
        allowed = ", ".join(spec) or "none"
        raise ValueError(f"scale {name!r} takes no parameter {', '.join(extra)}; its parameters: {allowed}")
    missing = [k for k in spec if params.get(k) is None]
    if missing:
        raise ValueError(f"scale {name!r} needs parameter(s) {', '.join(missing)}")
    return factory(**{k: _check_param(name, k, params[k], spec[k]) for k in spec})
