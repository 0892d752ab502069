"""The search protocol's rules, each pinned (issue 23 §6): which stored best row a winner replaces, how
trials rank into candidates, and which fields ``pgu export`` writes. Each test fails if its rule is
mutated (the closing note of issue 23 lists the mutations run)."""
import pytest
import yaml

from pgu_rllib.service.phases import top_candidates
from pgu_rllib.service.search import replaces_best


@pytest.mark.parametrize("stored,new,replaced", [
    (None, 0.5, True),                                           # nothing stored: the winner is stored
    ({"search_name": "old", "selection_mean": 0.7}, 0.8, True),  # higher selection mean: replaces
    ({"search_name": "old", "selection_mean": 0.7}, 0.7, True),  # equal: replaces (the newer search)
    ({"search_name": "old", "selection_mean": 0.7}, 0.6, False),  # lower: the stored row stays
    ({"search_name": "this", "selection_mean": 0.9}, 0.1, True),  # the search's own row (a resume): replaced
])
def test_a_winner_replaces_the_best_row_by_selection_mean(stored, new, replaced):
    assert replaces_best(stored, "this", new) is replaced


def _trial(i, score, steps, status="complete", **params):
    return {"tune_trial_id": f"t{i}", "score": score, "env_steps": steps, "status": status,
            "params": {"seed": i, "form": "V", "lr": 0.1 * (i + 1), **params}}


def test_full_budget_trials_rank_before_stopped_ones_whatever_their_scores():
    trials = [_trial(0, 0.9, 300, "stopped_early"), _trial(1, 0.5, 1000), _trial(2, 0.7, 1000),
              _trial(3, 0.95, 500, "stopped_early"), _trial(4, None, 1000), _trial(5, 2.0, 1000, "error")]
    ranked = top_candidates(trials, top_k=4, budget=1000)
    assert [c["tune_trial_id"] for c in ranked] == ["t2", "t1", "t3", "t0"]  # full budget by score, then stopped
    assert all("seed" not in c["params"] for c in ranked)


def test_candidates_are_distinct_configurations():
    trials = [_trial(0, 0.9, 1000, lr=0.5), _trial(1, 0.8, 1000, lr=0.5), _trial(2, 0.7, 1000)]
    ranked = top_candidates(trials, top_k=3, budget=1000)
    assert [c["tune_trial_id"] for c in ranked] == ["t0", "t2"]  # t1 is t0's configuration on another seed


def test_export_writes_every_field_a_reader_needs(tmp_path):
    from pgu_rllib.service.readers import export
    from pgu_rllib.service.registry import Registry

    url = f"sqlite:///{tmp_path}/r.db"
    Registry(url).connect().put_best(
        task="bandit", space="paper", search_name="s", preset="ppo", params={"form": "V"}, config={"form": "V"},
        tuning_score=0.7, selection_mean=0.71, selection_scores=[0.71], selection_seeds=[1_000_000], test_mean=0.72,
        test_std=0.01, test_median=0.72, test_iqm=0.72, test_ci95=[0.71, 0.73], test_scores=[0.71, 0.73],
        test_seeds=[2_000_000, 2_000_001], protocol={"budget_env_steps": 768}, versions={"ray": "2.60.0"},
        git_commit="abc")
    entry = yaml.safe_load(export("bandit", registry=url))["bandit"]["paper"]
    assert list(entry) == ["preset", "overrides", "config", "test", "selection", "tuning_score", "protocol", "search",
                           "versions", "git_commit", "updated_at"]
    assert list(entry["test"]) == ["mean", "std", "median", "iqm", "ci95", "scores", "seeds"]
    assert list(entry["selection"]) == ["mean", "scores", "seeds"]
    assert entry["test"]["scores"] == [0.71, 0.73] and entry["selection"]["seeds"] == [1_000_000]
