"""Round-trip configs (issue 25 §6): ``pgu export`` → ``pgu train/evaluate --config``, and
``pgu export --format rlzoo`` → ``experiments/rlzoo.py``'s ``translate`` → the same pgu configuration;
a rule outside PPO is refused with one line."""
import pathlib
import sys

import pytest
import yaml

from pgu_rllib.service.registry import Registry

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "experiments"))
KNOBS = {"lr": 8.6e-4, "lambda": 0.9, "num_epochs": 20, "grad_clip": 0.63, "entropy_coeff": 6.4e-8, "epsilon": 0.1}


def _registry(tmp_path, params, space="ppo_knobs", budget=300_000):
    url = f"sqlite:///{tmp_path}/registry.db"
    reg = Registry(url).connect()
    reg.put_best(task="hopper", space=space, search_name=f"s-{space}", preset="ppo", params=params, config={},
                 tuning_score=1.0, selection_mean=1.0, selection_scores=[1.0], selection_seeds=[1_000_000],
                 test_mean=2.0, test_std=None, test_median=2.0, test_iqm=2.0, test_ci95=None, test_scores=[2.0],
                 test_seeds=[2_000_000], protocol={"budget_env_steps": budget, "evaluation": "x", "test_seeds": [1],
                                                   "selection_seeds": [1]}, versions={}, git_commit=None)
    return url


def test_rlzoo_export_translates_back_to_the_same_configuration(cli, tmp_path):
    from rlzoo import translate

    from pgu_rllib.tasks.training import build_config

    url = _registry(tmp_path, KNOBS)
    out = cli("export", "--task", "hopper", "--format", "rlzoo", "--registry", url)
    assert out.returncode == 0, out.stderr
    entry = yaml.safe_load(out.stdout)["Hopper-v5"]
    back = translate(entry, "Hopper-v5")
    ours = build_config("hopper", "ppo", KNOBS, budget=300_000)
    theirs = build_config("hopper", "ppo", back, budget=300_000)
    for key in ("lr", "lr_anneal", "gamma", "lambda_", "epsilon", "num_epochs", "minibatch_size",
                "train_batch_size_per_learner", "num_envs_per_env_runner", "entropy_coeff", "vf_loss_coeff",
                "grad_clip", "form", "scale", "delta_r", "step"):
        assert getattr(ours, key) == pytest.approx(getattr(theirs, key)), key
    assert entry["n_timesteps"] == 300_000 and entry["learning_rate"] == "lin_0.00086"


def test_a_rule_outside_ppo_is_refused_for_rlzoo(cli, tmp_path):
    url = _registry(tmp_path, {"form": "Q", "scale": "ml"}, space="full")
    out = cli("export", "--task", "hopper", "--format", "rlzoo", "--registry", url)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "a winner RL Zoo's PPO can express; the best row of space full has {'form': 'Q', 'scale': 'ml'}" in out.stderr


def test_export_then_config_picks_the_entry_and_its_budget(cli, tmp_path):
    from pgu_rllib.service.readers import chosen_entry

    url = _registry(tmp_path, KNOBS)
    _registry(tmp_path, {"form": "V", "scale": "mla", "alpha_o": 1.0, "alpha_r": 0.5}, space="full", budget=100_000)
    out = cli("export", "--task", "hopper", "--registry", url, "--out", str(tmp_path / "hopper.yml"))
    assert out.returncode == 0, out.stderr
    entry = chosen_entry("hopper", "full", config_file=str(tmp_path / "hopper.yml"))
    assert entry["params"]["scale"] == "mla" and entry["budget"] == 100_000 and entry["preset"] == "ppo"
    with pytest.raises(ValueError, match="one of the entries ppo_knobs, full|one of the entries full, ppo_knobs"):
        chosen_entry("hopper", config_file=str(tmp_path / "hopper.yml"))
    ambiguous = cli("train", "--task", "hopper", "--from-best", "--registry", url)  # refused before Ray starts
    assert ambiguous.returncode == 2 and "--space=None is not allowed; allowed: one of the entries" in ambiguous.stderr
