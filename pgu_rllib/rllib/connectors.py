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
from ray.rllib.connectors.learner import GeneralAdvantageEstimation
from ray.rllib.core.columns import Columns
from ray.rllib.utils.numpy import convert_to_numpy
from ray.rllib.utils.postprocessing.value_predictions import compute_value_targets

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
