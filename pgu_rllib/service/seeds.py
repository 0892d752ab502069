"""``SeedPlan``: the three disjoint seed sets of a search (spec §7), computed in one place.

A search with ``--seed S`` trains

* tuning trial ``i`` with seed ``1000·S + i``            (band [0, 1,000,000));
* selection run ``j`` with seed ``1,000,000 + 1000·S + j`` (band [1,000,000, 2,000,000));
* test run ``j`` with seed ``2,000,000 + 1000·S + j``      (band [2,000,000, 3,000,000)).

With ``S`` in [0, 999] and at most 1000 trials or seeds per set, every seed of every set of every
``S`` falls in its own band and its own block of 1000, so no two searches, and no two sets of one
search, ever share a seed: ``--seed 1000`` (which would tune on ``--seed 0``'s selection seeds) is
refused. ``tests/test_seeds.py`` checks it over the whole range.

Example::

    >>> plan = SeedPlan(2)
    >>> plan.tuning(3), plan.selection(2), plan.test(1)
    ([2000, 2001, 2002], [1002000, 1002001], [2002000])
"""
from __future__ import annotations

import dataclasses

from pgu_rllib.core.errors import InvalidArgument

SEED_MAX = 999  # S in [0, SEED_MAX]
PER_SET = 1000  # trials or seeds per set, at most
BAND = 1_000_000
BANDS = {"tuning": 0, "selection": BAND, "test": 2 * BAND}


def check_seed(seed) -> int:
    """``seed`` as an ``S`` whose seed sets are disjoint from every other ``S``'s, or ``InvalidArgument``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise InvalidArgument("seed", seed, f"an integer in [0, {SEED_MAX}] (larger seeds would reuse another "
                                            f"search's selection or test seeds)")
    return seed


def check_count(param: str, value) -> int:
    """A number of trials or seeds of one set: an integer in [1, 1000]."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= PER_SET:
        raise InvalidArgument(param, value, f"an integer in [1, {PER_SET}]")
    return value


@dataclasses.dataclass(frozen=True)
class SeedPlan:
    """The seeds of search ``S = seed``: ``tuning(n)``, ``selection(n)`` and ``test(n)`` list the first n."""

    seed: int

    def __post_init__(self):
        check_seed(self.seed)

    def _set(self, band: str, n: int, start: int = 0) -> list[int]:
        if start < 0 or start + n > PER_SET:
            raise InvalidArgument(f"{band} seeds", start + n, f"at most {PER_SET} per set")
        return [BANDS[band] + PER_SET * self.seed + j for j in range(start, start + n)]

    def tuning(self, n: int, start: int = 0) -> list[int]:
        return self._set("tuning", n, start)

    def selection(self, n: int) -> list[int]:
        return self._set("selection", n)

    def test(self, n: int) -> list[int]:
        return self._set("test", n)

    @property
    def tuning_base(self) -> int:
        """Trial ``i``'s seed is ``tuning_base + i``."""
        return PER_SET * self.seed
