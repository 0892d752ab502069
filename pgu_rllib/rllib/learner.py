"""``PGUTorchLearner``: PPO's learner with the PGU surrogate (spec §1–§3).

Everything except the policy term is PPO's, line for line: masked means over
``LOSS_MASK``, the value loss (``vf_loss_coeff``, squared error clamped at
``vf_clip_param``), the entropy bonus and the KL(old ‖ new) penalty, whose key
is logged so RLlib's adaptive coefficient keeps working. The policy term is
``surrogate(form, f(Δ_O, Δ_R))``. With the ``ppo`` preset the gradient equals
``PPOTorchLearner``'s exactly (tests/test_ppo_parity.py).

The KL penalty is PPO's KL(π_old‖π_θ) with RLlib's adaptive coefficient by default;
``kl_direction="new_old"`` penalises KL(π_θ‖π_old) instead and ``kl_schedule`` sets the
coefficient: ``fixed`` keeps ``kl_coeff``, ``mdpo`` uses ``kl_coeff/η_t`` with
``η_t = max(1 − t/T, 0.01)``, ``t`` the env steps sampled so far and ``T = pgu_budget``.

Logged per module (``learners/<module>/``): ``delta_o_mean``, ``delta_o_abs_max`` (max over
the update's minibatches), ``abs_f_mean``, ``f_zero_frac`` and ``surrogate_loss`` (also
under RLlib's ``policy_loss``). The optimiser step (global-norm
clip, NaN guard, Adam) is RLlib's math with fused kernels, and the epochs loop cuts its minibatches
once (``_fast_update.py``).
"""
from __future__ import annotations

from typing import Any, Dict

import gymnasium as gym
import torch
from ray.rllib.algorithms.ppo.ppo import (
    LEARNER_RESULTS_CURR_KL_COEFF_KEY,
    LEARNER_RESULTS_KL_KEY,
    LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY,
    LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY,
)
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from ray.rllib.utils.annotations import override
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME
from ray.rllib.utils.torch_utils import explained_variance

from pgu_rllib.rllib._fast_update import FastUpdateMixin, LeanEpochsMixin
from pgu_rllib.rllib.schedules import lr_or_schedule
from pgu_rllib.rllib import keys
from pgu_rllib.rllib.connectors import PGUAdvantageEstimation
from pgu_rllib.rllib.reference import ReferenceMixin
from pgu_rllib.rllib.steps import StepMixin
from pgu_rllib.core.forms import expected_q_continuous, expected_q_discrete, k3, surrogate
from pgu_rllib.core.scales import scale_params
from pgu_rllib.core.qreading import q_all_actions, q_soft
from pgu_rllib.core.signals import check_finite, delta_o, delta_r
from pgu_rllib.core.update_rule import MDPO_ETA_MIN, UpdateRule


KL_COEFFS_STATE = "pgu_kl_coeffs"


def mdpo_kl_coeff(kl_coeff: float, env_steps: int, budget: int) -> float:
    """MDPO's penalty coefficient ``kl_coeff / η_t`` with ``η_t = max(1 − t/T, 0.01)``."""
    return kl_coeff / max(1.0 - env_steps / budget, MDPO_ETA_MIN)


