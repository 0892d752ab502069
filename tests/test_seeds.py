"""The seed plan (spec §7): for every pair of --seed values and every set, no seed is shared."""
import pytest
from hypothesis import given, strategies as st

from pgu_rllib.core.errors import InvalidArgument
from pgu_rllib.service.seeds import PER_SET, SEED_MAX, SeedPlan


def _all(plan: SeedPlan) -> dict[str, set[int]]:
    return {"tuning": set(plan.tuning(PER_SET)), "selection": set(plan.selection(PER_SET)), "test": set(plan.test(PER_SET))}


def test_the_three_sets_of_every_seed_are_disjoint_from_every_set_of_every_other_seed():
    seen: dict[int, tuple] = {}
    for s in range(SEED_MAX + 1):  # 1000 searches x 3 sets x 1000 seeds, each seed owned once
        for name, seeds in _all(SeedPlan(s)).items():
            for seed in seeds:
                assert seed not in seen, (seed, (s, name), seen[seed])
                seen[seed] = (s, name)
    assert len(seen) == (SEED_MAX + 1) * 3 * PER_SET


@given(st.integers(0, SEED_MAX), st.integers(0, SEED_MAX))
def test_two_searches_share_no_seed(a, b):
    if a != b:
        assert not set().union(*_all(SeedPlan(a)).values()) & set().union(*_all(SeedPlan(b)).values())


@pytest.mark.parametrize("bad", [-1, SEED_MAX + 1, 10**6, 2.0, True, "3"])
def test_a_seed_outside_the_bands_is_refused(bad):
    with pytest.raises(InvalidArgument, match=r"seed=.* is not allowed; allowed: an integer in \[0, 999\]"):
        SeedPlan(bad)


def test_a_set_larger_than_its_block_is_refused():
    with pytest.raises(InvalidArgument):
        SeedPlan(0).tuning(PER_SET + 1)
    assert SeedPlan(0).tuning(1, start=PER_SET - 1) == [PER_SET - 1]
