"""The fence (``pgu_rllib.rllib.accel``): no private name of another library outside it; the patched env
runner samples exactly what RLlib's runner samples; ``PGU_DISABLE_RAY_PATCHES=1`` runs RLlib's own runner
and optimiser step with the same update (CartPole and HalfCheetah); a Ray without an attribute we need
fails at once, naming it."""
import ast
import copy
import pathlib

import gymnasium as gym
import numpy as np
import pytest
import ray
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

from pgu_rllib.rllib.accel import guard as compat
from pgu_rllib.rllib.accel.env_runner import PGUEnvRunner
from pgu_rllib.tasks import get_task
from pgu_rllib.tasks.training import build_config


def _columns(episodes):
    return {k: np.concatenate([np.asarray(getter(e)) for e in episodes]) for k, getter in {
        "obs": lambda e: e.get_observations(), "actions": lambda e: e.get_actions(),
        "rewards": lambda e: e.get_rewards(),
        "logp": lambda e: e.get_extra_model_outputs(Columns.ACTION_LOGP)}.items()}


@pytest.mark.parametrize("task", ["cartpole", "hopper"])  # one env; 16 envs with the MeanStdFilter
def test_patched_env_runner_samples_what_rllibs_runner_samples(task, patches_on):
    config = build_config(task, "ppo", {}, seed=7, budget=10_000)
    assert config.env_runner_cls is PGUEnvRunner
    samples = []
    for cls in (PGUEnvRunner, SingleAgentEnvRunner):
        torch.manual_seed(7)
        runner = cls(config=config)
        samples.append(_columns(runner.sample(num_timesteps=600) + runner.sample(num_timesteps=600)))
    for key in samples[0]:
        assert np.array_equal(samples[0][key], samples[1][key]), key


@pytest.mark.parametrize("task", ["cartpole", "halfcheetah"])
def test_disabling_the_patches_runs_rllibs_own_path_with_the_same_update(monkeypatch, task):
    env_id = get_task(task).env_id

    def update(disabled: bool):
        monkeypatch.setenv(compat.DISABLE_ENV, "1" if disabled else "0")
        config = build_config(task, "ppo", {}, seed=0, budget=10_000)
        assert (config.env_runner_cls is None) is disabled  # None: RLlib picks its own runner
        learner = config.build_learner(env=gym.make(env_id))
        assert learner.get_optimizer().defaults["fused"] is not disabled
        torch.manual_seed(0)
        learner.module["default_policy"].load_state_dict(initial)
        learner.update(episodes=copy.deepcopy(episodes), timesteps={"num_env_steps_sampled_lifetime": 512},
                       num_epochs=2, minibatch_size=64, shuffle_batch_per_epoch=False)
        return {k: v.detach().clone() for k, v in learner.module["default_policy"].state_dict().items()}

    config = build_config(task, "ppo", {}, seed=0, budget=10_000)
    ref = config.build_learner(env=gym.make(env_id))
    initial = copy.deepcopy(ref.module["default_policy"].state_dict())
    runner = SingleAgentEnvRunner(config=config)
    runner.set_state(ref.get_state(components="rl_module"))
    episodes = runner.sample(num_timesteps=512)
    patched, stock = update(False), update(True)
    for name in patched:
        assert torch.allclose(patched[name], stock[name], atol=1e-6), name


def test_patches_are_off_on_another_ray_version(monkeypatch):
    compat._version_ok.cache_clear()
    monkeypatch.setattr(ray, "__version__", "2.61.0")
    try:
        assert not compat.patches_enabled()
    finally:
        compat._version_ok.cache_clear()
    monkeypatch.setattr(ray, "__version__", compat.TESTED_RAY)
    monkeypatch.delenv(compat.DISABLE_ENV, raising=False)
    assert compat.patches_enabled()


def test_a_missing_private_attribute_is_named():
    class Old:
        pass

    with pytest.raises(RuntimeError, match=r"resuming an Optuna search needs Old._ot_trials, which ray .* lacks"):
        compat.require(Old, ("_ot_trials",), "resuming an Optuna search")


PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "pgu_rllib"
FENCE = PACKAGE / "rllib" / "accel"
# public despite the underscore: RLlib's documented override point for a module's forward pass,
# SQLAlchemy's documented mapping view of a Row
DOCUMENTED = {"_forward", "_mapping"}


def _library_private_names() -> set[str]:
    """Every single-underscore name of the library classes pgu-rllib subclasses or calls."""
    from ray.rllib.algorithms.ppo import PPO, PPOConfig
    from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
    from ray.rllib.callbacks.callbacks import RLlibCallback
    from ray.rllib.core.rl_module.torch import TorchRLModule
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
    from ray.tune import Callback, Stopper
    from ray.tune.search.optuna import OptunaSearch

    names = set(vars(PPOConfig()))
    for cls in (PPOConfig, PPO, PPOTorchLearner, TorchRLModule, SingleAgentEnvRunner, RLlibCallback, OptunaSearch,
                Callback, Stopper, torch.optim.Adam, torch.nn.Module, torch):
        names |= set(dir(cls))
    return {n for n in names if n.startswith("_") and not n.startswith("__")} - DOCUMENTED


def fence_violations(package: pathlib.Path = PACKAGE, fence: pathlib.Path = FENCE) -> list[str]:
    """``file:line name`` for each private name of another library used outside the fence: an import of a
    private module, or an attribute or method (read, called or overridden) named like a private one."""
    private = _library_private_names()
    outside = [p for p in sorted(package.rglob("*.py")) if fence not in p.parents]
    trees = {p: ast.parse(p.read_text()) for p in outside}
    ours = {p.stem for p in outside}  # names pgu-rllib itself defines or assigns outside the fence
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                ours.add(node.name)
            elif isinstance(node, ast.Name | ast.Attribute) and isinstance(node.ctx, ast.Store):
                ours.add(getattr(node, "id", None) or node.attr)
            elif isinstance(node, ast.alias):
                ours.add((node.asname or node.name).split(".")[-1])
    found = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Attribute):  # a library's private name, or one pgu-rllib never defines
                private_attr = node.attr.startswith("_") and not node.attr.startswith("__")
                names = [node.attr] if node.attr in private or (
                    private_attr and node.attr not in ours and node.attr not in DOCUMENTED) else []
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [node.name] if node.name in private else []
            elif isinstance(node, ast.Import | ast.ImportFrom):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                names = [m for m in modules if not m.startswith("pgu_rllib")
                         and any(p.startswith("_") and not p.startswith("__") for p in m.split("."))]
            found += [f"{path.relative_to(package.parent)}:{node.lineno} {n}" for n in names]
    return found


def test_no_private_library_name_outside_the_fence(tmp_path):
    assert fence_violations() == []
    # the scan finds each kind it looks for, in a copy of the package with one of each planted
    planted = tmp_path / "pgu_rllib"
    (planted / "rllib" / "accel").mkdir(parents=True)
    (planted / "rllib" / "accel" / "ok.py").write_text("import ray._private.services\n")
    (planted / "bad.py").write_text("import ray._private.services\nfrom ray._common import x\n"
                                    "def f(learner):\n    return learner._module_optimizers\n"
                                    "class C:\n    def _update_module_kl_coeff(self): pass\n")
    found = fence_violations(planted, planted / "rllib" / "accel")
    assert sorted(f.split(" ")[1] for f in found) == ["_module_optimizers", "_update_module_kl_coeff", "ray._common",
                                                      "ray._private.services"]
    assert all(f.startswith("pgu_rllib/bad.py:") for f in found)
