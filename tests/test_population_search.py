"""``pgu search --population K`` (issue 26): runs train as members of population hosts on a real local Ray, and
the registry and the Optuna study hold what a search without ``--population`` holds: one trial row and one
Optuna trial per configuration, the selection and test rows, the best row, and stored policies that a plain
evaluation reproduces."""
import json
import subprocess
import sys

import optuna
import pytest

from pgu_rllib.core.errors import InvalidArgument
from pgu_rllib.core.policy import StoredPolicy, evaluate_policy
from pgu_rllib.service.registry import Registry
from pgu_rllib.service.search import search

SPACE = """\
description: per-member keys only, so that every trial can share a population
base_preset: ppo
params:
  scale:
    choice: [ppo_clip, dpo, mla]
    when:
      mla: {alpha_o: {uniform: [0.0, 2.0]}, alpha_r: {uniform: [0.0, 2.0]}}
  lr: {loguniform: [3.0e-4, 3.0e-3]}
  entropy_coeff: {loguniform: [1.0e-6, 1.0e-2]}
"""


def test_a_population_search_fills_the_registry_and_the_study_as_a_plain_search_does(tmp_path):
    space = tmp_path / "members.yaml"
    space.write_text(SPACE)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    cmd = [sys.executable, "-m", "pgu_rllib.cli", "search", "--task", "cartpole", "--space", str(space),
           "--trials", "2", "--env-steps", "2048", "--population", "2", "--max-concurrent", "2", "--top-k", "1",
           "--selection-seeds", "1", "--test-seeds", "2", "--registry", url, "--storage-path", str(tmp_path / "tune"),
           "--name", "pop", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "in populations of up to 2" in out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["status"] == "complete"

    reg = Registry(url)
    row = reg.get_search("pop")
    assert row.settings["population"] == 2
    trials = reg.trials(row.id)
    assert len(trials) == 2 and all(t["score"] is not None for t in trials)
    study = optuna.load_study(study_name="pop", storage=url)  # as a plain search tells it: full budget
    states = optuna.trial.TrialState  # COMPLETE with its score, stopped by ASHA PRUNED
    done = [t for t in study.trials if t.state == states.COMPLETE]
    assert sorted(t.value for t in done) == pytest.approx(sorted(t["score"] for t in trials if t["status"] == "complete"))
    assert (len(study.trials) - len(done) == sum(t.state == states.PRUNED for t in study.trials)
            == sum(t["status"] == "stopped_early" for t in trials))
    assert {t.params["scale"] for t in study.trials} <= {"ppo_clip", "dpo", "mla"}

    # members really trained together: some tuning iterations were a population of 2 (a member runs alone
    # while its partner's trial is not started yet, or after it stopped)
    sizes = [json.loads(line)["pgu"]["population_size"] for result in (tmp_path / "tune").glob("pop/*/result.json")
             for line in result.read_text().splitlines()]
    assert len(sizes) >= 2 * 3 and set(sizes) <= {1, 2} and 2 in sizes, sizes

    assert len(reg.evaluations(row.id, "selection")) == 1
    test = reg.evaluations(row.id, "test")
    assert len(test) == 2 and reg.best("cartpole", space.stem)["search_name"] == "pop"
    for e in test:  # the stored policy, evaluated by a plain loop, gives the registry's score
        policy = StoredPolicy.load(e["policy_path"])
        assert policy.meta["population"] is True and policy.meta["seed"] == e["seed"]
        assert evaluate_policy(policy, episodes=10).mean == pytest.approx(e["score"], abs=1e-6)


@pytest.mark.parametrize("kwargs, names", [
    (dict(task="cartpole", space="full"), "step='natural' cannot run in a population"),
    (dict(task="bandit", space="paper"), "env=<class"),
    (dict(task="cartpole", space="ppo_knobs", seeds_per_trial=2), "seeds_per_trial=2 is not allowed"),
    (dict(task="cartpole", space="ppo_knobs", objective="eval"), "objective='eval' is not allowed"),
])
def test_what_a_population_cannot_run_is_refused_in_one_line(tmp_path, kwargs, names):
    with pytest.raises(InvalidArgument) as err:
        search(population=2, dry_run=True, registry=f"sqlite:///{tmp_path / 'r.db'}",
               storage_path=str(tmp_path / "tune"), **kwargs)
    message = str(err.value)
    assert names in message and "\n" not in message, message
    assert not (tmp_path / "tune").exists()



def test_pgu_evaluate_trains_its_test_runs_as_one_population(tmp_path):
    """``pgu evaluate --population K``: the test runs of one configuration are one structure, so they train
    together; each is still its own row, and its stored policy gives its score in a plain loop."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    cmd = [sys.executable, "-m", "pgu_rllib.cli", "evaluate", "--task", "cartpole", "--preset", "dpo",
           "--env-steps", "1024", "--test-seeds", "2", "--population", "2", "--registry", url,
           "--storage-path", str(tmp_path / "tune"), "--name", "evpop", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 at a time in populations of up to 2" in out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    reg = Registry(url)
    row = reg.get_search("evpop")
    assert row.settings["population"] == 2 and row.status.value == "complete"
    sizes = {json.loads(line)["population_size"] for result in (tmp_path / "tune").glob("evpop*/*/result.json")
             for line in result.read_text().splitlines()}
    assert sizes == {2}, sizes  # both runs start together and run the same budget: always a population of 2
    test = reg.evaluations(row.id, "test")
    assert sorted(e["seed"] for e in test) == sorted(summary["test_seeds"]) == [2_000_000, 2_000_001]
    for e in test:
        policy = StoredPolicy.load(e["policy_path"])
        assert policy.meta["population"] is True
        assert evaluate_policy(policy, episodes=10).mean == pytest.approx(e["score"], abs=1e-6)


def test_pgu_evaluate_refuses_a_population_its_task_cannot_run(tmp_path):
    from pgu_rllib.service.search import evaluate

    with pytest.raises(InvalidArgument) as err:
        evaluate("bandit", "ppo", population=2, registry=f"sqlite:///{tmp_path / 'r.db'}",
                 storage_path=str(tmp_path / "tune"))
    assert "population=2" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "tune").exists()
