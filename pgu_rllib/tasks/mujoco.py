"""``RewardScaled``: a MuJoCo env with the PPO reward-scaling details, raw returns kept.

Reward scaling as CleanRL / openai-baselines do it: divide each reward by the
running std of the discounted return (γ), then clip to ±10. The unscaled reward
goes to ``info["raw_reward"]`` so reported episode returns are the env's own
(``callbacks.chunk_raw_return``). Observation normalisation is RLlib's
``MeanStdFilter`` connector (clip ±10), set in the task recipe.

Example::

    >>> env = RewardScaled({"env_id": "Hopper-v5"})
    >>> _ = env.reset(seed=0)
    >>> _, r, *_, info = env.step(env.action_space.sample())
    >>> "raw_reward" in info
    True
"""
from __future__ import annotations

import math

import gymnasium as gym


class RunningVariance:
    """Welford-style running mean/variance of a scalar stream (parallel-update form)."""

    def __init__(self):
        self.mean, self.var, self.count = 0.0, 1.0, 1e-4

    def update(self, x: float) -> None:
        delta = x - self.mean
        total = self.count + 1
        self.mean += delta / total
        self.var = (self.var * self.count + delta**2 * self.count / total) / total
        self.count = total


class RewardScaled(gym.Wrapper):
    def __init__(self, config: dict | None = None):
        config = dict(config or {})
        super().__init__(gym.make(config["env_id"], **dict(config.get("env_kwargs") or {})))
        self.gamma = float(config.get("gamma", 0.99))
        self.clip = float(config.get("reward_clip", 10.0))
        self._ret, self._rms = 0.0, RunningVariance()

    def reset(self, **kwargs):
        self._ret = 0.0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._ret = self._ret * self.gamma + reward
        self._rms.update(self._ret)
        scaled = min(max(float(reward) / math.sqrt(self._rms.var + 1e-8), -self.clip), self.clip)  # scalar clip
        if terminated or truncated:
            self._ret = 0.0
        return obs, scaled, terminated, truncated, {**info, "raw_reward": float(reward)}
