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
  PPO's clip and DeepSeekMath's penalty β·KL(π_θ‖π_ref), β = 0.04, π_ref the initial policy (k3
  estimator); needs a task that samples several actions per state (the bandit's ``group_size``).
  ``grpo_no_kl`` is the same without the penalty;
* ``optimistic_pg``: A2C's one step per batch with the optimiser fed g + (g − g_prev);
* ``dpo``: Lu et al.'s discovered drift (α = 2, β = 0.6) as the scale, PPO's recipe otherwise.

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

PRESETS: dict[str, dict] = {}  # name -> config keys
DESCRIPTIONS: dict[str, str] = {}  # name -> one line for `pgu presets`


def preset(name: str, description: str, **keys) -> None:
    """Declare preset ``name``: its one-line description and its config keys, in one place."""
    PRESETS[name], DESCRIPTIONS[name] = keys, description


preset("ppo", "PPO-clip: V, ppo_clip(ε=0.2), GAE advantage, no KL penalty",
       form="V", scale="ppo_clip", epsilon=0.2, delta_r="advantage", tau=1.0, use_kl_loss=False)
preset("reinforce", "REINFORCE: V, sq, Δ_R = Monte-Carlo return G_t of whole episodes, no baseline, one step per batch",
       form="V", scale="sq", delta_r="return", normalize_delta_r=False, use_critic=False, **_ONE_STEP,
       **_WHOLE_EPISODES)
preset("reinforce_baseline", "REINFORCE with baseline: V, sq, Δ_R = G_t − V(s), one step per batch",
       form="V", scale="sq", delta_r="v", normalize_delta_r=False, **{"lambda": 1.0}, **_ONE_STEP, **_WHOLE_EPISODES)
preset("a2c", "A2C: V, sq, GAE advantage, one step per batch", form="V", scale="sq", delta_r="advantage", **_ONE_STEP)
preset("pg_is", "importance-weighted PG: V, sq, GAE advantage, PPO's epochs and minibatches, no clip",
       form="V", scale="sq", delta_r="advantage", use_kl_loss=False)
preset("pgpb", "PG with policy-logit baseline: P, sq, Δ_R = R̂ − q_θ (unbiased for τ∇J)",
       form="P", scale="sq", delta_r="q", normalize_delta_r=False, use_kl_loss=False)
preset("ml", "max-likelihood scale: V, e^x(e^y − 1), GAE advantage",
       form="V", scale="ml", delta_r="advantage", use_kl_loss=False)
preset("sil_scale", "the self-imitation scale (y)_+ alone: V, e^x·(y)_+, no replay (not SIL)",
       form="V", scale="sil", delta_r="advantage", use_kl_loss=False)
preset("mla", "parametric scale mla(α_o=1, α_r=1) (the talk's max-likelihood point; α_r=½ matches ml to 2nd order)",
       form="V", scale="mla", alpha_o=1.0, alpha_r=1.0, delta_r="advantage", use_kl_loss=False)
preset("dpo", "DPO (Lu et al. 2022): V, the gradient of r·A − drift(r, A) with α=2, β=0.6, GAE advantage, PPO's recipe",
       form="V", scale="dpo", dpo_alpha=2.0, dpo_beta=0.6, delta_r="advantage", tau=1.0, use_kl_loss=False)
preset("mdpo", "MDPO: V, sq, GAE advantage, penalty KL(π_θ‖π_old)/η_t, η_t = 1 − t/T annealed",
       form="V", scale="sq", delta_r="advantage", use_kl_loss=True, kl_coeff=1.0, kl_direction="new_old",
       kl_schedule="mdpo")
preset("npg", "natural PG: V, sq, GAE advantage, one natural step per batch (KL radius 0.01, CG)",
       form="V", scale="sq", delta_r="advantage", step="natural", max_kl=0.01, **_ONE_STEP)
preset("trpo", "TRPO: npg's step, then a line search keeping KL ≤ 0.01 with an improved surrogate",
       form="V", scale="sq", delta_r="advantage", step="trust_region", max_kl=0.01, **_ONE_STEP)
preset("grpo", "GRPO: V, ppo_clip(0.2), Δ_R = returns standardised within groups of the same state, "
       "β=0.04·KL(π_θ‖π_initial) (k3)",
       form="V", scale="ppo_clip", epsilon=0.2, delta_r="group", use_kl_loss=False, ref_kl_coeff=0.04, ref_refresh=0)
preset("grpo_no_kl", "GRPO without its reference KL: V, ppo_clip(0.2), group-standardised returns, β=0",
       form="V", scale="ppo_clip", epsilon=0.2, delta_r="group", use_kl_loss=False, ref_kl_coeff=0.0)
preset("optimistic_pg", "optimistic PG: V, sq, GAE advantage, Adam on g + (g − g_prev), one step per batch",
       form="V", scale="sq", delta_r="advantage", step="optimistic", optimism=1.0, **_ONE_STEP)


def get_preset(name: str) -> dict:
    """A copy of preset ``name``; ``ValueError`` lists the known ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return dict(PRESETS[name])
