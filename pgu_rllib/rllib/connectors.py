"""``PGUAdvantageEstimation``: RLlib's GAE connector plus the Monte-Carlo return column.

``delta_r="return"`` (the ``reinforce`` preset) needs ``G_t = Σ_k γ^k r_{t+k}`` summed to the
end of each episode chunk, with no critic anywhere. RLlib's GAE connector only writes the
λ-return value targets, which bootstrap from the critic wherever a chunk ends without a
terminal. This piece runs RLlib's GAE unchanged, then, for the modules that ask for it, adds
``RETURNS`` computed by RLlib's own ``compute_value_targets`` with every value set to 0
(λ = 1): the TD residuals are then the rewards themselves, so the targets are exactly the
discounted reward sums. With ``batch_mode="complete_episodes"`` every chunk is a whole
episode, so these are Monte-Carlo returns (an episode cut by the env's time limit is summed
as far as it went).
"""
from __future__ import annotations

import numpy as np
import torch
from ray.rllib.connectors.env_to_module.mean_std_filter import MeanStdFilter
from ray.rllib.connectors.learner import GeneralAdvantageEstimation
from ray.rllib.core.columns import Columns
from ray.rllib.utils.numpy import SMALL_NUMBER, convert_to_numpy
from ray.rllib.utils.postprocessing.value_predictions import compute_value_targets

from pgu_rllib.rllib.compat import patches_enabled
from pgu_rllib.rllib.keys import GROUP, RETURNS

GROUP_STD_FLOOR = 1e-4


def discounted_returns(rewards, terminateds, truncateds, gamma: float) -> np.ndarray:
    """``G_t`` to the end of each chunk of a flat batch of chunks (values 0, λ = 1)."""
    rewards = np.asarray(rewards, dtype=np.float32)
    return compute_value_targets(values=np.zeros_like(rewards), rewards=rewards,
                                 terminateds=np.asarray(terminateds, dtype=np.float32),
                                 truncateds=np.asarray(truncateds, dtype=np.float32),
                                 gamma=gamma, lambda_=1.0)


