"""The space check is exact (issue 24 §6): every combination of the coupled keys, both ends of their ranges,
every free knob alone; no sample cap, and a space too large to check is refused, not sampled."""
import itertools

import pytest

from pgu_rllib.service.spaces import MAX_POINTS, SearchSpace


def space(params: dict) -> SearchSpace:
    return SearchSpace(name="t", source="", params=params)


def test_every_combination_is_a_point_beyond_the_old_cap_of_20000():
    params = {"num_epochs": {"choice": list(range(1, 11))}, "cg_iters": {"choice": list(range(1, 11))},
              "line_search_steps": {"choice": list(range(1, 11))},
              "num_envs_per_env_runner": {"choice": list(range(1, 11))}, "form": {"choice": ["Q", "V", "P"]}}
    points = list(space(params).points())
    assert len(points) == 10 ** 4 * 3 > 20_000
    assert points[-1] == {"num_epochs": 10, "cg_iters": 10, "line_search_steps": 10, "num_envs_per_env_runner": 10,
                          "form": "P"}  # a point the old 20,000 cap never reached
    assert {tuple(p.values()) for p in points} == set(itertools.product(*[v["choice"] for v in params.values()]))


def test_coupled_ranges_take_both_ends_together_and_free_knobs_each_alone():
    params = {"minibatch_size": {"int": [32, 256]}, "train_batch_size_per_learner": {"int": [128, 512]},
              "lr": {"loguniform": [1e-4, 1e-2]}, "lambda": {"uniform": [0.9, 1.0]}}
    points = list(space(params).points())
    pairs = {(p["minibatch_size"], p["train_batch_size_per_learner"]) for p in points}
    assert pairs == {(32, 128), (32, 512), (256, 128), (256, 512)}  # 256 > 128 is among them
    assert sum(p["lr"] == 1e-2 for p in points) == 1 and sum(p["lambda"] == 1.0 for p in points) == 1


def test_a_space_too_large_to_check_is_refused():
    params = {k: {"choice": list(range(1, 41))} for k in ("num_epochs", "cg_iters", "line_search_steps")}
    assert 40 ** 3 > MAX_POINTS
    with pytest.raises(ValueError, match=r"64,000 combinations of its coupled keys to check; allowed: at most 50,000"):
        next(space(params).points())


def test_the_check_finds_a_bad_combination_in_the_last_point(tmp_path):
    params = {"num_epochs": {"choice": [1, 2]}, "form": {"choice": ["V", "P"]}}
    with pytest.raises(ValueError, match=r"the point \{'num_epochs': 1, 'form': 'P'\} is refused: form='P'"):
        space(params).check("cartpole")
