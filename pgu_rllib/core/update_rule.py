"""One point of the PGU family as a plain, validated value (spec §1–§4, §6).

``UpdateRule`` holds the update-rule keys that ``PGUConfig`` adds to ``PPOConfig``. It is
pure Python + torch, so it can be checked without Ray. Its fields are the one source of
the keys: ``KEYS``, ``PGUConfig.training``'s arguments and the README's key table are
read off ``dataclasses.fields(UpdateRule)`` (each field's ``metadata["doc"]``).

Combinations outside the family are refused, never stored under a family name
(docs/spec.md §3): form ``P`` is PGPB only with ``delta_r="q"`` and no mean-subtracting
standardisation.

Example::

    >>> rule = UpdateRule(form="V", scale="mla", alpha_o=1.0, alpha_r=0.5)
    >>> rule.validate().scale_params()
    {'alpha_o': 1.0, 'alpha_r': 0.5}
    >>> UpdateRule(form="P", delta_r="v").validate()
    Traceback (most recent call last):
    ...
    ValueError: form='P' with delta_r='v' is not PGPB: E[U] = τ∇J − τ²∇H (an entropy penalty); form P needs delta_r='q' and normalize_delta_r=false
"""
from __future__ import annotations

import dataclasses
import math

from pgu_rllib.core.forms import FORMS
from pgu_rllib.core.qreading import PARAMETERISATIONS, check_tau
from pgu_rllib.core.scales import SCALE_NAMES, SCALES, make_scale, scale_params
from pgu_rllib.core.signals import DELTA_R_CHOICES
from pgu_rllib.core.steps import STEPS

KL_DIRECTIONS = ("old_new", "new_old")
KL_SCHEDULES = ("adaptive", "fixed", "mdpo")
MDPO_ETA_MIN = 0.01


def _key(default, doc: str, allowed: tuple | str):
    return dataclasses.field(default=default, metadata={"doc": doc, "allowed": allowed})


# What form P with another Δ_R computes instead of PGPB (docs/spec.md §3; tests/test_expectations.py).
_NOT_PGPB = {
    "advantage": "E[U] = (τ/σ)∇J − τ²∇H (σ the advantage's std before RLlib standardised it; an entropy penalty)",
    "v": "E[U] = τ∇J − τ²∇H (an entropy penalty)",
    "return": "E[U] = τ∇J − τ²∇H (an entropy penalty)",
    "group": "E[U] = (τ/σ)∇J − τ²∇H (σ the within-group std of the reward; an entropy penalty)",
}


def _scale_fields() -> list[tuple]:
    """One ``UpdateRule`` field per parameter of the registered scales (``core.scales.SCALES``)."""
    return [(key, float | None, _key(param.default, param.doc + (" (required with that scale)" if param.default is None
                                                                 else ""), param.allowed))
            for key, param in scale_params().items()]


class _UpdateRuleMethods:
    """The behaviour of ``UpdateRule`` (its fields are built below, the scale parameters from the registry)."""

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The update-rule keys, in field order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_object(cls, obj) -> "UpdateRule":
        """Read the rule's keys off any object with those attributes (e.g. a config)."""
        return cls(**{k: getattr(obj, k) for k in cls.keys()})

    def scale_params(self) -> dict:
        """The parameters the chosen scale takes, e.g. ``{"epsilon": 0.2}``."""
        return {k: getattr(self, k) for k in SCALES[self.scale].params} if self.scale in SCALES else {}

    def validate(self) -> "UpdateRule":
        """Raise ``ValueError`` naming the first bad key (or combination) and what is allowed."""
        for f in dataclasses.fields(self):
            allowed = f.metadata["allowed"]
            if isinstance(allowed, tuple) and getattr(self, f.name) not in allowed:
                raise ValueError(f"{f.name}={getattr(self, f.name)!r} is not allowed; allowed: {', '.join(allowed)}")
        if not isinstance(self.normalize_delta_r, bool):
            raise ValueError(f"normalize_delta_r={self.normalize_delta_r!r} is not allowed; allowed: true, false")
        check_tau(self.tau)
        make_scale(self.scale, **self.scale_params())
        for key, ok in (("max_kl", _positive(self.max_kl)), ("cg_damping", _non_negative(self.cg_damping)),
                        ("optimism", _non_negative(self.optimism)), ("cg_iters", _count(self.cg_iters)),
                        ("optimism_lr", _non_negative(self.optimism_lr)),
                        ("optimism_adaptive", isinstance(self.optimism_adaptive, bool)),
                        ("line_search_steps", _count(self.line_search_steps)),
                        ("ref_kl_coeff", _non_negative(self.ref_kl_coeff)),
                        ("ref_refresh", _count(self.ref_refresh) or (_integer(self.ref_refresh) and self.ref_refresh == 0))):
            if not ok:
                allowed = dataclasses.fields(self)[[f.name for f in dataclasses.fields(self)].index(key)]
                raise ValueError(f"{key}={getattr(self, key)!r} is not allowed; allowed: {allowed.metadata['allowed']}")
        if self.normalize_delta_r and self.delta_r in ("advantage", "group"):
            raise ValueError(f"normalize_delta_r=true with delta_r={self.delta_r!r} is not allowed: it is already "
                             f"standardised ({'by RLlib over the batch' if self.delta_r == 'advantage' else 'within each group'})")
        if self.form == "P" and self.delta_r != "q":
            raise ValueError(f"form='P' with delta_r={self.delta_r!r} is not PGPB: {_NOT_PGPB[self.delta_r]}; "
                             f"form P needs delta_r='q' and normalize_delta_r=false")
        if self.form == "P" and self.normalize_delta_r:
            raise ValueError("form='P' with normalize_delta_r=true is not PGPB: E[U] = (τ/σ)(∇J + τ∇H) − τ²∇H "
                             "(σ the std of Δ_R); form P needs delta_r='q' and normalize_delta_r=false")
        return self

    def scale_fn(self):
        """The scale function ``f(Δ_O, Δ_R)`` of this rule."""
        return make_scale(self.scale, **self.scale_params())


