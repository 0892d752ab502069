"""``pgu/UnitCircleBandit-v0``: the talk's diagnostic contextual bandit (seed 002).

* context ``x ∈ R²`` drawn i.i.d. from **N(0, I₂)** (our choice; the talk does not say);
* ``N`` actions (default 8) embedded as ``ψ(a) = (cos 2πa/N, sin 2πa/N)``;
* expected reward ``r̄(x, a) = σ(⟨φ_θ*(x), ψ(a)⟩)`` with
  ``φ_θ(x) = (θ₀x₀, θ₁x₁) + θ − θ*`` and ``θ* = (1, 1)``, so ``φ_θ*(x) = x``;
* reward ~ Bernoulli(r̄(x, a)); every episode is one step (terminated);
* ``info["expected_rewards"]`` holds ``r̄(x, ·)`` for every action, so regret is exact:
  ``info["regret"] = max_u r̄(x, u) − r̄(x, a)``;
* ``group_size`` G (default 1): the same context for G consecutive episodes, so G actions are
  sampled for one state (GRPO's groups, ``delta_r="group"``).

The model, ``q_θ(x, a) = ⟨φ_θ(x), ψ(a)⟩`` (two parameters), is misspecified on purpose:
no θ makes ``q_θ`` equal ``r̄``, yet the greedy policy at ``θ = θ*`` is optimal.

Example::

    >>> env = UnitCircleBandit()
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape, len(info["expected_rewards"])
    ((2,), 8)
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from pgu_rllib.rllib.modules import LogitQModule

THETA_STAR = np.array([1.0, 1.0])


def action_embedding(n_actions: int) -> np.ndarray:
    """``ψ``: shape ``(N, 2)``, row a = (cos 2πa/N, sin 2πa/N)."""
    angles = 2 * np.pi * np.arange(n_actions) / n_actions
    return np.stack([np.cos(angles), np.sin(angles)], axis=-1)


def phi(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``φ_θ(x) = (θ₀x₀, θ₁x₁) + θ − θ*`` for contexts ``x`` of shape ``(..., 2)``."""
    return theta * x + theta - THETA_STAR


def expected_rewards(x: np.ndarray, n_actions: int) -> np.ndarray:
    """``r̄(x, ·) = σ(⟨φ_θ*(x), ψ(·)⟩)``, shape ``(..., N)``."""
    logits = phi(THETA_STAR, x) @ action_embedding(n_actions).T
    return 1.0 / (1.0 + np.exp(-logits))


def greedy_expected_reward(theta: np.ndarray, contexts: np.ndarray, n_actions: int) -> tuple[float, float]:
    """(expected reward of the greedy policy of ``q_θ``, of the optimal policy) on ``contexts``."""
    r_bar = expected_rewards(contexts, n_actions)
    greedy = np.argmax(phi(np.asarray(theta, dtype=float), contexts) @ action_embedding(n_actions).T, axis=-1)
    return float(r_bar[np.arange(len(contexts)), greedy].mean()), float(r_bar.max(-1).mean())


def eval_contexts(n: int = 4096, seed: int = 12345) -> np.ndarray:
    """A fixed set of contexts from the env's distribution, for greedy evaluation."""
    return np.random.default_rng(seed).standard_normal((n, 2))


class UnitCircleBandit(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, config: dict | None = None, n_actions: int | None = None):
        config = dict(config or {})
        self.n_actions = int(n_actions or config.get("n_actions", 8))
        if self.n_actions < 2:
            raise ValueError(f"n_actions={self.n_actions} is out of range; allowed: an integer >= 2")
        self.group_size = int(config.get("group_size", 1))
        if self.group_size < 1:
            raise ValueError(f"group_size={self.group_size} is out of range; allowed: an integer >= 1")
        self._episodes = 0
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(self.n_actions)
        self._x = np.zeros(2)

    def _info(self) -> dict:
        return {"expected_rewards": expected_rewards(self._x, self.n_actions).astype(np.float32)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self._episodes = 0
        if self._episodes % self.group_size == 0:  # a new context every group_size episodes
            self._x = self.np_random.standard_normal(2)
        self._episodes += 1
        return self._x.astype(np.float32), self._info()

    def step(self, action):
        r_bar = expected_rewards(self._x, self.n_actions)
        a = int(action)
        reward = float(self.np_random.random() < r_bar[a])
        info = {"expected_rewards": r_bar.astype(np.float32), "expected_reward": float(r_bar[a]),
                "regret": float(r_bar.max() - r_bar[a])}
        return self._x.astype(np.float32), reward, True, False, info


class UnitCircleQModule(LogitQModule):
    """The talk's model ``q_θ(x, a) = ⟨(θ₀x₀, θ₁x₁) + θ − θ*, ψ(a)⟩``: two parameters, θ₀ = 0."""

    def setup(self):
        n = self.action_space.n
        self.theta = torch.nn.Parameter(torch.zeros(2))
        self.register_buffer("psi", torch.tensor(action_embedding(n), dtype=torch.float32))
        self.register_buffer("theta_star", torch.tensor(THETA_STAR, dtype=torch.float32))

    def q(self, obs):
        phi = self.theta * obs + self.theta - self.theta_star
        return phi @ self.psi.T
