"""The task registry and a short learning test on the bandit (real local Ray)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from pgu_rllib.tasks.bandit import eval_contexts, expected_rewards
from pgu_rllib.tasks import TASKS, get_task
from pgu_rllib.tasks.training import build_config

PAPER_TASKS = ["bandit", "four-rooms", "cartpole", "halfcheetah", "hopper", "walker2d", "ant", "swimmer", "humanoid"]


def test_registry_has_the_paper_tasks():
    assert list(TASKS) == PAPER_TASKS
    for task in TASKS.values():
        assert task.budget > 0 and task.eval_episodes >= 1 and task.describe()


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown task 'pong'; known: bandit, four-rooms, cartpole"):
        get_task("pong")


@pytest.mark.parametrize("name", PAPER_TASKS)
def test_every_task_builds_a_valid_config_for_every_preset_family(name):
    config = build_config(name, "ppo", seed=0)
    assert config.pgu_task is get_task(name) and config.pgu_budget == get_task(name).budget
    assert config.num_env_runners == 0
    if name in ("bandit", "four-rooms"):
        assert config.parameterisation == "logit"
    if name not in ("bandit", "four-rooms", "cartpole"):  # the MuJoCo recipe
        assert config.vf_clip_param == float("inf") and config.grad_clip == 0.5
        assert config.lambda_ == 0.95 and config.use_kl_loss is False
        model = config.model_config
        assert model["free_log_std"] is True and model["fcnet_hiddens"] == [64, 64]
        assert model["fcnet_kernel_initializer"] == "orthogonal_"
        assert config.lr == 3e-4 and config.lr_anneal is True  # annealed linearly to 0 at the budget


@pytest.mark.slow
def test_bandit_learning_beats_uniform_policy():
    """CI learning test: 8k env steps of the `ppo` preset lift the greedy policy's expected reward
    clearly above the uniform policy's (and close to the optimum)."""
    out = subprocess.run([sys.executable, "-m", "pgu_rllib.cli", "train", "--task", "bandit", "--preset", "ppo",
                          "--env-steps", "8000", "--seed", "0", "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    uniform = float(expected_rewards(eval_contexts(), 8).mean())
    assert summary["optimal_expected_reward"] == pytest.approx(0.7538, abs=1e-3)
    assert summary["greedy_expected_reward"] > uniform + 0.15, (summary["greedy_expected_reward"], uniform)
    assert summary["regret"] < 0.05
    assert np.isfinite(summary["episode_return_mean"])


@pytest.mark.parametrize("tau", [1.0, 0.25])
def test_logit_module_emits_q_over_tau(tau):
    """Spec §2 (logit reading): logits = q/τ, so the learner's q = τ·logits is the table itself."""
    import torch
    from ray.rllib.core.columns import Columns

    from pgu_rllib.tasks.four_rooms import FourRooms

    config = build_config("four-rooms", "ppo", {"tau": tau}, seed=0)
    module = config.get_rl_module_spec(env=FourRooms()).build()
    torch.manual_seed(0)
    torch.nn.init.normal_(module.table.weight)
    obs = torch.eye(104)[:5]
    q = module.q(obs)
    logits = module.forward_inference({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
    assert torch.allclose(logits * tau, q, atol=1e-6)
    values = module.compute_values({Columns.OBS: obs})
    assert torch.allclose(values, (torch.softmax(q / tau, -1) * q).sum(-1), atol=1e-6)
