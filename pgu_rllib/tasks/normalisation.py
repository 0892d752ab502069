"""The MuJoCo recipe's two normalisations for a population, on tensors over members and envs (docs/spec.md §8).

A population trial steps K·n plain envs and normalises in torch, the way a solo trial of the recipe
(``tasks/catalog.py``'s MuJoCo recipe) does it, one member at a time:

* ``ObsFilter``: RLlib's ``MeanStdFilter`` connector, one per member, shared by the member's n envs. Every
  new observation is pushed (Welford) and then normalised with the statistics that include it, env 0
  first: ``clip((x − mean)/(std + 1e-6), ±10)``, with ``std = √var`` and ``var = S/(count − 1)`` rounded to
  float32 (0 while count ≤ 1), as ``ray.rllib.utils.filter.RunningStat`` does. The n rows of a step go in
  at once, by prefix sums (``rllib.accel.filters.push_rows``'s arithmetic). ``frozen(k)`` is member k's
  (mean, std) for a ``StoredPolicy``.
* ``RewardScaler``: ``tasks.mujoco.RewardScaled``, one per env: the reward divided by the running std of
  the discounted return (count starts at 1e-4, variance at 1), clipped to ±10; the return restarts at 0
  after an episode ends.

Both hold their state in float64 tensors with the member on the leading axis, so ``select`` (members
that go on) and ``reset_member`` (a new member in a slot) are indexing. PBT's exploit copies the filter
(``ObsFilter.copy_member``: it is part of what a checkpoint restores) but not the reward scaler, which
lives with the envs, as ``RewardScaled`` does.

Example::

    >>> import torch
    >>> f = ObsFilter(members=2, dim=3)
    >>> y = f(torch.tensor([[[1.0, 2, 3], [3, 2, 1]], [[0.0, 0, 0], [0, 0, 0]]], dtype=torch.float64))
    >>> y[0].tolist()        # env 0 is the first push (std 0: only the mean goes), env 1 the second
    [[0.0, 0.0, 0.0], [0.7071062922477722, 0.0, -0.7071062922477722]]
    >>> f.count.tolist()
    [2.0, 2.0]
"""
from __future__ import annotations

import torch

FILTER_EPSILON = 1e-6  # RLlib's SMALL_NUMBER
CLIP = 10.0


class ObsFilter:
    """One running mean/std of observations per member (``members`` × ``dim``), RLlib's ``MeanStdFilter``."""

    def __init__(self, members: int, dim: int, clip: float = CLIP):
        self.clip = clip
        self.count = torch.zeros(members, dtype=torch.float64)
        self.mean = torch.zeros(members, dim, dtype=torch.float64)
        self.ssd = torch.zeros(members, dim, dtype=torch.float64)  # Welford's S: Σ (x − mean)²

    @staticmethod
    def _std(ssd: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        var = torch.where(count > 1, ssd / (count - 1).clamp(min=1), torch.zeros_like(ssd))
        return var.float().sqrt().double()  # RunningStat.var is float32

    def __call__(self, x: torch.Tensor, update: bool = True) -> torch.Tensor:
        """Normalise ``x`` [K, n, dim] (raw, float64); with ``update``, push its rows first (row i sees the
        statistics after rows 0…i). Returns float32, as the module reads it."""
        if update:
            rows = x.shape[1]
            d = x - self.mean[:, None]
            c, q = d.cumsum(1), (d * d).cumsum(1)
            count = self.count[:, None, None] + torch.arange(1, rows + 1, dtype=torch.float64)[None, :, None]
            means, ssd = self.mean[:, None] + c / count, self.ssd[:, None] + q - c * c / count
            self.mean, self.ssd, self.count = means[:, -1].clone(), ssd[:, -1].clone(), self.count + rows
        else:
            means, ssd, count = self.mean[:, None], self.ssd[:, None], self.count[:, None, None]
        y = (x - means) / (self._std(ssd, count) + FILTER_EPSILON)
        return y.clamp(-self.clip, self.clip).float()

    def member(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """Push and normalise member k's rows ``x`` [n, dim] alone (its first observations after a reset)."""
        one = ObsFilter(1, self.mean.shape[1], self.clip)
        one.count[0], one.mean[0], one.ssd[0] = self.count[k], self.mean[k], self.ssd[k]
        out = one(x[None])[0]
        self.count[k], self.mean[k], self.ssd[k] = one.count[0], one.mean[0], one.ssd[0]
        return out

    def frozen(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Member k's (mean, std) now: what its stored policy normalises with."""
        return self.mean[k].clone(), self._std(self.ssd[k], self.count[k])

    def select(self, keep: list[int]) -> None:
        self.count, self.mean, self.ssd = self.count[keep], self.mean[keep], self.ssd[keep]

    def reset_member(self, k: int) -> None:
        self.count[k], self.mean[k], self.ssd[k] = 0.0, 0.0, 0.0

    def grow(self) -> None:
        """One more member, with empty statistics."""
        self.count = torch.cat([self.count, torch.zeros(1, dtype=torch.float64)])
        self.mean, self.ssd = (torch.cat([t, torch.zeros_like(t[:1])]) for t in (self.mean, self.ssd))

    def copy_member(self, src: int, dst: int) -> None:
        for t in (self.count, self.mean, self.ssd):
            t[dst] = t[src]


class RewardScaler:
    """One running variance of the discounted return per env (``members`` × ``envs``), ``RewardScaled``'s."""

    def __init__(self, gammas: list[float], envs: int, clip: float = CLIP):
        members = len(gammas)
        self.gamma, self.clip = torch.tensor([float(g) for g in gammas], dtype=torch.float64), clip  # γ as Python has it
        self.ret = torch.zeros(members, envs, dtype=torch.float64)
        self.mean = torch.zeros(members, envs, dtype=torch.float64)
        self.var = torch.ones(members, envs, dtype=torch.float64)
        self.count = torch.full((members, envs), 1e-4, dtype=torch.float64)

    def __call__(self, reward: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """The scaled rewards of one step (``reward``, ``done``: [K, n]); the returns of ended episodes restart."""
        self.ret = self.ret * self.gamma[:, None] + reward
        delta, total = self.ret - self.mean, self.count + 1
        self.mean = self.mean + delta / total
        self.var = (self.var * self.count + delta**2 * self.count / total) / total
        self.count = total
        scaled = (reward / torch.sqrt(self.var + 1e-8)).clamp(-self.clip, self.clip)
        self.ret = torch.where(done, torch.zeros_like(self.ret), self.ret)
        return scaled

    def select(self, keep: list[int]) -> None:
        for name in ("gamma", "ret", "mean", "var", "count"):
            setattr(self, name, getattr(self, name)[keep])

    def reset_member(self, k: int) -> None:
        self.ret[k], self.mean[k], self.var[k], self.count[k] = 0.0, 0.0, 1.0, 1e-4

    def grow(self) -> None:
        """One more member's envs, as new (the recipe's γ of member 0)."""
        for name in ("gamma", "ret", "mean", "var", "count"):
            t = getattr(self, name)
            setattr(self, name, torch.cat([t, t[:1].clone()]))
        self.reset_member(len(self.gamma) - 1)
