"""The speed paths do RLlib's arithmetic: the fused optimiser step (issue 6: same clip, Adam, NaN guard),
the lean epochs loop and the vectorised sampling connectors (issue 15: same rows, weights, metrics, samples)."""
import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.minibatch_utils import MiniBatchCyclicIterator
from ray.rllib.utils.torch_utils import clip_gradients

from pgu_rllib.rllib.accel.fast_update import LeanEpochsMixin, clip_by_global_norm, minibatch_plan
from pgu_rllib.rllib.learner import PGUTorchLearner
from pgu_rllib.tasks.training import build_config

pytestmark = pytest.mark.usefixtures("patches_on")  # fast path against RLlib's: both arms run here


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])  # clip inactive, near, active
def test_clip_by_global_norm_equals_rllib(scale):
    torch.manual_seed(0)
    grads = [torch.randn(64, 17) * scale, torch.randn(64) * scale, torch.randn(6, 64) * scale]
    ours = {i: g.clone() for i, g in enumerate(grads)}
    theirs = {i: g.clone() for i, g in enumerate(grads)}
    n_ours = clip_by_global_norm(ours, grad_clip=0.5, grad_clip_by="global_norm")
    n_theirs = clip_gradients(theirs, grad_clip=0.5, grad_clip_by="global_norm")
    assert torch.allclose(n_ours, n_theirs, rtol=1e-6)
    for i in ours:
        assert torch.allclose(ours[i], theirs[i], rtol=1e-5, atol=1e-7)
    clipped = float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in ours.values()])))
    assert clipped == pytest.approx(min(float(n_ours), 0.5), rel=1e-4)


class RLlibStepLearner(PGUTorchLearner):
    """The same loss with RLlib's own optimiser step, for comparison."""

    configure_optimizers_for_module = PPOTorchLearner.configure_optimizers_for_module
    _get_clip_function = staticmethod(PPOTorchLearner._get_clip_function)
    apply_gradients = PPOTorchLearner.apply_gradients


def _learners():
    config = build_config("halfcheetah", "ppo", {}, seed=0, budget=10_000)
    env = gym.make("HalfCheetah-v5")
    fast = config.build_learner(env=env)
    slow = config.copy(copy_frozen=False).learners(learner_class=RLlibStepLearner).build_learner(env=env)
    slow.set_state(fast.get_state(components="rl_module"))
    episodes = SingleAgentEnvRunner(config=config).sample(num_timesteps=256)
    return fast, slow, episodes


def test_update_matches_rllib_step():
    torch.manual_seed(0)
    fast, slow, episodes = _learners()
    assert fast.get_optimizer().defaults["fused"] and not slow.get_optimizer().defaults["fused"]
    start = {k: v.detach().clone() for k, v in fast.module["default_policy"].named_parameters()}
    for learner in (fast, slow):
        learner.update(episodes=copy.deepcopy(episodes),  # the learner connector edits episodes
                       timesteps={"num_env_steps_sampled_lifetime": 256},
                       num_epochs=2, minibatch_size=64, shuffle_batch_per_epoch=False)
    p_fast = dict(fast.module["default_policy"].named_parameters())
    p_slow = dict(slow.module["default_policy"].named_parameters())
    for name, p in p_fast.items():
        assert torch.allclose(p, p_slow[name], atol=1e-6), name
    assert sum(not torch.equal(p, start[n]) for n, p in p_fast.items()) >= len(p_fast) - 1  # it really trained


def test_nan_gradient_takes_rllib_path():
    fast, _, _ = _learners()
    params = list(fast._params.values())
    before = [p.detach().clone() for p in params]
    grads = {pid: torch.zeros_like(p) for pid, p in fast._params.items()}
    first = next(iter(grads))
    grads[first] = torch.full_like(grads[first], float("nan"))
    fast.apply_gradients(grads)
    # RLlib's path: the NaN gradient becomes 0 and the step is skipped, so nothing moves.
    assert torch.equal(fast._params[first].grad, torch.zeros_like(grads[first]))
    assert all(torch.equal(b, p.detach()) for b, p in zip(before, params))


# -- the lean epochs loop (issue 15) ---------------------------------------------------------------

class RLlibEpochsLearner(PGUTorchLearner):
    """The same learner with RLlib's own ``Learner.update`` (a SampleBatch per minibatch, every metric logged)."""

    update = PPOTorchLearner.update


def _flat(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}/")
        else:
            yield f"{prefix}{k}", v.peek() if hasattr(v, "peek") else v


