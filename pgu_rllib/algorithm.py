"""``PGUConfig`` and ``PGU``: PPO's algorithm with the PGU update rule.

``PGUConfig`` adds the update-rule keys of ``UpdateRule`` (spec §1–§4) to
``PPOConfig``, settable through ``.training(...)`` or ``update_from_dict``
(how Tune passes them), and checked in ``validate()``.

Example::

    >>> from pgu_rllib import PGUConfig
    >>> config = (PGUConfig().environment("CartPole-v1")
    ...           .env_runners(num_env_runners=0)
    ...           .training(form="P", scale="mla", alpha_o=1.0, alpha_r=0.5))
    >>> config.validate()
"""
from __future__ import annotations

import dataclasses

from ray.rllib.algorithms.algorithm_config import NotProvided
from ray.rllib.algorithms.ppo import PPO, PPOConfig

from pgu_rllib._private.env_runner import PGUEnvRunner
from pgu_rllib.learner import PGUTorchLearner
from pgu_rllib.update_rule import UpdateRule


class PGUConfig(PPOConfig):
    """``PPOConfig`` plus the update-rule keys; defaults give PPO's clipped update."""

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or PGU)
        for key, value in dataclasses.asdict(UpdateRule()).items():
            setattr(self, key, value)
        self.pgu_task = None  # the pgu task name, set by Task.configure (callbacks read it)
        self.env_runner_cls = PGUEnvRunner  # RLlib's runner minus per-step connector timers

    def training(
        self,
        *,
        form=NotProvided,
        scale=NotProvided,
        alpha_o=NotProvided,
        alpha_r=NotProvided,
        epsilon=NotProvided,
        tau=NotProvided,
        delta_r=NotProvided,
        normalize_delta_r=NotProvided,
        parameterisation=NotProvided,
        kl_adaptive=NotProvided,
        **kwargs,
    ) -> "PGUConfig":
        """PPO's ``training()`` plus the update-rule keys (see ``UpdateRule``)."""
        super().training(**kwargs)
        given = dict(form=form, scale=scale, alpha_o=alpha_o, alpha_r=alpha_r, epsilon=epsilon,
                     tau=tau, delta_r=delta_r, normalize_delta_r=normalize_delta_r,
                     parameterisation=parameterisation, kl_adaptive=kl_adaptive)
        for key, value in given.items():
            if value is not NotProvided:
                setattr(self, key, value)
        return self

    @property
    def _model_config_auto_includes(self) -> dict:
        # The logit modules (pgu_rllib.modules) emit q/τ, so they need τ (spec §2).
        extra = {"pgu_tau": float(self.tau)} if self.parameterisation == "logit" else {}
        return super()._model_config_auto_includes | extra

    def update_rule(self) -> UpdateRule:
        """This config's update rule as a plain ``UpdateRule``."""
        return UpdateRule.from_object(self)

    def validate(self) -> None:
        super().validate()
        try:
            self.update_rule().validate()
        except ValueError as err:
            self._value_error(str(err))

    def get_default_learner_class(self):
        return PGUTorchLearner


class PGU(PPO):
    """PPO with the PGU learner; Tune dicts merge into ``PGUConfig``."""

    @classmethod
    def get_default_config(cls) -> PGUConfig:
        return PGUConfig()
