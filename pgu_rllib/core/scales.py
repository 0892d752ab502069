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

import dataclasses
import math
from typing import Callable


class _TorchOnFirstUse:
    """``torch``, imported by the first scale call: the registry below (names, parameter domains) is read by
    ``pgu best`` and the search-space checks, which then start in a fraction of a second instead of the
    seconds torch's import takes. The first attribute access puts the real module in its place."""

    def __getattr__(self, name):
        import torch as real

        globals()["torch"] = real
        return getattr(real, name)


torch = _TorchOnFirstUse()
EXP_CLAMP = 20.0
ScaleFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


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
    """``e^x·y`` inside PPO's trust region for the sign of y, else 0 (PPO's clip). ``epsilon`` may be a
    tensor (a population's per-member ε, docs/spec.md §8)."""
    log1p = math.log1p if isinstance(epsilon, (int, float)) else torch.log1p
    hi, lo = log1p(epsilon), log1p(-epsilon)

    def f_ppo_clip(x, y):
        keep = ((y > 0) & (x < hi)) | ((y < 0) & (x > lo))
        return torch.where(keep, _exp(x) * y, torch.zeros_like(y))

    return f_ppo_clip


def make_dpo(dpo_alpha: float, dpo_beta: float) -> ScaleFn:
    """DPO's drift (Lu et al., NeurIPS 2022) as a scale: the gradient of r·A − drift(r, A), r = e^x, A = y.

    drift = relu((r−1)A − α·tanh((r−1)A/α)) for A ≥ 0, relu(A·log r − β·tanh(A·log r/β)) for A < 0.
    With g(u) = u − c·tanh(u/c), g'(u) = tanh²(u/c), and relu(g(u)) > 0 exactly when u > 0, so
    f = r·∂/∂r [r·A − drift] is (docs/spec.md §4):

    * A ≥ 0: f = e^x·y·(1 − 1{x > 0}·tanh²((e^x − 1)·y/α));
    * A < 0: f = e^x·y − 1{x < 0}·y·tanh²(x·y/β).

    At x = 0 both are y: on-policy, DPO is the policy gradient.
    """

    def f_dpo(x, y):
        r = _exp(x)
        pos = r * y * (1.0 - torch.where(x > 0, torch.tanh((r - 1.0) * y / dpo_alpha) ** 2, torch.zeros_like(y)))
        neg = r * y - torch.where(x < 0, y * torch.tanh(x * y / dpo_beta) ** 2, torch.zeros_like(y))
        return torch.where(y >= 0, pos, neg)

    return f_dpo


# -- the registry of scales: the one place a scale and its parameters are declared --------------

@dataclasses.dataclass(frozen=True)
class ScaleParam:
    """A scale parameter: a config key of its own (``alpha_o``, ``dpo_beta``), its domain and default."""

    low: float
    high: float = math.inf
    low_inclusive: bool = True
    default: float | None = None  # None: the user must give it with this scale
    doc: str = ""

    @property
    def allowed(self) -> str:
        return f"{'[' if self.low_inclusive else '('}{self.low:g}, {self.high:g})"


@dataclasses.dataclass(frozen=True)
class ScaleSpec:
    """A scale: its name, the factory ``(**params) -> f(x, y)`` and its parameters (the config keys)."""

    name: str
    factory: Callable[..., ScaleFn]
    params: dict = dataclasses.field(default_factory=dict)  # key -> ScaleParam
    doc: str = ""


SCALES: dict[str, ScaleSpec] = {}


def register_scale(spec: ScaleSpec) -> ScaleSpec:
    """Add a scale to the family. Its parameters become config keys (``UpdateRule`` fields), searchable,
    mutable under PBT and logged as ``rule_<key>``; a key may be shared only with the same domain."""
    for key, param in spec.params.items():
        for other in SCALES.values():
            if key in other.params and other.params[key] != param:
                raise ValueError(f"scale {spec.name!r}: parameter {key!r} is {other.name!r}'s with another domain")
    SCALES[spec.name] = spec
    return spec


_ALPHA = dict(low=0.0)
for _spec in (
    ScaleSpec("sq", lambda: f_sq, doc="e^x·y"),
    ScaleSpec("ml", lambda: f_ml, doc="e^x·(e^y − 1)"),
    ScaleSpec("sil", lambda: f_sil, doc="e^x·(y)₊"),
    ScaleSpec("mla_piecewise", lambda: f_mla_piecewise, doc="the talk's piecewise table entry"),
    ScaleSpec("mla", make_mla, {"alpha_o": ScaleParam(**_ALPHA, doc="mla's weight on Δ_O"),
                                "alpha_r": ScaleParam(**_ALPHA, doc="mla's weight on Δ_R")},
              doc="y·max(1 + α_o·x + α_r·y, (1 + α_o·x)₊/2)"),
    ScaleSpec("ppo_clip", make_ppo_clip, {"epsilon": ScaleParam(0.0, 1.0, False, 0.2, "ppo_clip's ε")},
              doc="e^x·y inside PPO's trust region, else 0"),
    ScaleSpec("dpo", make_dpo, {"dpo_alpha": ScaleParam(0.0, math.inf, False, 2.0, "DPO's drift scale for A ≥ 0 (α)"),
                                "dpo_beta": ScaleParam(0.0, math.inf, False, 0.6, "DPO's drift scale for A < 0 (β)")},
              doc="the gradient of DPO's r·A − drift(r, A)"),
):
    register_scale(_spec)

SCALE_NAMES = tuple(SCALES)


def scale_params() -> dict[str, ScaleParam]:
    """Every scale parameter of every registered scale (config key -> ``ScaleParam``)."""
    return {k: p for spec in SCALES.values() for k, p in spec.params.items()}


def _check_param(scale: str, key: str, value, param: ScaleParam) -> float:
    allowed = param.allowed
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"scale {scale!r}: {key}={value!r} is not a number; allowed {allowed}") from None
    ok = (v >= param.low if param.low_inclusive else v > param.low) and v < param.high
    if not (ok and math.isfinite(v)):
        raise ValueError(f"scale {scale!r}: {key}={value!r} is out of range; allowed {allowed}")
    return v


def make_scale(name: str, **params) -> ScaleFn:
    """Return the scale function ``f(delta_o, delta_r) -> tensor`` called ``name``.

    ``name`` is one of the registered scales (``SCALE_NAMES``); it takes exactly its parameters
    (``mla``: ``alpha_o, alpha_r`` ≥ 0; ``ppo_clip``: ``epsilon`` in (0, 1); ``dpo``: ``dpo_alpha,
    dpo_beta`` > 0). Anything else raises ``ValueError`` naming the bad value and what is allowed.

    Example::

        >>> f = make_scale("ppo_clip", epsilon=0.2)
        >>> f(torch.tensor([0.0, 0.5]), torch.tensor([2.0, 2.0]))
        tensor([2., 0.])
    """
    if name not in SCALES:
        raise ValueError(f"unknown scale {name!r}; allowed: {', '.join(SCALES)}")
    spec = SCALES[name]
    extra = sorted(set(params) - set(spec.params))
    if extra:
        allowed = ", ".join(spec.params) or "none"
        raise ValueError(f"scale {name!r} takes no parameter {', '.join(extra)}; its parameters: {allowed}")
    missing = [k for k in spec.params if params.get(k) is None]
    if missing:
        raise ValueError(f"scale {name!r} needs parameter(s) {', '.join(missing)}")
    return spec.factory(**{k: _check_param(name, k, params[k], p) for k, p in spec.params.items()})
