"""Tasks from anywhere (issue 25 §1): any registered gymnasium env as ``gym:<id>`` with ``--env-kwargs``,
and a third-party package's task through the ``pgu_rllib.tasks`` entry-point group, both run by real
searches whose trials are Ray workers; the task's name and env id land in the registry."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from pgu_rllib.service.registry import Registry
from pgu_rllib.tasks import get_task

SMALL = ["--trials", "1", "--top-k", "1", "--selection-seeds", "1", "--test-seeds", "1", "--space", "ppo_knobs"]


def pgu(*args, cwd, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "pgu_rllib.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_gym_tasks_take_their_action_space_and_env_kwargs():
    assert get_task("gym:Acrobot-v1").eval_env_kwargs == {}
    assert get_task("gym:Pendulum-v1", {"g": 3.0}).eval_env_kwargs == {"g": 3.0}
    with pytest.raises(ValueError, match="unknown gymnasium env id 'Nope-v9'"):
        get_task("gym:Nope-v9")
    with pytest.raises(ValueError, match="env_kwargs are for gym:<env id> tasks"):
        get_task("cartpole", {"x": 1})


@pytest.mark.slow
def test_a_search_on_a_gym_env_with_kwargs(tmp_path):
    out = pgu("search", "--task", "gym:Pendulum-v1", "--env-kwargs", '{"g": 9.81}', "--env-steps", "2048", *SMALL,
              "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    reg = Registry(f"sqlite:///{tmp_path}/pgu_results/registry.db")
    search = reg.get_search("gym-Pendulum-v1-ppo_knobs-s0")
    assert search.task == "gym:Pendulum-v1" and search.settings["env_id"] == "Pendulum-v1"
    assert search.settings["env_kwargs"] == {"g": 9.81}
    test = reg.evaluations(search.id, "test")
    assert len(test) == 1 and -2000 < test[0]["score"] < 0  # Pendulum's returns are negative


PLUGIN = '''
from pgu_rllib.tasks.catalog import Task, _classic_recipe


def demo():
    """CartPole under another name, from a package pgu-rllib knows nothing about."""
    return Task("demo-cartpole", "CartPole-v1", "64-64 tanh", 50_000, eval_episodes=10, floor=0.0,
                recipe=_classic_recipe)
'''


@pytest.mark.slow
def test_a_plugin_task_runs_on_ray_workers(tmp_path):
    site = tmp_path / "site"
    (site / "pgu_demo_plugin").mkdir(parents=True)
    (site / "pgu_demo_plugin" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "pgu_demo_plugin-0.1.dist-info"  # what `pip install` of the package would leave
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pgu-demo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[pgu_rllib.tasks]\ndemo = pgu_demo_plugin:demo\n")
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    listed = pgu("tasks", cwd=tmp_path, env=env)
    assert "demo-cartpole" in listed.stdout
    out = pgu("search", "--task", "demo-cartpole", "--env-steps", "1024", *SMALL, "--json", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.splitlines()[-1])
    assert summary["task"] == "demo-cartpole" and summary["best"]["test_scores"][0] > 0
    reg = Registry(f"sqlite:///{tmp_path}/pgu_results/registry.db")
    assert reg.get_search("demo-cartpole-ppo_knobs-s0").settings["env_id"] == "CartPole-v1"
