"""RLModules: RLlib's default PPO module with a settable initial log-std, and the
logit-parameterised modules of the paper's tasks (spec §2, ``parameterisation="logit"``).

``PGUPPOTorchRLModule`` is RLlib's ``DefaultPPOTorchRLModule``; when
``model_config["pgu_log_std_init"]`` is set (``PGUConfig.log_std_init``) it starts the free
log-std of its Gaussian policy there instead of at 0 (SB3's ``log_std_init``).

The modules hold ``q_θ(s, ·)`` and emit the logits ``q_θ(s, ·)/τ``, so the learner's
reading ``q = τ·logits`` returns ``q_θ`` for every τ. τ reaches the module as
``model_config["pgu_tau"]``, which ``PGUConfig`` fills in from its ``tau`` key.
They have no value head: PPO's GAE still asks for values, so ``compute_values``
answers ``E_{u∼π}[q_θ(s, u)]`` computed without gradient (our choice, spec §2). With
``delta_r="q"`` the advantage column is not used at all.
"""
from __future__ import annotations

import numpy as np
import torch
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule



class PGUPPOTorchRLModule(DefaultPPOTorchRLModule):
    """RLlib's default PPO module, with the free log-std started at ``pgu_log_std_init``."""

    def setup(self):
        super().setup()
        init = (self.model_config or {}).get("pgu_log_std_init")
        if init is not None:
            log_std = getattr(self.pi, "log_std", None)
            if log_std is None:
                raise ValueError("log_std_init needs a Gaussian policy with a free log-std "
                                 "(model_config free_log_std=True)")
            with torch.no_grad():
                log_std.fill_(float(init))


class LogitQModule(TorchRLModule, ValueFunctionAPI):
    """Base of the logit modules: a subclass defines ``q(obs)``, the module emits ``q/τ``."""

    def q(self, obs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def tau(self) -> float:
        return float((self.model_config or {}).get("pgu_tau", 1.0))

    def _forward(self, batch, **kwargs):
        return {Columns.ACTION_DIST_INPUTS: self.q(batch[Columns.OBS]) / self.tau}

    def compute_values(self, batch, embeddings=None):
        with torch.no_grad():
            q = self.q(batch[Columns.OBS])
            return (torch.softmax(q / self.tau, -1) * q).sum(-1)


class TabularLogitModule(LogitQModule):
    """A table of logits ``q(s, a)`` over one-hot states, initialised to 0 (uniform policy)."""

    def setup(self):
        n_states = int(np.prod(self.observation_space.shape))
        self.table = torch.nn.Linear(n_states, self.action_space.n, bias=False)
        torch.nn.init.zeros_(self.table.weight)

    def q(self, obs):
        return self.table(obs)
