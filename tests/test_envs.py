"""Env contracts: spaces, reward law, regret bookkeeping, determinism under a seed."""
import gymnasium as gym
import numpy as np
import pytest

import pgu_rllib.tasks  # noqa: F401  (registers the gym ids)
from pgu_rllib.tasks.bandit import (THETA_STAR, action_embedding, expected_rewards, eval_contexts,
                                   greedy_expected_reward)
from pgu_rllib.tasks.four_rooms import FourRooms
from pgu_rllib.tasks.mujoco import RewardScaled


def test_bandit_spaces_and_embedding():
    env = gym.make("pgu/UnitCircleBandit-v0")
    assert env.observation_space.shape == (2,)
    assert env.action_space.n == 8
    psi = action_embedding(8)
    assert np.allclose(np.linalg.norm(psi, axis=1), 1.0)
    assert np.allclose(psi[2], [0.0, 1.0], atol=1e-12)  # a = N/4 → angle π/2


def test_bandit_reward_law_and_regret_bookkeeping():
    env = gym.make("pgu/UnitCircleBandit-v0").unwrapped
    obs, info = env.reset(seed=1)
    x = obs.astype(float)
    r_bar = 1 / (1 + np.exp(-(np.array([np.cos(2 * np.pi * np.arange(8) / 8),
                                        np.sin(2 * np.pi * np.arange(8) / 8)]).T @ x)))
    assert np.allclose(info["expected_rewards"], r_bar, atol=1e-6)
    for a in range(8):
        env.reset(seed=1)
        _, reward, terminated, truncated, step_info = env.step(a)
        assert terminated and not truncated and reward in (0.0, 1.0)
        assert step_info["expected_reward"] == pytest.approx(r_bar[a], abs=1e-6)
        assert step_info["regret"] == pytest.approx(r_bar.max() - r_bar[a], abs=1e-6)
        assert step_info["regret"] >= 0
    # Bernoulli with mean r̄: empirical frequency over many pulls of one action at one context
    rewards = []
    for i in range(20_000):
        env.reset(seed=1)
        env.np_random = np.random.default_rng(i)
        env._x = x
        rewards.append(env.step(3)[1])
    assert abs(np.mean(rewards) - r_bar[3]) < 4 * np.sqrt(r_bar[3] * (1 - r_bar[3]) / 20_000)


def test_bandit_is_deterministic_under_a_seed():
    def roll(seed):
        env = gym.make("pgu/UnitCircleBandit-v0")
        obs, _ = env.reset(seed=seed)
        out = [obs.tolist()]
        for a in [0, 3, 5, 7, 1]:
            o, r, *_ = env.step(a)
            out.append(r)
            o, _ = env.reset()
            out.append(o.tolist())
        return out
    assert roll(5) == roll(5)
    assert roll(5) != roll(6)


def test_bandit_theta_star_greedy_is_optimal_and_theta_zero_is_not():
    contexts = eval_contexts()
    greedy, optimal = greedy_expected_reward(THETA_STAR, contexts, 8)
    assert greedy == pytest.approx(optimal, abs=1e-12)
    g0, _ = greedy_expected_reward(np.zeros(2), contexts, 8)
    uniform = expected_rewards(contexts, 8).mean()
    assert g0 < uniform + 0.02 < optimal


def test_bad_bandit_config():
    with pytest.raises(ValueError, match="n_actions=1 is out of range"):
        gym.make("pgu/UnitCircleBandit-v0", config={"n_actions": 1})


def test_four_rooms_spaces_layout_and_reward():
    env = gym.make("pgu/FourRooms-v0").unwrapped
    assert env.observation_space.shape == (104,) and env.action_space.n == 4
    obs, info = env.reset(seed=0)
    assert obs.sum() == 1.0 and obs[env.index[info["cell"]]] == 1.0
    dist = env.shortest_path_lengths()
    assert len(dist) == 104  # every free cell reaches the goal: the rooms are connected
    # walk the shortest path from the start: reward 1 exactly on arrival, terminated
    pos, total = info["cell"], 0.0
    moves = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    for _ in range(dist[pos]):
        a = next(i for i, (dr, dc) in enumerate(moves)
                 if (pos[0] + dr, pos[1] + dc) in dist and dist[(pos[0] + dr, pos[1] + dc)] == dist[pos] - 1)
        obs, r, terminated, truncated, info = env.step(a)
        pos, total = info["cell"], total + r
    assert pos == env.goal and total == 1.0 and terminated and not truncated


def test_four_rooms_walls_block_and_step_cap_truncates():
    env = FourRooms({"max_steps": 5})
    env.reset(seed=0)
    env._pos = (1, 1)  # top-left corner: up and left are walls
    assert env.step(0)[4]["cell"] == (1, 1)
    assert env.step(2)[4]["cell"] == (1, 1)
    for _ in range(3):
        _, r, term, trunc, _ = env.step(0)
    assert r == 0.0 and not term and trunc


def test_four_rooms_cap_terminal_ends_the_episode_with_zero_return():
    env = FourRooms({"max_steps": 3, "cap_terminal": True})
    env.reset(seed=0)
    env._pos = (1, 1)
    steps = [env.step(0) for _ in range(3)]
    assert [(s[1], s[2], s[3]) for s in steps] == [(0.0, False, False), (0.0, False, False), (0.0, True, False)]


def test_four_rooms_slip_and_determinism():
    def roll(seed, slip):
        env = FourRooms({"slip": slip})
        env.reset(seed=seed)
        return [env.step(3)[4]["cell"] for _ in range(30)]
    assert roll(3, 0.5) == roll(3, 0.5)
    assert roll(3, 0.5) != roll(3, 0.0)  # slipping changes the path
    with pytest.raises(ValueError, match="slip=1.5 is out of range"):
        FourRooms({"slip": 1.5})


def test_reward_scaled_keeps_raw_reward_and_scales():
    """scaled_t = clip(raw_t / std(G_0..G_t), ±10) with G the discounted return (reset at episode
    ends), recomputed here with numpy; the raw reward rides along in info."""
    env = RewardScaled({"env_id": "Hopper-v5", "gamma": 0.99})
    env.reset(seed=0)
    env.action_space.seed(0)
    g, returns = 0.0, []
    for t in range(300):
        _, r, term, trunc, info = env.step(env.action_space.sample())
        g = 0.99 * g + info["raw_reward"]
        returns.append(g)
        if t >= 10:
            expect = np.clip(info["raw_reward"] / np.sqrt(np.var(returns) + 1e-8), -10, 10)
            assert r == pytest.approx(expect, rel=2e-3, abs=1e-6)
        if term or trunc:
            g = 0.0
            env.reset()
    assert abs(info["raw_reward"] - r) > 1e-3  # it does scale
