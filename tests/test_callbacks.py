"""EpisodeReturns: the objective is always present and finite, whatever shape RLlib reports."""
import math

import pytest

from pgu_rllib.rllib.callbacks import EpisodeReturns
from pgu_rllib.rllib.keys import EPISODE_RETURNS as RETURNS_KEY
from pgu_rllib.tasks import get_task
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner


class _Algo:
    class config:  # noqa: N801 (a stand-in for the config attribute the callback reads)
        pgu_task = get_task("hopper")  # the recipe hands the task to the callbacks


class _NoTask:
    class config:  # noqa: N801
        pgu_task = None


def test_a_config_without_task_scores_episode_returns_with_a_low_floor():
    result = {"env_runners": {}}
    EpisodeReturns().on_train_result(algorithm=_NoTask(), result=result)
    assert result["pgu"]["objective"] == -1e6


def test_an_exact_task_scores_itself_with_the_area_of_its_metric():
    class _Bandit:
        class config:  # noqa: N801
            pgu_task = get_task("bandit")

        @staticmethod
        def get_module():
            import torch

            class M:
                theta = torch.tensor([1.0, 1.0])
            return M

        config.env_config = {"n_actions": 8}

    cb = EpisodeReturns()
    values = []
    for _ in range(3):
        result = {"env_runners": {}}
        cb.on_train_result(algorithm=_Bandit(), result=result)
        values.append(result["pgu"]["greedy_expected_reward"])
    assert result["pgu"]["objective"] == pytest.approx(sum(values) / 3)  # the mean over iterations
    assert values[0] == pytest.approx(0.7538, abs=1e-4)  # θ* = (1, 1) is the optimum


@pytest.mark.parametrize("reported, expected", [
    (None, None),                   # no episode finished yet
    (5.0, 5.0),                     # one episode: RLlib's item_series reduces it to a scalar
    ([1.0, 3.0], 2.0),              # several episodes
    ([float("nan"), 4.0], 4.0),     # non-finite returns are dropped
])
def test_objective_for_every_reported_shape(reported, expected):
    cb = EpisodeReturns()
    result = {"env_runners": {} if reported is None else {RETURNS_KEY: reported}}
    cb.on_train_result(algorithm=_Algo(), result=result)
    pgu = result["pgu"]
    assert pgu["episode_return_mean"] == expected
    assert math.isfinite(pgu["objective"])
    assert pgu["objective"] == (expected if expected is not None else -1e3)  # hopper's floor
    assert RETURNS_KEY not in result["env_runners"]


def test_window_is_the_last_ten_episodes():
    cb = EpisodeReturns()
    for i in range(12):
        result = {"env_runners": {RETURNS_KEY: float(i)}}
        cb.on_train_result(algorithm=_Algo(), result=result)
    assert result["pgu"]["episode_return_mean"] == pytest.approx(sum(range(2, 12)) / 10)
    assert result["pgu"]["episodes_total"] == 12


class _FixedEpisodes(__import__("gymnasium").Env):
    """50-step episodes, scaled reward 1 per step, raw reward 2 per step."""

    def __init__(self, config=None):
        import gymnasium as gym
        import numpy as np

        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self._t = 0

    def reset(self, *, seed=None, options=None):
        self._t = 0
        return self.observation_space.low * 0, {}

    def step(self, action):
        self._t += 1
        return self.observation_space.low * 0, 1.0, self._t >= 50, False, {"raw_reward": 2.0}


@pytest.mark.parametrize("chunk", [7, 50, 128])
def test_episode_return_spans_sample_chunks(chunk):
    """An episode cut across sample() calls is reported whole, with raw rewards, counted once."""
    from pgu_rllib.rllib.algorithm import PGUConfig

    config = (PGUConfig().environment(_FixedEpisodes).env_runners(num_env_runners=0)
              .callbacks(EpisodeReturns))
    runner = (config.env_runner_cls or SingleAgentEnvRunner)(config=config)  # None: the patches are off
    for _ in range(600 // chunk + 1):
        runner.sample(num_timesteps=chunk)
    returns = runner.metrics.peek(RETURNS_KEY)
    assert len(returns) >= 10 and set(returns) == {100.0}


def test_the_eval_objective_is_the_latest_periodic_evaluation(ray_local):
    """objective "eval": the evaluator every pgu_eval_interval env steps and at the budget, its env steps
    counted apart, its state kept across a save/restore."""
    from pgu_rllib.tasks.training import build_config

    overrides = {"train_batch_size_per_learner": 512, "num_epochs": 1, "pgu_objective": "eval",
                 "pgu_eval_interval": 1024}
    algo = build_config("cartpole", "ppo", overrides, seed=1, budget=2048).build_algo()
    task = get_task("cartpole")
    rows = []
    for _ in range(4):
        result = algo.train()
        rows.append(dict(result["pgu"], steps=result["num_env_steps_sampled_lifetime"],
                         now=task.evaluate(algo).mean))
    assert [r["steps"] for r in rows] == [512, 1024, 1536, 2048]
    evaluated = [0, 1, 3]  # at 512 (the first), at 1024 (the interval), at 2048 (the budget); not at 1536
    for i in evaluated:
        assert rows[i]["objective"] == rows[i]["eval_return_mean"] == rows[i]["now"]
    assert rows[2]["objective"] == rows[1]["objective"] and rows[2]["eval_env_steps"] == rows[1]["eval_env_steps"]
    assert 0 < rows[0]["eval_env_steps"] < rows[1]["eval_env_steps"] < rows[3]["eval_env_steps"]
    assert rows[3]["eval_env_steps"] >= 3 * 10 * 8  # 3 evaluations x 10 episodes, CartPole lasts >= 8 steps
    cb = algo.callbacks[0] if isinstance(algo.callbacks, list) else algo.callbacks
    restored = EpisodeReturns()
    restored.set_state(cb.get_state())
    assert restored.get_state() == cb.get_state() and cb.get_state()["eval"] == rows[3]["objective"]
    algo.stop()


def test_non_finite_episode_statistics_are_dropped_before_the_loggers_see_them():
    """RLlib reports NaN episode statistics in an iteration with no finished episode; the loggers would print a
    warning for each (TensorBoard's "NaN or Inf found in input tensor.")."""
    result = {"env_runners": {"episode_return_mean": float("nan"), "num_env_steps": 512,
                              "module_episode_returns_mean": {"default_policy": float("inf")}}}
    EpisodeReturns().on_train_result(algorithm=_Algo(), result=result)
    assert result["env_runners"] == {"num_env_steps": 512, "module_episode_returns_mean": {}}
    assert math.isfinite(result["pgu"]["objective"])
