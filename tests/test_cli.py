"""The ``pgu`` command as a user runs it (subprocesses, real local Ray)."""
import json
import subprocess
import sys

import pytest

from pgu_rllib.core.presets import PRESETS


def pgu(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "pgu_rllib.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_presets_lists_every_preset_one_line_each():
    out = pgu("presets")
    assert out.returncode == 0
    lines = out.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(PRESETS)


@pytest.mark.slow
def test_train_json_summary_is_the_last_stdout_line():
    out = pgu("train", "--task", "cartpole", "--preset", "reinforce_baseline", "--env-steps", "2048",
              "--seed", "3", "--set", "lr=1e-3", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("task", "preset", "config", "env_steps", "episode_return_mean", "env_steps_per_s", "wall_s"):
        assert key in summary
    assert summary["task"] == "cartpole" and summary["preset"] == "reinforce_baseline"
    assert summary["config"]["lr"] == 1e-3 and summary["config"]["num_epochs"] == 1
    assert summary["env_steps"] >= 2048
    assert summary["episode_return_mean"] > 0  # CartPole pays ≥ 8 per episode
    assert 0 < summary["env_steps_per_s"] and summary["startup_s"] < summary["wall_s"]
    assert "[pgu train] iter" in out.stderr  # a progress line per iteration
    learner = summary["learner"]  # the last update's PGU metrics
    assert {"delta_o_abs_max", "delta_o_mean", "abs_f_mean", "f_zero_frac", "learning_rate"} <= set(learner)
    assert learner["delta_o_abs_max"] == 0.0 and learner["abs_f_mean"] > 0  # one step per batch: Δ_O ≡ 0


@pytest.mark.parametrize("args,needle", [
    (["train", "--task", "pong"], "unknown task 'pong'; known: "),
    (["train", "--task", "cartpole", "--preset", "sgd"], "unknown preset 'sgd'; known: ppo, "),
    (["train", "--task", "cartpole", "--set", "scale=huber"], "scale='huber' is not allowed; allowed: sq, "),
    (["train", "--task", "cartpole", "--set", "scale=mla"], "scale 'mla' needs parameter(s) alpha_o, alpha_r"),
    (["train", "--task", "cartpole", "--set", "tau=0"], "tau=0 is out of range"),
    (["train", "--task", "cartpole", "--set", "colour=red"], "unknown config key(s) colour"),
    (["train", "--task", "cartpole", "--set", "novalue"], "--set 'novalue' is not key=value"),
    (["train", "--task", "cartpole", "--env-steps", "0"], "argument --env-steps: '0' must be > 0"),
    (["train", "--task", "cartpole", "--set", "form=P"], "form='P' with delta_r='advantage' is not PGPB"),
    (["train", "--task", "cartpole", "--set", "gamma=1.5"], "gamma=1.5 is not allowed; allowed: a number in (0, 1]"),
    (["train", "--task", "cartpole", "--set", "lr=-1"], "lr=-1 is not allowed"),
    (["train", "--task", "cartpole", "--set", "lr=nan"], "lr=nan is not allowed"),
])
def test_bad_input_is_one_line_and_exit_2(cli, args, needle):
    out = cli(*args)
    assert out.returncode == 2
    err_lines = [line for line in out.stderr.splitlines() if line.startswith("pgu") or "error" in line]
    assert needle in out.stderr, out.stderr
    assert len([line for line in err_lines if "error:" in line]) == 1
    assert out.stdout == ""
