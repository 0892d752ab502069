"""``PGUEnvRunner``: RLlib's ``SingleAgentEnvRunner`` without per-step connector timers.

In Ray 2.60 every env step runs two connector pipelines, and each pipeline, given the
runner's ``MetricsLogger``, times itself and every one of its ~7 connectors (a
``to_snake_case`` regex, a context manager and an EMA push per connector per step). On a
single-env MuJoCo trial that bookkeeping costs about as much as the connectors' work
(``benchmarks/profile_trial.py``). This runner calls the same pipelines, with the same
connectors and data, without the logger: only the ``timers/connectors/...`` entries of
the env runner's results disappear (issue 6). Episode metrics are untouched.

It also keeps the sampling module in eval mode instead of toggling train/eval (a walk
over every submodule) around each forward pass; ``forward_train`` still sets train mode.

With vector envs (issue 15), RLlib's default connectors work env by env on every step: the
env-to-module tail collects each episode's last observation, adds and removes a time axis, batches and
converts; the module-to-env pipeline splits the batched actions into per-env items, deep-copies them and
unsquashes each one, then lists them again. For a single-agent, non-recurrent module with exactly those
default connectors, the pipelines here do the same in batched form: one ``np.stack`` of the last
observations and one ``convert_to_torch_tensor``; RLlib's ``GetActions`` and ``TensorToNumpy``, then one
``unsquash_action`` (or ``clip_action``) on the whole action array, whose rows are the per-env items the
sampling loop takes. Custom connectors before the default tail (the MuJoCo recipe's
``accel.filters.VectorMeanStdFilter``) run as usual. ``tests/test_fast_learner.py`` checks that a sample is
the one RLlib's pipelines give.
"""
from __future__ import annotations

import numpy as np
from ray.rllib.connectors.env_to_module.env_to_module_pipeline import (
    EnvToModulePipeline,
)
from ray.rllib.connectors.module_to_env.module_to_env_pipeline import (
    ModuleToEnvPipeline,
)
from ray.rllib.connectors.module_to_env.normalize_and_clip_actions import (
    NormalizeAndClipActions,
)
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.utils.spaces.space_utils import clip_action, unsquash_action
from ray.rllib.utils.torch_utils import convert_to_torch_tensor

from pgu_rllib.rllib.accel.guard import patches_enabled
from pgu_rllib.rllib.accel.filters import VectorMeanStdFilter

# The connectors RLlib puts in a single-agent, non-recurrent pipeline by default (Ray 2.60).
_ENV_TO_MODULE_TAIL = ("AddObservationsFromEpisodesToBatch", "AddTimeDimToBatchAndZeroPad",
                       "AddStatesFromEpisodesToBatch", "BatchIndividualItems", "NumpyToTensor")
_MODULE_TO_ENV = ("GetActions", "TensorToNumpy", "UnBatchToIndividualItems", "RemoveSingleTsTimeRankFromBatch",
                  "NormalizeAndClipActions", "ListifyDataForVectorEnv")


def _names(connectors) -> tuple:
    return tuple("NormalizeAndClipActions" if isinstance(c, NormalizeAndClipActions) else type(c).__name__
                 for c in connectors)


def _fusable(rl_module, episodes) -> bool:
    return (patches_enabled() and len(episodes) > 1 and rl_module is not None
            and not isinstance(rl_module, MultiRLModule) and not rl_module.is_stateful())


class UntimedEnvToModulePipeline(EnvToModulePipeline):
    """Untimed; with RLlib's default tail, that tail as one stack of the episodes' last observations."""

    def __call__(self, *, rl_module, episodes, batch=None, metrics=None, **kwargs):
        tail = len(_ENV_TO_MODULE_TAIL)
        if not (_fusable(rl_module, episodes) and _names(self.connectors[-tail:]) == _ENV_TO_MODULE_TAIL
                and not batch):
            return super().__call__(rl_module=rl_module, batch=batch, episodes=episodes, metrics=None, **kwargs)
        prefix = self.connectors[:-tail]
        if len(prefix) == 1 and isinstance(prefix[0], VectorMeanStdFilter):  # the MuJoCo recipe's pipeline
            obs = prefix[0].normalize_last(episodes)
            if obs is not None:
                return {Columns.OBS: convert_to_torch_tensor(obs, device=self.connectors[-1]._device)}
        batch, shared_data = {}, kwargs.pop("shared_data", None)
        shared_data = {} if shared_data is None else shared_data
        for connector in prefix:  # e.g. the MeanStdFilter, which edits the episodes
            batch = connector(rl_module=rl_module, batch=batch, episodes=episodes, shared_data=shared_data,
                              metrics=None, data=batch, **kwargs)
        if batch:  # a custom connector wrote to the batch: let RLlib's tail merge it
            for connector in self.connectors[-tail:]:
                batch = connector(rl_module=rl_module, batch=batch, episodes=episodes, shared_data=shared_data,
                                  metrics=None, data=batch, **kwargs)
            return batch
        obs = np.stack([np.asarray(e.get_observations(-1)) for e in episodes])
        return {Columns.OBS: convert_to_torch_tensor(obs, device=self.connectors[-1]._device)}


class UntimedModuleToEnvPipeline(ModuleToEnvPipeline):
    """Untimed; with RLlib's default pieces, batched actions instead of per-env items."""

    def __call__(self, *, rl_module, episodes, batch=None, metrics=None, **kwargs):
        if not (_fusable(rl_module, episodes) and _names(self.connectors) == _MODULE_TO_ENV):
            return super().__call__(rl_module=rl_module, batch=batch, episodes=episodes, metrics=None, **kwargs)
        get_actions, to_numpy, normalize = self.connectors[0], self.connectors[1], self.connectors[4]
        for connector in (get_actions, to_numpy):
            batch = connector(rl_module=rl_module, batch=batch, episodes=episodes, metrics=None, data=batch, **kwargs)
        # The sampling loop indexes every column by env (``v[env_index]``): rows of these arrays are
        # exactly the per-env items RLlib's UnBatchToIndividualItems + ListifyDataForVectorEnv produce.
        struct = normalize._action_space_struct
        actions = batch[Columns.ACTIONS]
        if normalize.normalize_actions:
            batch[Columns.ACTIONS_FOR_ENV] = unsquash_action(actions, struct)
        elif normalize.clip_actions:
            batch[Columns.ACTIONS_FOR_ENV] = clip_action(actions, struct)
        return batch


class _EvalModeExploration:
    """``TorchRLModule.forward_exploration`` minus its ``eval()``: a walk over every submodule on each
    step, a no-op while the module stays in eval mode (it never leaves it on an EnvRunner)."""

    def __init__(self, module):
        self.module = module

    def __call__(self, batch, **kwargs):
        if self.module.training:
            return TorchRLModule.forward_exploration(self.module, batch, **kwargs)
        return self.module._forward_exploration(batch, **kwargs)


_UNTIMED = {EnvToModulePipeline: UntimedEnvToModulePipeline, ModuleToEnvPipeline: UntimedModuleToEnvPipeline}


class PGUEnvRunner(SingleAgentEnvRunner):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for attr in ("_env_to_module", "_module_to_env"):
            pipeline = getattr(self, attr, None)
            if type(pipeline) in _UNTIMED:
                pipeline.__class__ = _UNTIMED[type(pipeline)]

    def make_module(self):
        super().make_module()
        if self.module is not None:
            self.module.eval()  # forward_exploration then has nothing to toggle back
            if patches_enabled() and isinstance(self.module, TorchRLModule):
                self.module.forward_exploration = _EvalModeExploration(self.module)
