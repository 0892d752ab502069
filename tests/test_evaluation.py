"""The one evaluator (issue 21): deterministic, seeded per episode, normalisation frozen, exactly N
complete episodes whatever the number of envs, raw returns, training state untouched; and a plain
gymnasium loop written here, given only the stored policy file, reproduces the service's score."""
import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from pgu_rllib.core.policy import EVAL_SEED_BASE, StoredPolicy, evaluate_policy

SEED_LENGTH_ID = "pgu-test/SeedLength-v0"


class SeedLength(gym.Env):
    """An episode of 1000 steps from an even seed, 150 from an odd one; reward 1 per step. Over the env
    seeds 10000…10009 the true mean return is (5·1000 + 5·150)/10 = 575, whatever the policy."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.length = 1000 if seed is None or seed % 2 == 0 else 150
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(2, np.float32), 1.0, self.t >= self.length, False, {}


if SEED_LENGTH_ID not in gym.registry:
    gym.register(SEED_LENGTH_ID, entry_point=SeedLength)


def _constant_policy() -> StoredPolicy:
    return StoredPolicy(env_id=SEED_LENGTH_ID, layers=[("linear", np.zeros((2, 2)), np.zeros(2))], action="argmax")


@pytest.mark.parametrize("num_envs", [1, 5, 16])
def test_exactly_n_complete_episodes_whatever_the_number_of_envs(num_envs):
    ev = evaluate_policy(_constant_policy(), episodes=10, num_envs=num_envs)
    assert ev.returns == [1000.0, 150.0] * 5  # episode i from env seed 10000 + i, in episode order
    assert ev.mean == 575.0 and ev.env_steps == 5750


def plain_loop(path, episodes=10, seed_base=EVAL_SEED_BASE) -> list[float]:
    """What a user writes with numpy, torch and gymnasium alone, from the file's documented layout."""
    data = np.load(path, allow_pickle=False)
    spec = json.loads(str(data["spec"]))
    modules = []
    for i, kind in enumerate(spec["layers"]):
        if kind == "linear":
            w = torch.as_tensor(data[f"w{i}"], dtype=torch.float32)
            layer = torch.nn.Linear(w.shape[1], w.shape[0])
            layer.weight.data, layer.bias.data = w, torch.as_tensor(data[f"b{i}"], dtype=torch.float32)
            modules.append(layer)
        else:
            modules.append({"tanh": torch.nn.Tanh(), "relu": torch.nn.ReLU()}[kind])
    net = torch.nn.Sequential(*modules)
    env = gym.make(spec["env_id"], **spec["env_kwargs"])
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed_base + i)
        done, total = False, 0.0
        while not done:
            x = np.asarray(obs, dtype=np.float64)
            if "obs_mean" in data:
                x = np.clip((x - data["obs_mean"]) / (data["obs_std"] + 1e-6), -spec["obs_clip"], spec["obs_clip"])
            with torch.no_grad():
                out = net(torch.as_tensor(x, dtype=torch.float32)[None])[0].numpy()
            if spec["action"] == "argmax":
                action = int(out.argmax())
            else:
                low, high = data["action_low"], data["action_high"]
                action = np.clip(low + (out.astype(np.float64) + 1.0) * (high - low) / 2.0, low, high).astype(np.float32)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return returns


@pytest.fixture(scope="module")
def hopper(ray_local):
    """A Hopper run of two iterations (16 envs, MeanStdFilter, reward scaling) and its task."""
    from pgu_rllib.tasks import get_task
    from pgu_rllib.tasks.training import build_config

    algo = build_config("hopper", "ppo", {}, seed=3, budget=4096).build_algo()
    algo.train()
    result = algo.train()
    yield get_task("hopper"), algo, result
    algo.stop()


def test_hopper_actions_are_the_modules_deterministic_output_after_the_frozen_filter(hopper):
    from ray.rllib.core.columns import Columns
    from ray.rllib.utils.filter import MeanStdFilter, RunningStat
    from ray.rllib.utils.spaces.space_utils import unsquash_action

    task, algo, _ = hopper
    policy = task.stored_policy(algo)
    module = algo.get_module()
    state = algo.env_runner.get_state(components="env_to_module_connector")["env_to_module_connector"]
    saved = next(s for s in state.values() if isinstance(s, dict) and None in s and "running_stats" in s[None])[None]
    filt = MeanStdFilter(saved["shape"], clip=saved["clip_by_value"])  # RLlib's filter, from the runner's state
    filt.running_stats = RunningStat.from_state(saved["running_stats"][0])
    env = gym.make("Hopper-v5")
    obs, _ = env.reset(seed=7)
    for _ in range(20):
        normalised = filt(obs, update=False)  # RLlib's own filter arithmetic, frozen
        assert np.allclose(policy.normalise(obs), normalised, atol=1e-6)
        with torch.no_grad():
            inputs = module.forward_inference({Columns.OBS: torch.as_tensor(normalised, dtype=torch.float32)[None]})
            dist = module.get_inference_action_dist_cls().from_logits(inputs[Columns.ACTION_DIST_INPUTS])
            mode = dist.to_deterministic().sample()[0].numpy()
        expected = unsquash_action(mode, module.action_space)
        action = policy.act(obs)
        assert np.allclose(action, expected, atol=1e-6)
        obs, *_ = env.step(action)


