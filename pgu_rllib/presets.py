"""Named points of the family (spec §6), as plain dicts of config keys.

A preset sets the *update rule* only (plus the on-policy knobs that define it,
such as REINFORCE's single epoch); the task's recipe (network, normalisation,
learning rate, batch) stays the same across presets. Keys are those of
``PGUConfig.update_from_dict`` (note ``"lambda"``, not ``lambda_``).

Example::

    >>> PRESETS["ppo"]["scale"]
    'ppo_clip'
"""
from __future__ import annotations

_ON_POLICY = {"num_epochs": 1, "use_kl_loss": False}

PRESETS: dict[str, dict] = {
    "ppo": {"form": "V", "scale": "ppo_clip", "epsilon": 0.2, "delta_r": "advantage",
            "tau": 1.0, "use_kl_loss": False},
    "reinforce": {"form": "V", "scale": "sq", "delta_r": "return", "normalize_delta_r": True,
                  "lambda": 1.0, **_ON_POLICY},
    "reinforce_baseline": {"form": "V", "scale": "sq", "delta_r": "advantage", "lambda": 1.0,
                           **_ON_POLICY},
    "a2c": {"form": "V", "scale": "sq", "delta_r": "advantage", "lambda": 0.95, **_ON_POLICY},
    "pg_is": {"form": "V", "scale": "sq", "delta_r": "advantage", "use_kl_loss": False},
    "pgpb": {"form": "P", "scale": "sq", "delta_r": "q", "normalize_delta_r": True,
             "use_kl_loss": False},
    "ml": {"form": "V", "scale": "ml", "delta_r": "advantage", "use_kl_loss": False},
    "sil": {"form": "V", "scale": "sil", "delta_r": "advantage", "use_kl_loss": False},
    "mla": {"form": "V", "scale": "mla", "alpha_o": 1.0, "alpha_r": 1.0, "delta_r": "advantage",
            "use_kl_loss": False},
    "mdpo": {"form": "V", "scale": "sq", "delta_r": "advantage", "use_kl_loss": True,
             "kl_coeff": 1.0, "kl_adaptive": False},
}

DESCRIPTIONS = {
    "ppo": "PPO-clip: form V, ppo_clip(eps=0.2), GAE advantage, no KL penalty",
    "reinforce": "REINFORCE: form V, sq, Δ_R = standardised return (λ=1), one epoch",
    "reinforce_baseline": "REINFORCE with a learned baseline: V, sq, advantage with λ=1, one epoch",
    "a2c": "A2C: V, sq, GAE(0.95) advantage, one epoch",
    "pg_is": "importance-weighted PG: V, sq, advantage, PPO's epochs",
    "pgpb": "PG with policy-logit baseline: P, sq, Δ_R = R̂ − q_θ (standardised)",
    "ml": "max-likelihood: V, ml = e^x(e^y − 1)",
    "sil": "self-imitation lower bound: V, sil = e^x (y)_+",
    "mla": "parametric MLA: V, mla(α_o=1, α_r=1)",
    "mdpo": "MDPO: V, sq, fixed KL(old‖new) penalty 1/η with η=1",
}


def get_preset(name: str) -> dict:
    """A copy of preset ``name``; ``ValueError`` lists the known ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return dict(PRESETS[name])
