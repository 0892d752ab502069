"""The RLlib internals the learner and its steps need, read here and nowhere else, each name guarded.

RLlib 2.60 has no public API for these: the learner connector pipeline (to swap in the Monte-Carlo
return column), the optimisers of a module and their learning-rate schedules (to put a new lr in
effect mid-run), the gradient scalers and per-optimiser parameter lists (the natural step replaces a
gradient), the parameter map, the model config as a dataclass, and two private hooks (what RLlib
adds to every module's model config; PPO's adaptive KL update). ``require`` fails at import,
naming the attribute, on a Ray release that lacks one.
"""
from __future__ import annotations

from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.algorithms.ppo.ppo import LEARNER_RESULTS_CURR_KL_COEFF_KEY
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.learner.torch.torch_learner import TorchLearner

from pgu_rllib.rllib.accel.guard import require

# instance attributes, set in Learner.__init__/build: checked on the first learner that asks (see _check)
LEARNER_ATTRS = ("_learner_connector", "_module_optimizers", "_named_optimizers", "_optimizer_lr_schedules",
                 "_device", "_grad_scalers", "_optimizer_parameters", "_params")
require(AlgorithmConfig(), ("_model_config",), "reading a config's model config")
require(TorchLearner, ("get_param_ref", "get_parameters", "register_optimizer"), "the PGU learner's steps")


def _check(learner) -> None:
    require(learner, LEARNER_ATTRS, "the PGU learner")


def learner_connector(learner):
    """The learner's connector pipeline (None without one)."""
    _check(learner)
    return learner._learner_connector


def device(learner):
    _check(learner)
    return learner._device


def set_lr_schedule(learner, module_id, lr) -> None:
    """Put ``lr`` (a number or an RLlib schedule) in effect for every optimiser of ``module_id``."""
    from ray.rllib.utils.schedules.scheduler import Scheduler

    _check(learner)
    for name in learner._module_optimizers[module_id]:
        optimizer = learner._named_optimizers[name]
        if optimizer in learner._optimizer_lr_schedules:
            learner._optimizer_lr_schedules[optimizer] = Scheduler(lr, framework="torch", device=learner._device)


def grad_scalers(learner):
    _check(learner)
    return learner._grad_scalers


def optimizers(learner):
    """Every optimiser of the learner (the keys of its parameter lists)."""
    _check(learner)
    return list(learner._optimizer_parameters)


def parameters(learner) -> dict:
    """param ref -> parameter tensor."""
    _check(learner)
    return learner._params


def model_config(config):
    """The config's model config as set (a ``DefaultModelConfig`` or a dict), before RLlib's auto-includes."""
    return config._model_config


require(PPOConfig, ("_model_config_auto_includes",), "passing τ to the logit modules")
require(PPOTorchLearner, ("_update_module_kl_coeff",), "a fixed or MDPO-scheduled KL coefficient")


class ModelConfigIncludes:
    """Config mixin: ``model_config_includes()`` joins what RLlib adds to every module's model config
    (``_model_config_auto_includes``, private), so a module reads it in ``model_config``."""

    def model_config_includes(self) -> dict:
        return {}

    @property
    def _model_config_auto_includes(self) -> dict:
        return super()._model_config_auto_includes | self.model_config_includes()


class KLCoeffHook:
    """PPO-learner mixin: where ``adaptive_kl(config)`` is False, PPO's adaptive KL update
    (``_update_module_kl_coeff``, private) only logs the coefficient, which stays as set."""

    def adaptive_kl(self, config) -> bool:
        return True

    def _update_module_kl_coeff(self, *, module_id, config, kl_loss) -> None:
        if self.adaptive_kl(config):
            return super()._update_module_kl_coeff(module_id=module_id, config=config, kl_loss=kl_loss)
        self.metrics.log_value((module_id, LEARNER_RESULTS_CURR_KL_COEFF_KEY),
                               self.curr_kl_coeffs_per_module[module_id].item(), window=1)
