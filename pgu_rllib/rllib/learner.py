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

from pgu_rllib.rllib.accel import internals
from pgu_rllib.rllib.accel.fast_update import FastUpdateMixin, LeanEpochsMixin
from pgu_rllib.rllib.schedules import lr_or_schedule
from pgu_rllib.rllib import keys
from pgu_rllib.rllib.connectors import PGUAdvantageEstimation
from pgu_rllib.rllib.reference import ReferenceMixin
from pgu_rllib.rllib.steps import StepMixin
from pgu_rllib.core.loss import LossInputs, LossTerms, pgu_loss
from pgu_rllib.core.loss import masked_mean as core_masked_mean
from pgu_rllib.core.scales import scale_params
from pgu_rllib.core.update_rule import MDPO_ETA_MIN, UpdateRule


KL_COEFFS_STATE = "pgu_kl_coeffs"


def mdpo_kl_coeff(kl_coeff: float, env_steps: int, budget: int) -> float:
    """MDPO's penalty coefficient ``kl_coeff / η_t`` with ``η_t = max(1 − t/T, 0.01)``."""
    return kl_coeff / max(1.0 - env_steps / budget, MDPO_ETA_MIN)


class PGUTorchLearner(ReferenceMixin, StepMixin, LeanEpochsMixin, FastUpdateMixin, internals.KLCoeffHook,
                      PPOTorchLearner):
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
        pipeline = internals.learner_connector(self)
        if pipeline is not None and self.config.add_default_connectors_to_learner_pipeline:
            def wanting(kind):
                return frozenset(mid for mid in self.module.keys()
                                 if self.config.get_config_for_module(mid).delta_r == kind)

            if wanting("return") or wanting("group"):
                pipeline.remove("GeneralAdvantageEstimation")
                pipeline.append(PGUAdvantageEstimation(
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

    def _pgu_terms(self, module_id, config, batch, fwd_out, *, first_pass: bool, fixed_f=None) -> LossTerms:
        """The loss of one module's minibatch: the tensors read off RLlib (distribution, values, columns),
        then ``core.loss.pgu_loss``. ``first_pass`` is the gradient pass (Δ_O set to 0 with one step per
        batch); a trust-region line search re-evaluates with it False and ``fixed_f`` the first pass's
        scale values, so that the surrogate it compares is the one whose gradient made the step."""
        module = self.module[module_id].unwrapped()
        rule, scale_fn, discrete = self._rule_for(module_id, config, module)
        logits = fwd_out[Columns.ACTION_DIST_INPUTS]
        dist_cls = module.get_train_action_dist_cls()
        curr_dist = dist_cls.from_logits(logits)
        logp = curr_dist.logp(batch[Columns.ACTIONS])

        kl = None
        if config.use_kl_loss:
            prev_dist = module.get_exploration_action_dist_cls().from_logits(batch[Columns.ACTION_DIST_INPUTS])
            kl = prev_dist.kl(curr_dist) if rule.kl_direction == "old_new" else curr_dist.kl(prev_dist)
        entropy_coeff = self.entropy_coeff_schedulers_per_module[module_id].get_current_value()
        # H(π) enters the loss only with a non-zero coefficient (and P's continuous E[q]); a minibatch
        # that is not logged (LeanEpochsMixin) skips it otherwise: −0·H changes no number.
        no_bonus = isinstance(entropy_coeff, (int, float)) and entropy_coeff == 0
        entropy = (None if no_bonus and not self.log_this_minibatch and not (rule.form == "P" and not discrete)
                   else curr_dist.entropy())
        needs_value = rule.delta_r == "v" or (rule.parameterisation == "soft" and (rule.form == "Q" or rule.delta_r == "q"))
        values = (module.compute_values(batch, embeddings=fwd_out.get(Columns.EMBEDDINGS))
                  if config.use_critic or needs_value else None)
        ref_logp = None
        if rule.ref_kl_coeff > 0:
            ref_logp = dist_cls.from_logits(self.reference_logits(module_id, batch)).logp(batch[Columns.ACTIONS])
        inputs = LossInputs(logp=logp, behaviour_logp=batch[Columns.ACTION_LOGP], mask=batch.get(Columns.LOSS_MASK),
                            logits=logits, actions=batch[Columns.ACTIONS], discrete=discrete, values=values,
                            value_targets=batch.get(Columns.VALUE_TARGETS), advantages=batch.get(Columns.ADVANTAGES),
                            returns=batch.get(keys.RETURNS), group=batch.get(keys.GROUP), entropy=entropy, kl=kl,
                            ref_logp=ref_logp)
        one_step = first_pass and config.num_epochs == 1 and not config.minibatch_size
        return pgu_loss(rule, inputs, one_step=one_step, entropy_coeff=entropy_coeff,
                        kl_coeff=self.curr_kl_coeffs_per_module[module_id] if config.use_kl_loss else 0.0,
                        vf_loss_coeff=config.vf_loss_coeff, vf_clip=config.vf_clip_param, use_critic=config.use_critic,
                        fixed_f=fixed_f, scale_fn=scale_fn, module_id=module_id, step=self._pgu_step)

    @override(PPOTorchLearner)
    def compute_loss_for_module(
        self, *, module_id: str, config, batch: Dict[str, Any], fwd_out: Dict[str, Any]
    ):
        self._pgu_step += 1
        t = self._pgu_terms(module_id, config, batch, fwd_out, first_pass=True)
        self.remember_for_step(module_id, config, batch, t, fwd_out[Columns.ACTION_DIST_INPUTS])
        mask = batch.get(Columns.LOSS_MASK)
        x = t.delta_o

        def masked_mean(v):
            return core_masked_mean(v, mask)

        # |Δ_O| max over every minibatch of the update: a running max, logged with the last one
        abs_max = (torch.max(torch.where(mask, x.abs(), 0.0)) if mask is not None else x.abs().max()).detach()
        running = self._delta_o_abs_max.get(module_id)
        self._delta_o_abs_max[module_id] = abs_max if running is None else torch.maximum(running, abs_max)
        if not self.log_this_minibatch:  # every metric below has window=1 (LeanEpochsMixin)
            return t.total
        surrogate_loss = masked_mean(t.surrogate)
        abs_f = t.f.abs()
        self.metrics.log_dict(
            {
                POLICY_LOSS_KEY: surrogate_loss,
                VF_LOSS_KEY: t.vf_mean,
                LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY: masked_mean(t.vf_loss),
                LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY: explained_variance(
                    batch[Columns.VALUE_TARGETS], t.values
                ),
                ENTROPY_KEY: masked_mean(t.entropy),
                LEARNER_RESULTS_KL_KEY: t.kl,
                keys.SURROGATE_LOSS: surrogate_loss,
                keys.DELTA_O_MEAN: masked_mean(x),
                keys.ABS_F_MEAN: masked_mean(abs_f),
                keys.F_ZERO_FRAC: masked_mean((abs_f == 0).float()),
            },
            key=module_id,
            window=1,
        )
        if t.ref_kl is not None:
            module = self.module[module_id].unwrapped()
            dist_cls = module.get_train_action_dist_cls()
            exact = dist_cls.from_logits(fwd_out[Columns.ACTION_DIST_INPUTS]).kl(
                dist_cls.from_logits(self.reference_logits(module_id, batch)))
            self.metrics.log_dict({keys.REF_KL: t.ref_kl.detach(), keys.REF_KL_EXACT: masked_mean(exact).detach()},
                                  key=module_id, window=1)
        rule = self._pgu_rules[module_id][0]
        if rule.step == "optimistic_sgd":  # c in effect (it moves with optimism_adaptive)
            c = self.get_optimizer(module_id, "policy_step").param_groups[0]["optimism"]
            self.metrics.log_value((module_id, keys.OPTIMISM_C), float(c), window=1)
        self.metrics.log_dict({f"rule_{k}": float(getattr(rule, k)) for k in (*scale_params(), *keys.LOGGED_RULE_VALUES)
                               if getattr(rule, k) is not None}, key=module_id, window=1)
        self.metrics.log_value((module_id, keys.DELTA_O_ABS_MAX), self._delta_o_abs_max.pop(module_id),
                               reduce="max")
        return t.total

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
                    module_config.entropy_coeff, framework="torch", device=internals.device(self))
            if "lr" in values:
                internals.set_lr_schedule(self, module_id, lr_or_schedule(module_config))

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

    def adaptive_kl(self, config) -> bool:
        """PPO's adaptive KL update runs for ``kl_schedule='adaptive'`` only (``accel.internals.KLCoeffHook``)."""
        return config.kl_schedule == "adaptive"
