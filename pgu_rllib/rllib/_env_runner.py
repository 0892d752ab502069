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
"""
from __future__ import annotations

from ray.rllib.connectors.env_to_module.env_to_module_pipeline import EnvToModulePipeline
from ray.rllib.connectors.module_to_env.module_to_env_pipeline import ModuleToEnvPipeline
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner


class UntimedEnvToModulePipeline(EnvToModulePipeline):
    def __call__(self, *, metrics=None, **kwargs):
        return super().__call__(metrics=None, **kwargs)


class UntimedModuleToEnvPipeline(ModuleToEnvPipeline):
    def __call__(self, *, metrics=None, **kwargs):
        return super().__call__(metrics=None, **kwargs)


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
