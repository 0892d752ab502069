"""Search methods that fit RL (issue 16), for real on the bandit and CartPole (Ray Tune, Optuna, SQLite):
several seeds per trial, the Wilcoxon pruner, Optuna's samplers, and population-based training
whose perturbations are in effect in the learner, whose schedules are stored, and replayed."""
import json
import pathlib
import subprocess
import sys
import types

import optuna
import pytest

from pgu_rllib.service._schedulers import WilcoxonScheduler, worse
from pgu_rllib.service.registry import Registry

PBT_SPACE = """base_preset: mla
params:
  delta_r: {fixed: q}
  form: {choice: [Q, V]}
mutable:
  alpha_r: [0.0, 2.0]
  lr: [0.002, 0.05]
"""


def pgu(*args, cwd, timeout=900):
    return subprocess.run([sys.executable, "-m", "pgu_rllib.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def test_wilcoxon_rule_stops_only_a_trial_worse_on_the_same_seeds():
    assert worse([1, 2, 3, 4, 5], [2, 3, 4, 5, 6], 0.1)  # worse on every one of 5 seeds: p = 1/32
    assert not worse([1, 2, 3, 4, 5], [1.1, 1.9, 3.2, 3.9, 5.1], 0.1)  # as good, up to noise
    assert not worse([1, 2, 3], [2, 3, 4], 0.1)  # 3 seeds can never reach p < 0.1 (2⁻³)
    sched = WilcoxonScheduler(grace_steps=100)
    best, weak, good = (types.SimpleNamespace(trial_id=i) for i in ("best", "weak", "good"))
    result = lambda steps, objs: {"num_env_steps_sampled_lifetime": steps,  # noqa: E731
                                  "pgu": {"objective": sum(objs) / len(objs), "seed_objectives": objs}}
    assert sched.on_trial_result(None, best, result(100, [5, 6, 7, 8, 9])) == "CONTINUE"
    sched.on_trial_complete(None, best, result(200, [6, 7, 8, 9, 10]))
    assert sched.on_trial_result(None, weak, result(50, [0, 0, 0, 0, 0])) == "CONTINUE"  # before the grace
    assert sched.on_trial_result(None, weak, result(150, [1, 2, 3, 4, 5])) == "STOP"  # paired with best @ 100
    assert sched.on_trial_result(None, good, result(150, [5.2, 5.9, 7.1, 8, 8.8])) == "CONTINUE"


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes", "gp"])
def test_every_sampler_walks_the_shipped_conditional_space(tmp_path, sampler):
    from pgu_rllib.service.methods import make_sampler
    from pgu_rllib.service.run import SearchRun
    from pgu_rllib.service.spaces import load_space
    from pgu_rllib.service._tune_hooks import TrialSpace

    registry = Registry(f"sqlite:///{tmp_path}/registry.db").connect()  # a fresh search: no trials yet
    run = SearchRun(name="x", task=None, budget=1, seed=3, max_concurrent=1, gpus_per_trial=0, registry=registry,
                    exp_dir=pathlib.Path("."), base_config={}, trials=12, sampler=sampler, search_id=None)
    space = TrialSpace(load_space("full"), 3000)
    study = optuna.create_study(sampler=make_sampler(run), direction="maximize")
    seen = set()
    for _ in range(12):
        trial = study.ask()
        constants = space(trial)  # suggests the parameters first
        point = {**trial.params, **constants}
        seen.add((point["form"], point["scale"]))
        study.tell(trial, -float(point["lr"]))
    assert type(study.sampler).__name__.lower().startswith({"tpe": "tpe", "random": "random", "cmaes": "cmaes",
                                                            "gp": "gp"}[sampler])
    assert len(seen) >= 3  # it explores the categorical axes too


@pytest.mark.slow
@pytest.mark.parametrize("task,sampler,steps", [("cartpole", "cmaes", 1024)])  # random: test_every_sampler_walks…
def test_a_trial_with_several_seeds_scores_their_mean(tmp_path, task, sampler, steps):
    out = pgu("search", "--task", task, "--space", "paper", "--trials", "2", "--env-steps", str(steps),
              "--seeds-per-trial", "4", "--pruner", "wilcoxon", "--sampler", sampler, "--top-k", "1", "--max-concurrent", "1",
              "--selection-seeds", "1", "--test-seeds", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    reg = Registry(f"sqlite:///{tmp_path}/pgu_results/registry.db")
    search = reg.get_search(f"{task}-paper-s0")
    trials = reg.trials(search.id)
    assert all(t["params"]["pgu_seeds"] == [0, 1, 2, 3] for t in trials)  # the same 4 tuning seeds
    for t in trials:
        rows = [json.loads(line) for line in
                next((tmp_path / "pgu_results" / "tune" / f"{task}-paper-s0").glob(f"*{t['tune_trial_id']}*/result.json"))
                .read_text().splitlines()]
        last = rows[-1]["pgu"]
        assert len(last["seed_objectives"]) == 4 and len(set(last["seed_objectives"])) > 1  # 4 different runs
        assert t["score"] == pytest.approx(sum(last["seed_objectives"]) / 4)
    assert search.settings["seeds_per_trial"] == 4 and search.timings["tuning"]["env_steps"] >= 2 * 4 * steps
    assert search.settings["sampler"] == sampler


@pytest.mark.slow
def test_pbt_perturbations_are_in_effect_and_the_winning_schedule_is_stored_and_replayed(tmp_path):
    (tmp_path / "pbt.yaml").write_text(PBT_SPACE)
    # 4 members (PBT's bottom quarter is one member), 2 at a time; the population is synchronous, so every
    # perturbation point (each 256-step iteration of 1024) exploits whatever the scheduling of the machine
    out = pgu("search", "--task", "bandit", "--space", "pbt.yaml", "--trials", "4", "--env-steps", "1024",
              "--scheduler", "pbt", "--top-k", "1", "--selection-seeds", "1", "--test-seeds", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    exp = tmp_path / "pgu_results" / "tune" / "bandit-pbt-s0"
    assert (exp / "pbt_global.txt").read_text().strip()  # the population did exploit and explore
    changed = restored = 0
    for result_file in exp.glob("PGU_*/result.json"):
        rows = [json.loads(line) for line in result_file.read_text().splitlines()]
        for prev, r in zip(rows, rows[1:]):  # without an exploit, the area goes on over all iterations,
            if r["config"] == prev["config"]:  # across the pauses and restores too
                t, pgu_r = r["training_iteration"], r["pgu"]
                assert pgu_r["objective"] * t == pytest.approx(
                    prev["pgu"]["objective"] * (t - 1) + pgu_r["greedy_expected_reward"], abs=1e-9)
                restored += r["iterations_since_restore"] == 1
        for r in rows:  # after every perturbation, the learner trains with the trial's new values
            learner = r["learners"]["default_policy"]
            assert learner["rule_alpha_r"] == pytest.approx(r["config"]["alpha_r"])
            assert learner["default_optimizer_learning_rate"] == pytest.approx(r["config"]["lr"])
        changed += len({round(r["learners"]["default_policy"]["rule_alpha_r"], 9) for r in rows}) > 1
    assert changed >= 1 and restored >= 1
    reg = Registry(f"sqlite:///{tmp_path}/pgu_results/registry.db")
    best = reg.best("bandit", "pbt")
    schedule = best["params"]["pgu_schedule"]
    assert schedule[0][0] == 0 and [s for s, _ in schedule] == sorted(s for s, _ in schedule)
    assert all(set(values) == {"alpha_r", "lr"} for _, values in schedule)
    exported = pgu("export", "--task", "bandit", cwd=tmp_path).stdout
    assert "pgu_schedule" in exported
    replay = pgu("train", "--task", "bandit", "--from-best", "--space", "pbt", "--env-steps", "1024", "--json",
                 cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr[-3000:]
    learner = json.loads(replay.stdout.splitlines()[-1])["learner"]
    due = [values for steps, values in schedule if steps <= 1024 - 256][-1]  # in effect in the last iteration
    assert learner["rule_alpha_r"] == pytest.approx(due["alpha_r"])  # the replay followed the schedule
    assert learner["learning_rate"] == pytest.approx(due["lr"])
    report = pgu("report", "--name", "bandit-pbt-s0", "--out", "report", cwd=tmp_path)
    assert report.returncode == 0 and (tmp_path / "report" / "schedules.png").stat().st_size > 10_000


def test_population_flags_are_checked_before_anything_is_written(cli, tmp_path):
    (tmp_path / "plain.yaml").write_text("params:\n  form: {choice: [V]}\n")
    (tmp_path / "choices.yaml").write_text("params:\n  form: {choice: [V]}\nmutable:\n  lr: {choice: [0.01, 0.02]}\n")
    for argv, needle in (
            (["--space", "plain.yaml", "--scheduler", "pbt"], "a space that has a 'mutable' section"),
            (["--space", "choices.yaml", "--scheduler", "pb2"], "pb2 needs ranges"),
            (["--space", "choices.yaml", "--scheduler", "pbt", "--seeds-per-trial", "2"], "one seed a trial"),
            (["--space", "paper", "--pruner", "wilcoxon", "--seeds-per-trial", "3"], "--seeds-per-trial=3")):
        out = cli("search", "--task", "bandit", "--trials", "2", *argv, cwd=tmp_path)
        assert out.returncode == 2 and needle in out.stderr, out.stderr
    assert not (tmp_path / "pgu_results").exists()


@pytest.mark.parametrize("stopped_state", ["PRUNED", "COMPLETE"])
def test_tpe_ranks_pruned_trials_below_finished_ones(stopped_state):
    """Why ASHA-stopped trials are PRUNED in the study (issue 25 §4): ten finished trials say small x is
    best; ten trials stopped early at x ≈ 1 carry a high *truncated* score. As PRUNED (what the service
    tells Optuna now), TPE keeps sampling near the finished optimum; as COMPLETE (what it told before), the
    truncated scores pull it to x ≈ 1."""
    import numpy as np

    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=0))
    dist = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    rng = np.random.default_rng(0)
    for x in rng.uniform(0.0, 1.0, 10):
        study.add_trial(optuna.trial.create_trial(params={"x": float(x)}, distributions=dist, value=-float(x)))
    for x in rng.uniform(0.9, 1.0, 10):
        if stopped_state == "PRUNED":
            trial = optuna.trial.create_trial(params={"x": float(x)}, distributions=dist, intermediate_values={3: 100.0},
                                              state=optuna.trial.TrialState.PRUNED)
        else:
            trial = optuna.trial.create_trial(params={"x": float(x)}, distributions=dist, value=100.0)
        study.add_trial(trial)
    xs = []
    for _ in range(20):
        trial = study.ask(dist)
        xs.append(trial.params["x"])
        study.tell(trial, -trial.params["x"])
    assert (np.mean(xs) < 0.5) == (stopped_state == "PRUNED"), np.mean(xs)