@pytest.mark.parametrize("shuffle,via", [(False, "episodes"), (True, "training_data")])
def test_lean_epochs_equal_rllib_update(shuffle, via, monkeypatch):
    """Same minibatch rows, same weights after the update, same reduced metrics; the LearnerGroup
    passes ``training_data``, a direct call ``episodes``."""
    from ray.rllib.core.learner.training_data import TrainingData

    ran = []
    monkeypatch.setattr(PGUTorchLearner, "_lean_step", lambda self, mb, groups: ran.append(1) or LeanEpochsMixin._lean_step(self, mb, groups))
    config = build_config("halfcheetah", "ppo", {}, seed=0, budget=10_000)
    env = gym.make("HalfCheetah-v5")
    lean = config.build_learner(env=env)
    rllib = config.copy(copy_frozen=False).learners(learner_class=RLlibEpochsLearner).build_learner(env=env)
    rllib.set_state(lean.get_state(components=["rl_module", "optimizer"]))
    episodes = SingleAgentEnvRunner(config=config).sample(num_timesteps=300)  # 300 rows: minibatches wrap
    results = {}
    for name, learner in (("lean", lean), ("rllib", rllib)):
        np.random.seed(7)  # the shuffle's draws
        data = {"episodes": copy.deepcopy(episodes)}  # the learner connector edits episodes
        if via == "training_data":
            data = {"training_data": TrainingData(**data)}
        results[name] = dict(_flat(learner.update(
            **data, timesteps={"num_env_steps_sampled_lifetime": 300},
            num_epochs=3, minibatch_size=64, shuffle_batch_per_epoch=shuffle)))
    p_lean = dict(lean.module["default_policy"].named_parameters())
    for name, p in rllib.module["default_policy"].named_parameters():
        assert torch.allclose(p, p_lean[name], atol=1e-6), name
    timers = {k for k in results["rllib"] if "timer" in k or "throughput" in k}
    assert set(results["lean"]) - timers == set(results["rllib"]) - timers
    for key, value in results["rllib"].items():
        if key not in timers and not (isinstance(value, float) and np.isnan(value)):
            assert results["lean"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    assert results["lean"]["default_policy/num_module_steps_trained"] == 64 * 15  # ceil(3 * 3xx / 64) minibatches
    assert len(ran) == 15  # the lean loop ran (and only for the lean learner)


@pytest.mark.parametrize("sizes", [{"p": 300}, {"p": 256}, {"a": 100, "b": 37}])
def test_minibatch_plan_cuts_rllibs_minibatches(sizes):
    batch = MultiAgentBatch({mid: SampleBatch({"row": np.arange(n)}) for mid, n in sizes.items()},
                            env_steps=max(sizes.values()))
    np.random.seed(3)
    theirs = [{mid: b["row"].tolist() for mid, b in mb.policy_batches.items()}
              for mb in MiniBatchCyclicIterator(batch, num_epochs=4, minibatch_size=64, shuffle_batch_per_epoch=True)]
    np.random.seed(3)
    ours = [{mid: idx.tolist() for mid, idx in mb.items()}
            for mb in minibatch_plan(sizes, minibatch_size=64, num_epochs=4, shuffle=True)]
    assert ours == theirs and len(ours) >= 4 * max(sizes.values()) // 64


def test_fused_connectors_sample_what_rllibs_sample(monkeypatch):
    """The batched sampling pipelines (``accel.env_runner``) and ``VectorMeanStdFilter`` against RLlib's
    connectors: same seed, same observations, actions, log-probs and filter statistics."""
    from ray.rllib.connectors.module_to_env import UnBatchToIndividualItems

    calls = []
    unbatch = UnBatchToIndividualItems.__call__
    monkeypatch.setattr(UnBatchToIndividualItems, "__call__", lambda self, **kw: calls.append(1) or unbatch(self, **kw))
    config = build_config("halfcheetah", "ppo", {}, seed=0, budget=10_000)
    samples, states, unbatched = {}, {}, {}
    for name in ("fused", "rllib"):
        if name == "rllib":
            monkeypatch.setenv("PGU_DISABLE_RAY_PATCHES", "1")
        calls.clear()
        runner = config.env_runner_cls(config=config)
        episodes = runner.sample(num_timesteps=512)
        unbatched[name] = len(calls)
        samples[name] = [(e.get_observations(), e.get_actions(), e.get_extra_model_outputs("action_logp"),
                          e.get_rewards()) for e in episodes]
        stat = runner._env_to_module.connectors[0]._filters[None].running_stats
        states[name] = (stat.n, stat.mean.copy(), stat.std.copy())
        runner.stop()
    assert unbatched == {"fused": 0, "rllib": 512 // 16}
    assert len(samples["fused"]) == len(samples["rllib"]) >= 16
    for ours, theirs in zip(samples["fused"], samples["rllib"]):
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert states["fused"][0] == states["rllib"][0] == 512 + 16  # every observation, resets included
    np.testing.assert_allclose(states["fused"][1], states["rllib"][1], rtol=1e-9)
    np.testing.assert_allclose(states["fused"][2], states["rllib"][2], rtol=1e-6)