class PGUTorchLearner(ReferenceMixin, StepMixin, LeanEpochsMixin, FastUpdateMixin, PPOTorchLearner):
    """A ``PPOTorchLearner`` whose policy loss is any member of the PGU family.

    ``StepMixin`` turns the surrogate's gradient into the rule's ``step`` (natural, trust region,
    optimistic; ``rllib/steps.py``); ``LeanEpochsMixin`` runs the epochs over pre-cut minibatches
    and ``FastUpdateMixin`` the same optimiser step with fewer host syncs (issues 6 and 15).
    """

    @override(PPOTorchLearner)
    def build(self) -> None:
        super().build()
        self._pgu_rules: Dict[str, tuple] = {}
        self._pgu_step = 0
        self._delta_o_abs_max: Dict[str, torch.Tensor] = {}
        # RLlib's GAE plus the Monte-Carlo return column for delta_r="return" (connectors.py).
        if self._learner_connector is not None and self.config.add_default_connectors_to_learner_pipeline:
            def wanting(kind):
                return frozenset(mid for mid in self.module.keys()
                                 if self.config.get_config_for_module(mid).delta_r == kind)

            if wanting("return") or wanting("group"):
                self._learner_connector.remove("GeneralAdvantageEstimation")
                self._learner_connector.append(PGUAdvantageEstimation(
                    gamma=self.config.gamma, lambda_=self.config.lambda_, returns_for=wanting("return"),
                    groups_for=wanting("group")))

    def _rule_for(self, module_id, config, module):
        if module_id not in self._pgu_rules:
            rule = UpdateRule.from_object(config).validate()
            discrete = isinstance(module.action_space, gym.spaces.Discrete)
            if rule.parameterisation == "logit" and not discrete:
                raise ValueError(
                    f"parameterisation='logit' needs a discrete action space; module "
                    f"{module_id!r} has {module.action_space}; use parameterisation='soft'"
                )
            self._pgu_rules[module_id] = (rule, rule.scale_fn(), discrete)
        return self._pgu_rules[module_id]

    def _pgu_terms(self, module_id, config, batch, fwd_out, *, first_pass: bool, fixed_f=None) -> dict:
        """Every term of the loss for one module's minibatch. ``first_pass`` is the gradient pass (Δ_O
        set to 0 with one step per batch); a trust-region line search re-evaluates with it False and
        ``fixed_f`` the first pass's scale values, so that the surrogate it compares is the one whose
        gradient made the step (the signals held at θ_old, as TRPO holds its advantages)."""
        module = self.module[module_id].unwrapped()
        rule, scale_fn, discrete = self._rule_for(module_id, config, module)
        mask = batch.get(Columns.LOSS_MASK)
        if mask is not None:
            num_valid = torch.sum(mask)

            def masked_mean(x):  # sum over valid rows; torch.where avoids boolean indexing's copy
                return torch.sum(torch.where(mask, x, 0.0)) / num_valid
        else:
            masked_mean = torch.mean

        logits = fwd_out[Columns.ACTION_DIST_INPUTS]
        curr_dist = module.get_train_action_dist_cls().from_logits(logits)
        logp = curr_dist.logp(batch[Columns.ACTIONS])

        if config.use_kl_loss:
            prev_dist = module.get_exploration_action_dist_cls().from_logits(
                batch[Columns.ACTION_DIST_INPUTS]
            )
            kl = prev_dist.kl(curr_dist) if rule.kl_direction == "old_new" else curr_dist.kl(prev_dist)
            mean_kl_loss = masked_mean(kl)
        else:
            mean_kl_loss = torch.tensor(0.0, device=logp.device)
        entropy_coeff = self.entropy_coeff_schedulers_per_module[module_id].get_current_value()
        # H(π) enters the loss only with a non-zero coefficient (and P's continuous E[q]); a minibatch
        # that is not logged (LeanEpochsMixin) skips it otherwise: −0·H changes no number.
        no_bonus = isinstance(entropy_coeff, (int, float)) and entropy_coeff == 0
        entropy = (None if no_bonus and not self.log_this_minibatch and not (rule.form == "P" and not discrete)
                   else curr_dist.entropy())

        needs_value = rule.delta_r == "v" or (rule.parameterisation == "soft" and
                                               (rule.form == "Q" or rule.delta_r == "q"))
        values = None
        if config.use_critic or needs_value:
            values = module.compute_values(batch, embeddings=fwd_out.get(Columns.EMBEDDINGS))

        # q_θ(s, a) (spec §2) and the P-form term E_{u∼π}[sg q(s,u)] (spec §3).
        q_sa = expected_q = None
        if discrete and (rule.parameterisation == "logit" or rule.form == "P"):
            value_or_zero = values if values is not None else torch.zeros_like(logp)
            q_all = q_all_actions(rule.parameterisation, logits, value_or_zero, rule.tau)
            q_sa = q_all.gather(-1, batch[Columns.ACTIONS].long().unsqueeze(-1)).squeeze(-1)
            expected_q = expected_q_discrete(logits, q_all)
        if rule.parameterisation == "soft" and (rule.form == "Q" or rule.delta_r == "q"):
            q_sa = q_soft(logp, values, rule.tau)
        if rule.form == "P" and not discrete:
            expected_q = expected_q_continuous(entropy, rule.tau)

        # The two signals (spec §1) and the scale (spec §4).
        # One gradient step per batch (num_epochs 1, no minibatches): Δ_O ≡ 0 by construction.
        one_step = first_pass and config.num_epochs == 1 and not config.minibatch_size
        x = delta_o(logp, batch[Columns.ACTION_LOGP], on_policy=one_step)
        y = delta_r(
            rule.delta_r,
            advantages=batch.get(Columns.ADVANTAGES),
            value_targets=batch.get(Columns.VALUE_TARGETS),
            returns=batch.get(keys.RETURNS),
            group=batch.get(keys.GROUP),
            q_sa=q_sa,
            v_s=values,
            normalize=rule.normalize_delta_r,
            mask=mask,
        )
        if first_pass and not bool(torch.isfinite(x).all() & torch.isfinite(y).all()):  # one host sync
            check_finite("delta_o", x, module_id=module_id, step=self._pgu_step)
            check_finite("delta_r", y, module_id=module_id, step=self._pgu_step)
        f = scale_fn(x, y) if fixed_f is None else fixed_f
        surr = surrogate(rule.form, f, logp=logp, q_sa=q_sa, expected_q=expected_q, tau=rule.tau)

        if config.use_critic:
            vf_loss = torch.pow(values - batch[Columns.VALUE_TARGETS], 2.0)
            vf_loss_clipped = (vf_loss if config.vf_clip_param == float("inf")  # the clamp is the identity
                               else torch.clamp(vf_loss, 0, config.vf_clip_param))
        else:
            values = vf_loss = vf_loss_clipped = torch.zeros_like(logp)

        policy_loss = masked_mean(surr if entropy is None else surr - entropy_coeff * entropy)
        if config.use_kl_loss:
            policy_loss = policy_loss + self.curr_kl_coeffs_per_module[module_id] * mean_kl_loss
        ref_kl = ref_dist = None
        if rule.ref_kl_coeff > 0:  # GRPO's β·KL(π_θ‖π_ref), k3 on the sampled actions (reference.py)
            ref_dist = module.get_train_action_dist_cls().from_logits(self.reference_logits(module_id, batch))
            ref_kl = masked_mean(k3(logp, ref_dist.logp(batch[Columns.ACTIONS])))
            policy_loss = policy_loss + rule.ref_kl_coeff * ref_kl
        mean_vf_loss = masked_mean(vf_loss_clipped)
        return {"total": policy_loss + config.vf_loss_coeff * mean_vf_loss, "policy": policy_loss,
                "surr": surr, "x": x, "f": f, "entropy": entropy, "mean_kl_loss": mean_kl_loss, "values": values,
                "mean_vf_loss": mean_vf_loss, "vf_loss": vf_loss, "logits": logits, "mask": mask,
                "masked_mean": masked_mean, "ref_kl": ref_kl, "ref_dist": ref_dist, "curr_dist": curr_dist}

    @override(PPOTorchLearner)
    def compute_loss_for_module(
        self, *, module_id: str, config, batch: Dict[str, Any], fwd_out: Dict[str, Any]
    ):
        self._pgu_step += 1
        t = self._pgu_terms(module_id, config, batch, fwd_out, first_pass=True)
        self.remember_for_step(module_id, config, batch, t)
        masked_mean, x, mask = t["masked_mean"], t["x"], t["mask"]
        # |Δ_O| max over every minibatch of the update: a running max, logged with the last one
        abs_max = (torch.max(torch.where(mask, x.abs(), 0.0)) if mask is not None else x.abs().max()).detach()
        running = self._delta_o_abs_max.get(module_id)
        self._delta_o_abs_max[module_id] = abs_max if running is None else torch.maximum(running, abs_max)
        if not self.log_this_minibatch:  # every metric below has window=1 (LeanEpochsMixin)
            return t["total"]
        surrogate_loss = masked_mean(t["surr"])
        abs_f = t["f"].abs()
        self.metrics.log_dict(
            {
                POLICY_LOSS_KEY: surrogate_loss,
                VF_LOSS_KEY: t["mean_vf_loss"],
                LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY: masked_mean(t["vf_loss"]),
                LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY: explained_variance(
                    batch[Columns.VALUE_TARGETS], t["values"]
                ),
                ENTROPY_KEY: masked_mean(t["entropy"]),
                LEARNER_RESULTS_KL_KEY: t["mean_kl_loss"],
                keys.SURROGATE_LOSS: surrogate_loss,
                keys.DELTA_O_MEAN: masked_mean(x),
                keys.ABS_F_MEAN: masked_mean(abs_f),
                keys.F_ZERO_FRAC: masked_mean((abs_f == 0).float()),
            },
            key=module_id,
            window=1,
        )
        if t["ref_kl"] is not None:
            self.metrics.log_dict({keys.REF_KL: t["ref_kl"].detach(),
                                   keys.REF_KL_EXACT: masked_mean(t["curr_dist"].kl(t["ref_dist"])).detach()},
                                  key=module_id, window=1)
        rule = self._pgu_rules[module_id][0]
        if rule.step == "optimistic_sgd":  # c in effect (it moves with optimism_adaptive)
            c = self.get_optimizer(module_id, "policy_step").param_groups[0]["optimism"]
            self.metrics.log_value((module_id, keys.OPTIMISM_C), float(c), window=1)
        self.metrics.log_dict({f"rule_{k}": float(getattr(rule, k)) for k in (*scale_params(), *keys.LOGGED_RULE_VALUES)
                               if getattr(rule, k) is not None}, key=module_id, window=1)
        self.metrics.log_value((module_id, keys.DELTA_O_ABS_MAX), self._delta_o_abs_max.pop(module_id),
                               reduce="max")
        return t["total"]

    def set_rule_values(self, values: dict) -> None:
        """Put new values of mutable keys (``MUTABLE_KEYS``) in effect from the next update: the update
        rule, the learning rate (its schedule), the entropy coefficient and the loss weights. Used by a
        schedule's replay (``PGUConfig.pgu_schedule``)."""
        from ray.rllib.utils.schedules.scheduler import Scheduler

        config = self.config.copy(copy_frozen=False)
        for key, value in values.items():
            setattr(config, key, value)
        config.validate()
        config.freeze()
        self.config = config
        self._pgu_rules.clear()
        for module_id in self.module.keys():
            module_config = config.get_config_for_module(module_id)
            if "entropy_coeff" in values:
                self.entropy_coeff_schedulers_per_module[module_id] = Scheduler(
                    module_config.entropy_coeff, framework="torch", device=self._device)
            if "lr" in values:
                lr = lr_or_schedule(module_config)
                for name in self._module_optimizers[module_id]:
                    optimizer = self._named_optimizers[name]
                    if optimizer in self._optimizer_lr_schedules:
                        self._optimizer_lr_schedules[optimizer] = Scheduler(lr, framework="torch", device=self._device)

    def get_state(self, components=None, *, not_components=None, **kwargs) -> dict:
        """RLlib's state plus PPO's adaptive KL coefficients, which RLlib's learner state leaves out (a
        restored run would restart them at ``kl_coeff``)."""
        state = super().get_state(components, not_components=not_components, **kwargs)
        if components is None and not not_components:
            state[KL_COEFFS_STATE] = {mid: float(c) for mid, c in self.curr_kl_coeffs_per_module.items()}
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        for module_id, coeff in (state.get(KL_COEFFS_STATE) or {}).items():
            self.curr_kl_coeffs_per_module[module_id].data.fill_(coeff)

    @override(PPOTorchLearner)
    def before_gradient_based_update(self, *, timesteps) -> None:
        super().before_gradient_based_update(timesteps=timesteps)
        for module_id in self.module.keys():
            config = self.config.get_config_for_module(module_id)
            if config.use_kl_loss and config.kl_schedule == "mdpo":
                steps = int(timesteps.get(NUM_ENV_STEPS_SAMPLED_LIFETIME, 0))
                self.curr_kl_coeffs_per_module[module_id].data.fill_(
                    mdpo_kl_coeff(config.kl_coeff, steps, config.pgu_budget))

    @override(PPOTorchLearner)
    def _update_module_kl_coeff(self, *, module_id, config, kl_loss) -> None:
        if config.kl_schedule == "adaptive":
            return super()._update_module_kl_coeff(module_id=module_id, config=config, kl_loss=kl_loss)
        self.metrics.log_value(
            (module_id, LEARNER_RESULTS_CURR_KL_COEFF_KEY),
            self.curr_kl_coeffs_per_module[module_id].item(),
            window=1,
        )
