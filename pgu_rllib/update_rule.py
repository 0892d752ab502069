"""One point of the PGU family as a plain, validated value (spec §1–§4).

``UpdateRule`` holds the update-rule keys that ``PGUConfig`` adds to
``PPOConfig``; it is pure Python + torch so it can be checked without Ray.

Example::

    >>> rule = UpdateRule(form="V", scale="mla", alpha_o=1.0, alpha_r=0.5)
    >>> rule.validate().scale_params()
    {'alpha_o': 1.0, 'alpha_r': 0.5}
"""
from __future__ import annotations

import dataclasses

from pgu_rllib.forms import FORMS
from pgu_rllib.qreading import PARAMETERISATIONS, check_tau
from pgu_rllib.scales import SCALE_NAMES, SCALE_PARAMS, make_scale
from pgu_rllib.signals import DELTA_R_CHOICES


@dataclasses.dataclass
class UpdateRule:
    """The keys of one update rule, with the defaults ``PGUConfig`` uses.

    Defaults are PPO's clipped update (form ``V``, scale ``ppo_clip``, ε=0.2).
    ``kl_adaptive=False`` freezes RLlib's KL coefficient (MDPO's fixed 1/η);
    ``delta_r="return"`` (no baseline) is our addition for REINFORCE.
    """

    form: str = "V"
    scale: str = "ppo_clip"
    alpha_o: float | None = None
    alpha_r: float | None = None
    epsilon: float | None = 0.2
    tau: float = 1.0
    delta_r: str = "advantage"
    normalize_delta_r: bool = False
    parameterisation: str = "soft"
    kl_adaptive: bool = True

    KEYS = ("form", "scale", "alpha_o", "alpha_r", "epsilon", "tau", "delta_r",
            "normalize_delta_r", "parameterisation", "kl_adaptive")

    @classmethod
    def from_object(cls, obj) -> "UpdateRule":
        """Read the rule's keys off any object with those attributes (e.g. a config)."""
        return cls(**{k: getattr(obj, k) for k in cls.KEYS})

    def scale_params(self) -> dict:
        """The parameters the chosen scale takes, e.g. ``{"epsilon": 0.2}``."""
        return {k: getattr(self, k) for k in SCALE_PARAMS.get(self.scale, ())}

    def validate(self) -> "UpdateRule":
        """Raise ``ValueError`` naming the first bad key and what is allowed."""
        for key, allowed in (("form", FORMS), ("scale", SCALE_NAMES), ("delta_r", DELTA_R_CHOICES),
                             ("parameterisation", PARAMETERISATIONS)):
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key}={getattr(self, key)!r} is not allowed; allowed: {', '.join(allowed)}")
        for key in ("normalize_delta_r", "kl_adaptive"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"{key}={getattr(self, key)!r} is not allowed; allowed: true, false")
        check_tau(self.tau)
        make_scale(self.scale, **self.scale_params())
        return self

    def scale_fn(self):
        """The scale function ``f(Δ_O, Δ_R)`` of this rule."""
        return make_scale(self.scale, **self.scale_params())