def test_an_evaluation_freezes_the_filter_and_leaves_training_untouched(hopper):
    task, algo, _ = hopper
    before = algo.env_runner.get_state()
    weights = {k: v.clone() for k, v in algo.get_module().state_dict().items()}
    first, second = task.evaluate(algo), task.evaluate(algo)
    after = algo.env_runner.get_state()
    assert json.dumps(before, default=repr, sort_keys=True) == json.dumps(after, default=repr, sort_keys=True)
    assert all(torch.equal(weights[k], v) for k, v in algo.get_module().state_dict().items())
    assert first.returns == second.returns and len(first.returns) == 10  # deterministic: the same 10 episodes


def test_an_evaluation_between_iterations_changes_nothing_of_the_training(ray_local):
    from pgu_rllib.tasks import get_task
    from pgu_rllib.tasks.training import build_config

    def run(evaluate: bool):
        algo = build_config("cartpole", "ppo", {"train_batch_size_per_learner": 256, "num_epochs": 2}, seed=5,
                            budget=1024).build_algo()
        algo.train()
        if evaluate:
            get_task("cartpole").evaluate(algo)
        result = algo.train()
        out = ({k: v.clone() for k, v in algo.get_module().state_dict().items()}, result["pgu"]["episodes_total"],
               result["num_env_steps_sampled_lifetime"])
        algo.stop()
        return out

    (w1, episodes1, steps1), (w2, episodes2, steps2) = run(True), run(False)
    assert episodes1 == episodes2 and steps1 == steps2
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_the_service_scores_n_complete_episodes_with_16_training_envs(ray_local):
    from pgu_rllib.tasks.catalog import Task, _mlp
    from pgu_rllib.rllib.algorithm import PGUConfig

    def recipe(config, budget):
        return _mlp(config.environment(SEED_LENGTH_ID).env_runners(num_envs_per_env_runner=16)
                    .training(train_batch_size_per_learner=512, minibatch_size=128, num_epochs=1))

    task = Task("seed-length", SEED_LENGTH_ID, "mlp", 512, eval_episodes=10, floor=0.0, recipe=recipe)
    algo = task.configure(PGUConfig(), 512).build_algo()
    result = algo.train()
    score, policy, eval_steps = task.score(algo, result)
    algo.stop()
    assert score == 575.0 and eval_steps == 5750  # RLlib's evaluate() kept the first 10 to finish: 320
    assert policy.meta["eval_returns"] == [1000.0, 150.0] * 5


def test_a_plain_loop_reproduces_the_hopper_score_from_the_policy_file(hopper, tmp_path):
    task, algo, result = hopper
    score, policy, _ = task.score(algo, result)
    path = policy.save(tmp_path / "hopper.npz")
    returns = plain_loop(path)
    assert abs(np.mean(returns) - score) <= 1e-6
    assert returns == pytest.approx(policy.meta["eval_returns"], abs=1e-9)


@pytest.mark.slow
def test_pgu_evaluate_stores_policies_that_a_plain_loop_and_pgu_rollout_replay(tmp_path):
    from pgu_rllib.service.registry import Registry

    out = subprocess.run([sys.executable, "-m", "pgu_rllib.cli", "evaluate", "--task", "cartpole", "--env-steps", "1024",
                          "--test-seeds", "2", "--max-concurrent", "1", "--json"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    reg = Registry(f"sqlite:///{tmp_path}/pgu_results/registry.db")
    rows = reg.evaluations(reg.get_search("cartpole-ppo-s0").id, "test")
    assert len(rows) == 2 and all(r["eval_env_steps"] > 0 and r["config_hash"] for r in rows)
    for row in rows:
        assert abs(np.mean(plain_loop(row["policy_path"])) - row["score"]) <= 1e-6
    rollout = subprocess.run([sys.executable, "-m", "pgu_rllib.cli", "rollout", "--policy", rows[0]["policy_path"],
                              "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert rollout.returncode == 0, rollout.stderr[-2000:]
    assert json.loads(rollout.stdout)["mean"] == pytest.approx(rows[0]["score"], abs=1e-9)
    assert "ray" not in rollout.stderr.lower()  # the replay starts no Ray
    video = subprocess.run([sys.executable, "-m", "pgu_rllib.cli", "rollout", "--policy", rows[0]["policy_path"],
                            "--episodes", "2", "--video", str(tmp_path / "video")], cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
    assert video.returncode == 0, video.stderr[-2000:]
    assert len(list((tmp_path / "video").glob("*.mp4"))) == 2  # one recording per episode


def test_pgu_rollout_imports_no_ray():
    code = ("import sys; from pgu_rllib.cli import main; "
            "sys.argv=['pgu']; import pgu_rllib.core.policy; print(any(m == 'ray' or m.startswith('ray.') "
            "for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
