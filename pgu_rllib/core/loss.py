"""The PGU loss of one minibatch, from tensors alone (spec §1–§4): readable top to bottom, no RLlib.

The learner (``rllib/learner.py``) reads the tensors off RLlib (the action distribution's log-probs and
entropy, the values, the batch's columns) and calls ``pgu_loss``; the bandit's exact integrator, the
tests and a reader can call it the same way.

    q_θ(s,a), E_u[q]       the reading of q off the policy (spec §2), for forms Q/P and Δ_R = R̂ − q
    Δ_O = log π − log b    the log importance ratio (0 by construction with one step per batch)
    Δ_R                    the prediction error of the rule's ``delta_r`` (spec §1)
    f = f(Δ_O, Δ_R)        the scale (spec §4), gradient stopped
    surrogate              −f·(the form's gradient term) per sample (spec §3)
    policy = mean(surrogate − c_H·H) + c_KL·KL + β·k3(π_θ, π_ref)
    total = policy + c_V·mean(clip((V − R̂)²))

Example::

    >>> import torch
    >>> from pgu_rllib.core.update_rule import UpdateRule
    >>> logp = torch.log(torch.tensor([0.5, 0.25], requires_grad=True))
    >>> inputs = LossInputs(logp=logp, behaviour_logp=logp.detach(), advantages=torch.tensor([1.0, -1.0]))
    >>> terms = pgu_loss(UpdateRule(form="V", scale="sq"), inputs, one_step=True)
    >>> round(float(terms.policy), 4)   # −mean(f·log π) with f = Δ_R: −(log ½ − log ¼)/2
    -0.3466
"""
from __future__ import annotations

import dataclasses

import torch

from pgu_rllib.core.forms import expected_q_continuous, expected_q_discrete, k3, surrogate
from pgu_rllib.core.qreading import q_all_actions, q_soft
from pgu_rllib.core.signals import check_finite, delta_o, delta_r


@dataclasses.dataclass
class LossInputs:
    """One minibatch's tensors (per sample unless noted). ``None``: not needed by the rule, or absent."""

    logp: torch.Tensor  # log π_θ(a|s), with its graph
    behaviour_logp: torch.Tensor  # log b(a|s) of the policy that sampled the batch
    mask: torch.Tensor | None = None  # False on RLlib's artificial extra step of each episode chunk
    logits: torch.Tensor | None = None  # the action distribution's inputs (discrete: the logits)
    actions: torch.Tensor | None = None
    discrete: bool = True
    values: torch.Tensor | None = None  # V_θ(s), with its graph
    value_targets: torch.Tensor | None = None  # R̂, the λ-return
    advantages: torch.Tensor | None = None  # Â, standardised over the batch
    returns: torch.Tensor | None = None  # G_t (delta_r="return")
    group: torch.Tensor | None = None  # group-standardised returns (delta_r="group")
    entropy: torch.Tensor | None = None  # H(π_θ(·|s)); None when no term needs it
    kl: torch.Tensor | None = None  # the KL penalty's per-sample KL (its direction chosen by the caller)
    ref_logp: torch.Tensor | None = None  # log π_ref(a|s) (GRPO's reference policy)


