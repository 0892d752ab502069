"""``VectorMeanStdFilter``: RLlib's ``MeanStdFilter`` connector, one numpy pass per vector step (a speed
patch; the same numbers as RLlib's, ``tests/test_fast_learner.py``). It reads the connector's private
``_filters``, ``_multi_agent``, ``_update_stats`` and ``_init_new_filters`` (guarded below).
"""
from __future__ import annotations

import numpy as np
from ray.rllib.connectors.env_to_module.mean_std_filter import MeanStdFilter
from ray.rllib.utils.numpy import SMALL_NUMBER

from pgu_rllib.rllib.accel.guard import patches_enabled, require

require(MeanStdFilter, ("_init_new_filters", "single_agent_episode_iterator"), "the vectorised MeanStdFilter")


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
