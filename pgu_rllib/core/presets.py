"""Named points of the family (spec §6), as plain dicts of config keys.

A preset is the algorithm as the policy-gradient survey defines it, not a look-alike: it
sets the update rule *and* the knobs that make it that algorithm (REINFORCE's one gradient
step per batch of whole episodes, MDPO's reverse KL and its annealed step). The task's
recipe (network, normalisation, learning rate, batch size) stays the same across presets.
Keys are those of ``PGUConfig.update_from_dict`` (note ``"lambda"``, not ``lambda_``).

What makes each one its algorithm is tested in ``tests/test_presets.py``:

* ``reinforce``, ``reinforce_baseline``, ``a2c``: one gradient step per batch (one epoch,
  ``minibatch_size=None`` = one minibatch that is the whole batch), so Δ_O ≡ 0;
* ``reinforce``: Δ_R = G_t, the Monte-Carlo return-to-go of whole episodes
  (``batch_mode="complete_episodes"``, one env per runner so no episode is dropped part-way),
  no baseline, no standardisation, no critic (``use_critic=False``). An episode cut by the
  env's time limit is summed as far as it went (no bootstrap);
* ``reinforce_baseline``: Δ_R = G_t − V(s) (λ = 1 on whole episodes; V bootstraps only where a
  time limit truncates an episode);
* ``pgpb``: form P, Δ_R = R̂ − q_θ, not standardised: unbiased for τ∇J;
* ``mdpo``: the penalty (1/η_t)·KL(π_θ‖π_old), η_t = max(1 − t/T, 0.01) annealed over the
  budget T (Tomar et al. 2020, on-policy MDPO: step size 1 → 0 linearly), with 1/η_0 =
  ``kl_coeff`` = 1;
* ``sil_scale``: the self-imitation *scale* ``(Δ_R)_+`` alone, with no replay buffer of past
  good episodes, so it is not self-imitation learning, and is not called ``sil``;
* ``npg``, ``trpo``: one natural step per batch (``step="natural"``), TRPO with its line search
  (``step="trust_region"``): the step never leaves the KL radius;
* ``grpo``: Δ_R = each sample's return standardised among the samples of the same state, with
  PPO's clip; needs a task that samples several actions per state (the bandit's ``group_size``);
* ``optimistic_pg``: A2C's one step per batch with the optimiser fed g + (g − g_prev).

Example::

    >>> PRESETS["ppo"]["scale"]
    'ppo_clip'
    >>> PRESETS["a2c"]["num_epochs"], PRESETS["a2c"]["minibatch_size"]
    (1, None)
"""
from __future__ import annotations

# One gradient step per batch: one epoch over one minibatch that is the whole batch.
_ONE_STEP = {"num_epochs": 1, "minibatch_size": None, "use_kl_loss": False}
# Whole episodes only, from one env per runner (vector envs would drop unfinished episodes,
# biasing the batch towards short ones).
_WHOLE_EPISODES = {"batch_mode": "complete_episodes", "num_envs_per_env_runner": 1}

PRESETS: dict[str, dict] = {
    "ppo": {"form": "V", "scale": "ppo_clip", "epsilon": 0.2, "delta_r": "advantage", "tau": 1.0,
            "use_kl_loss": False},
    "reinforce": {"form": "V", "scale": "sq", "delta_r": "return", "normalize_delta_r": False,
                  "use_critic": False, **_ONE_STEP, **_WHOLE_EPISODES},
    "reinforce_baseline": {"form": "V", "scale": "sq", "delta_r": "v", "normalize_delta_r": False,
                           "lambda": 1.0, **_ONE_STEP, **_WHOLE_EPISODES},
    "a2c": {"form": "V", "scale": "sq", "delta_r": "advantage", **_ONE_STEP},
    "pg_is": {"form": "V", "scale": "sq", "delta_r": "advantage", "use_kl_loss": False},
    "pgpb": {"form": "P", "scale": "sq", "delta_r": "q", "normalize_delta_r": False, "use_kl_loss": False},
    "ml": {"form": "V", "scale": "ml", "delta_r": "advantage", "use_kl_loss": False},
    "sil_scale": {"form": "V", "scale": "sil", "delta_r": "advantage", "use_kl_loss": False},
    "mla": {"form": "V", "scale": "mla", "alpha_o": 1.0, "alpha_r": 1.0, "delta_r": "advantage",
            "use_kl_loss": False},
    "mdpo": {"form": "V", "scale": "sq", "delta_r": "advantage", "use_kl_loss": True, "kl_coeff": 1.0,
             "kl_direction": "new_old", "kl_schedule": "mdpo"},
    "npg": {"form": "V", "scale": "sq", "delta_r": "advantage", "step": "natural", "max_kl": 0.01, **_ONE_STEP},
    "trpo": {"form": "V", "scale": "sq", "delta_r": "advantage", "step": "trust_region", "max_kl": 0.01,
             **_ONE_STEP},
    "grpo": {"form": "V", "scale": "ppo_clip", "epsilon": 0.2, "delta_r": "group", "use_kl_loss": False},
    "optimistic_pg": {"form": "V", "scale": "sq", "delta_r": "advantage", "step": "optimistic", "optimism": 1.0,
                      **_ONE_STEP},
}

DESCRIPTIONS = {
    "ppo": "PPO-clip: V, ppo_clip(ε=0.2), GAE advantage, no KL penalty",
    "reinforce": "REINFORCE: V, sq, Δ_R = Monte-Carlo return G_t of whole episodes, no baseline, one step per batch",
    "reinforce_baseline": "REINFORCE with baseline: V, sq, Δ_R = G_t − V(s), one step per batch",
    "a2c": "A2C: V, sq, GAE advantage, one step per batch",
    "pg_is": "importance-weighted PG: V, sq, GAE advantage, PPO's epochs and minibatches, no clip",
    "pgpb": "PG with policy-logit baseline: P, sq, Δ_R = R̂ − q_θ (unbiased for τ∇J)",
    "ml": "max-likelihood scale: V, e^x(e^y − 1), GAE advantage",
    "sil_scale": "the self-imitation scale (y)_+ alone: V, e^x·(y)_+, no replay (not SIL)",
    "mla": "parametric scale mla(α_o=1, α_r=1) (the talk's max-likelihood point; α_r=½ matches ml to 2nd order)",
    "mdpo": "MDPO: V, sq, GAE advantage, penalty KL(π_θ‖π_old)/η_t, η_t = 1 − t/T annealed",
    "npg": "natural PG: V, sq, GAE advantage, one natural step per batch (KL radius 0.01, CG)",
    "trpo": "TRPO: npg's step, then a line search keeping KL ≤ 0.01 with an improved surrogate",
    "grpo": "GRPO: V, ppo_clip(0.2), Δ_R = returns standardised within groups of the same state",
    "optimistic_pg": "optimistic PG: V, sq, GAE advantage, Adam on g + (g − g_prev), one step per batch",
}


def get_preset(name: str) -> dict:
    """A copy of preset ``name``; ``ValueError`` lists the known ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return dict(PRESETS[name])