@dataclasses.dataclass
class LossTerms:
    total: torch.Tensor  # what the optimiser minimises
    policy: torch.Tensor  # the policy part: surrogate, entropy bonus, KL penalties
    surrogate: torch.Tensor  # per sample
    delta_o: torch.Tensor
    f: torch.Tensor
    entropy: torch.Tensor | None
    kl: torch.Tensor  # the mean of the KL penalty's KL (0 without one)
    values: torch.Tensor
    vf_loss: torch.Tensor  # per sample, before the clip
    vf_mean: torch.Tensor  # the mean of the clipped squared error
    ref_kl: torch.Tensor | None  # the mean k3 estimate of KL(π_θ‖π_ref)
    delta_r: torch.Tensor | None = None  # per sample, as the scale saw it


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The mean over the valid rows (``torch.where`` avoids boolean indexing's copy)."""
    if mask is None:
        return torch.mean(x)
    return torch.sum(torch.where(mask, x, 0.0)) / torch.sum(mask)


def q_terms(rule, inputs: LossInputs) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """q_θ(s, a) and the P form's E_{u∼π}[sg q(s, u)] where the rule needs them (spec §2, §3)."""
    q_sa = expected_q = None
    if inputs.discrete and (rule.parameterisation == "logit" or rule.form == "P"):
        value_or_zero = inputs.values if inputs.values is not None else torch.zeros_like(inputs.logp)
        q_all = q_all_actions(rule.parameterisation, inputs.logits, value_or_zero, rule.tau)
        q_sa = q_all.gather(-1, inputs.actions.long().unsqueeze(-1)).squeeze(-1)
        expected_q = expected_q_discrete(inputs.logits, q_all)
    if rule.parameterisation == "soft" and (rule.form == "Q" or rule.delta_r == "q"):
        q_sa = q_soft(inputs.logp, inputs.values, rule.tau)
    if rule.form == "P" and not inputs.discrete:
        expected_q = expected_q_continuous(inputs.entropy, rule.tau)
    return q_sa, expected_q


def pgu_loss(rule, inputs: LossInputs, *, one_step: bool = False, entropy_coeff=0.0, kl_coeff=0.0,
             vf_loss_coeff: float = 0.0, vf_clip: float = float("inf"), use_critic: bool = False,
             fixed_f: torch.Tensor | None = None, scale_fn=None, module_id: str = "default_policy",
             step: int = 0, check: bool = True) -> LossTerms:
    """Every term of the PGU loss of ``rule`` (an ``UpdateRule``) on one minibatch.

    ``one_step``: the batch takes one gradient step (Δ_O ≡ 0, spec §1). ``fixed_f``: the scale's values of
    an earlier pass (a trust-region line search holds them at θ_old); ``scale_fn``: the rule's scale function,
    made once by the caller (else made here). A non-finite Δ_O or Δ_R raises
    ``FloatingPointError`` naming ``module_id`` and the learner's ``step``; ``check=False`` leaves that check
    to the caller (a population checks every member's ``delta_o`` and ``delta_r`` at once, outside ``vmap``)."""
    mask = inputs.mask
    q_sa, expected_q = q_terms(rule, inputs)
    x = delta_o(inputs.logp, inputs.behaviour_logp, on_policy=one_step)
    y = delta_r(rule.delta_r, advantages=inputs.advantages, value_targets=inputs.value_targets,
                returns=inputs.returns, group=inputs.group, q_sa=q_sa, v_s=inputs.values,
                normalize=rule.normalize_delta_r, mask=mask)
    if check and fixed_f is None and not bool(torch.isfinite(x).all() & torch.isfinite(y).all()):  # one host sync
        check_finite("delta_o", x, module_id=module_id, step=step)
        check_finite("delta_r", y, module_id=module_id, step=step)
    f = (scale_fn or rule.scale_fn())(x, y) if fixed_f is None else fixed_f
    surr = surrogate(rule.form, f, logp=inputs.logp, q_sa=q_sa, expected_q=expected_q, tau=rule.tau)

    entropy = inputs.entropy
    policy = masked_mean(surr if entropy is None else surr - entropy_coeff * entropy, mask)
    kl = masked_mean(inputs.kl, mask) if inputs.kl is not None else inputs.logp.new_zeros(())
    if inputs.kl is not None:
        policy = policy + kl_coeff * kl
    ref_kl = None
    if rule.ref_kl_coeff > 0:  # GRPO's β·KL(π_θ‖π_ref), k3 on the sampled actions
        ref_kl = masked_mean(k3(inputs.logp, inputs.ref_logp), mask)
        policy = policy + rule.ref_kl_coeff * ref_kl

    if use_critic:
        values = inputs.values
        vf_loss = torch.pow(values - inputs.value_targets, 2.0)
        clipped = vf_loss if vf_clip == float("inf") else torch.clamp(vf_loss, 0, vf_clip)
    else:
        values = vf_loss = clipped = torch.zeros_like(inputs.logp)
    vf_mean = masked_mean(clipped, mask)
    return LossTerms(total=policy + vf_loss_coeff * vf_mean, policy=policy, surrogate=surr, delta_o=x, f=f,
                     entropy=entropy, kl=kl, values=values, vf_loss=vf_loss, vf_mean=vf_mean, ref_kl=ref_kl,
                     delta_r=y)