def group_relative(returns: np.ndarray, obs: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """GRPO's signal: each valid sample's return standardised among the valid samples of the same
    state (identical observation rows), (G − mean)/max(std, 1e-4); 0 for a state seen once."""
    out = np.zeros_like(returns, dtype=np.float32)
    idx = np.flatnonzero(valid)
    _, group = np.unique(obs[idx].reshape(len(idx), -1), axis=0, return_inverse=True)
    for g in np.unique(group):
        members = idx[group == g]
        values = returns[members]
        out[members] = (values - values.mean()) / max(float(values.std()), GROUP_STD_FLOOR)
    return out


class PGUAdvantageEstimation(GeneralAdvantageEstimation):
    """GAE as RLlib computes it, then ``RETURNS`` for the modules in ``returns_for`` and ``GROUP``
    (returns standardised within groups of the same state, over the whole batch) for those in
    ``groups_for``."""

    def __init__(self, *args, returns_for: frozenset = frozenset(), groups_for: frozenset = frozenset(), **kwargs):
        super().__init__(*args, **kwargs)
        self.returns_for, self.groups_for = returns_for, groups_for

    def __call__(self, *, rl_module, episodes, batch, **kwargs):
        batch = super().__call__(rl_module=rl_module, episodes=episodes, batch=batch, **kwargs)
        for module_id in (self.returns_for | self.groups_for) & set(batch):
            if rl_module[module_id].is_stateful():
                raise ValueError("delta_r='return' and 'group' do not support stateful (recurrent) modules")
            columns = batch[module_id]
            device = columns[Columns.ADVANTAGES].device
            returns = discounted_returns(*(convert_to_numpy(columns[c]) for c in
                                           (Columns.REWARDS, Columns.TERMINATEDS, Columns.TRUNCATEDS)),
                                         gamma=self.gamma)
            if module_id in self.returns_for:
                columns[RETURNS] = torch.as_tensor(returns, device=device)
            if module_id in self.groups_for:
                mask = columns.get(Columns.LOSS_MASK)
                valid = np.ones(len(returns), bool) if mask is None else convert_to_numpy(mask).astype(bool)
                grouped = group_relative(returns, convert_to_numpy(columns[Columns.OBS]), valid)
                columns[GROUP] = torch.as_tensor(grouped, device=device)
        return batch


def push_rows(stat, x: np.ndarray):
    """Push the rows of ``x`` into a ``RunningStat`` at once; return ``(n_i, mean_i, S_i)`` after each row.

    The same state as ``stat.push(x[0]); stat.push(x[1]); …`` (Welford), from prefix sums:
    with ``c_i = Σ_{j≤i} (x_j − m_0)`` and ``q_i = Σ_{j≤i} (x_j − m_0)²``,
    ``n_i = n_0 + i``, ``m_i = m_0 + c_i / n_i`` and ``S_i = S_0 + q_i − c_i² / n_i``.

    >>> from ray.rllib.utils.filter import RunningStat
    >>> a, b, x = RunningStat((2,)), RunningStat((2,)), np.arange(10.0).reshape(5, 2)
    >>> for row in x: a.push(row)
    >>> _ = push_rows(b, x)
    >>> bool(np.allclose(a.mean, b.mean) and np.allclose(a.std, b.std) and a.n == b.n == 5)
    True
    """
    k = len(x)
    n0, m0, s0 = stat.num_pushes, stat.mean_array.copy(), stat.sum_sq_diff_array.copy()
    d = x - m0
    c, q = np.cumsum(d, axis=0), np.cumsum(d * d, axis=0)
    n = (n0 + np.arange(1, k + 1, dtype=np.float64)).reshape((k,) + (1,) * (x.ndim - 1))
    means, sums = m0 + c / n, s0 + q - c * c / n
    stat.mean_array[...] = means[-1]
    stat.mean_delta_array[...] += means[-1] - m0
    stat.sum_sq_diff_array[...] = sums[-1]
    stat.sum_sq_diff_delta_array[...] += sums[-1] - s0
    stat.num_pushes += k
    stat.num_pushes_delta += k
    return n, means, sums


class VectorMeanStdFilter(MeanStdFilter):
    """RLlib's ``MeanStdFilter`` connector, one numpy pass per vector step instead of one per env.

    RLlib's connector filters each sub-env's observation on its own (two ``RunningStat.push`` and a
    normalisation per observation: ~10% of a 16-env MuJoCo sample, ``benchmarks/profile_trial.py``).
    This one stacks the step's observations and computes, with ``push_rows``, the exact statistics
    each row would have seen pushed in turn, so every output, the running statistics, their state
    and their merging across EnvRunners are RLlib's (``tests/test_fast_learner.py::test_fused_connectors_sample_what_rllibs_sample`` compares the two).
    Multi-agent and structured observation spaces take RLlib's path.
    """

    def __call__(self, *, rl_module, batch, episodes, explore=None, persistent_data=None, **kwargs):
        if self.normalize_last(episodes) is None:
            return super().__call__(rl_module=rl_module, batch=batch, episodes=episodes, explore=explore,
                                    persistent_data=persistent_data, **kwargs)
        return batch

    def normalize_last(self, episodes) -> np.ndarray | None:
        """Filter every episode's last observation in place; return them stacked, or None (and do
        nothing) where RLlib's per-episode path must run."""
        if self._filters is None:
            self._init_new_filters()
        filters = self._filters.get(None) if not self._multi_agent else None
        if not patches_enabled() or filters is None or filters.no_preprocessor or filters.shape is None or len(episodes) < 2:
            return None
        episodes = list(self.single_agent_episode_iterator(episodes))
        x = np.stack([np.asarray(e.get_observations(indices=-1)) for e in episodes])
        dtype = x.dtype
        if self._update_stats:
            n, means, sums = push_rows(filters.running_stats, x)
            push_rows(filters.buffer, x)
            var = np.where(n > 1, sums / np.maximum(n - 1, 1), 0.0).astype(np.float32)
        else:
            stat = filters.running_stats
            means, var = stat.mean, stat.var
        if filters.demean:
            x = x - means
        if filters.destd:
            x = x / (np.sqrt(np.maximum(0, var)) + SMALL_NUMBER)
        if filters.clip:
            x = np.clip(x, -filters.clip, filters.clip)
        x = x.astype(dtype)
        for episode, row in zip(episodes, x):
            episode.set_observations(at_indices=-1, new_data=row)
            episode.observation_space = self.observation_space
        return x