UpdateRule = dataclasses.make_dataclass("UpdateRule", [
    ("form", str, _key("V", "which gradient the scale multiplies (§3)", FORMS)),
    ("scale", str, _key("ppo_clip", "the scale function f(Δ_O, Δ_R) (§4)", SCALE_NAMES)),
    *_scale_fields(),
    ("tau", float, _key(1.0, "temperature of π ∝ exp(q/τ) (§2)", "> 0")),
    ("delta_r", str, _key("advantage", "Δ_R: Â (RLlib's standardised GAE), R̂ − q_θ(s,a), R̂ − v_θ(s), "
                          "or the Monte-Carlo return G_t (§1)", DELTA_R_CHOICES)),
    ("normalize_delta_r", bool, _key(False, "standardise Δ_R per minibatch (not with advantage or form P)",
                                     "true, false")),
    ("parameterisation", str, _key("soft", "how q_θ is read off the policy (§2)", PARAMETERISATIONS)),
    ("kl_direction", str, _key("old_new", "the KL penalty: KL(π_old‖π_θ) (PPO) or KL(π_θ‖π_old) (MDPO)",
                               KL_DIRECTIONS)),
    ("kl_schedule", str, _key("adaptive", "its coefficient: RLlib's adaptive rule, fixed at kl_coeff, or "
                              f"MDPO's kl_coeff/η_t with η_t = max(1 − t/T, {MDPO_ETA_MIN})", KL_SCHEDULES)),
    ("step", str, _key("first_order", "how the surrogate's gradient moves the policy: the optimiser (Adam), a "
                       "natural step, a trust-region step, Adam on the extrapolated gradient, optimistic gradient "
                       "descent, or Optimistic Adam", STEPS)),
    ("max_kl", float, _key(0.01, "natural and trust_region: the KL radius δ of a step", "> 0")),
    ("cg_iters", int, _key(10, "natural and trust_region: conjugate-gradient iterations for F⁻¹g", "an integer ≥ 1")),
    ("cg_damping", float, _key(0.01, "natural and trust_region: F + damping·I", "≥ 0")),
    ("line_search_steps", int, _key(10, "trust_region: backtracking steps (β = ½) before giving up the step",
                                    "an integer ≥ 1")),
    ("optimism", float, _key(1.0, "optimistic and optimistic_sgd: the coefficient c of g + c·(g − g_prev); c = 0 "
                              "is first order", "≥ 0")),
    ("optimism_adaptive", bool, _key(False, "optimistic_sgd: adapt c by the hypergradient of the next step's loss",
                                     "true, false")),
    ("optimism_lr", float, _key(0.01, "optimistic_sgd with optimism_adaptive: the step size β_c of c", "≥ 0")),
    ("ref_kl_coeff", float, _key(0.0, "GRPO's β: the penalty β·KL(π_θ‖π_ref), k3 estimator; 0: none", "≥ 0")),
    ("ref_refresh", int, _key(0, "π_ref: the initial policy (0), or the current one every K updates",
                              "an integer ≥ 0")),
], bases=(_UpdateRuleMethods,))
UpdateRule.__module__ = __name__
UpdateRule.__doc__ = """The keys of one update rule, with the defaults ``PGUConfig`` uses.

    Defaults are PPO's clipped update (form ``V``, scale ``ppo_clip``, ε = 0.2, Δ_R = Â) with RLlib's
    KL(π_old‖π_θ) penalty and adaptive coefficient (active when ``use_kl_loss``). The fields between
    ``scale`` and ``tau`` are the registered scales' parameters (``core.scales.SCALES``), in registry order.
    """


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _positive(v) -> bool:
    return _number(v) and v > 0


def _non_negative(v) -> bool:
    return _number(v) and v >= 0


def _integer(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _count(v) -> bool:
    return _integer(v) and v >= 1


KEYS = UpdateRule.keys()
