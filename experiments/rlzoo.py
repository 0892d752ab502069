"""RL Zoo's tuned PPO settings, translated to PGU keys, and RL Zoo itself as the external anchor.

Needs the optional extra: ``pip install -e ".[baselines]"`` (stable-baselines3, rl-zoo3, rliable).

* ``zoo_entry("Hopper-v4")`` reads the entry from rl-zoo3's own ``hyperparams/ppo.yml``;
* ``translate(entry, env_id)`` returns the ``pgu evaluate`` overrides and the key mapping
  (``MAPPING`` says how each key maps and ``NOT_MATCHED`` what cannot be matched);
* ``python experiments/rlzoo.py --env Hopper-v5 --zoo-entry Hopper-v4 --seed S --env-steps B
  --out DIR`` trains RL Zoo (``python -m rl_zoo3.train``) with that entry on ``--env`` and scores
  the result with pgu's protocol: the deterministic policy, 10 episodes after training, env seeds
  10000+i, raw returns (the VecNormalize statistics frozen, rewards unnormalised). It writes
  ``DIR/rlzoo_<env>_seed<S>.json`` with the score, the learning curve (episode returns from
  RL Zoo's Monitor) and the wall time, and does nothing if that file exists.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

EVAL_EPISODES, EVAL_SEED_BASE = 10, 10_000  # pgu_rllib.tasks: the same evaluation protocol

# (RL Zoo key, PGU key, how)
MAPPING = [
    ("n_envs", "num_envs_per_env_runner", "same value (1)"),
    ("n_steps", "train_batch_size_per_learner", "n_steps × n_envs env steps per batch"),
    ("batch_size", "minibatch_size", "same value"),
    ("n_epochs", "num_epochs", "same value"),
    ("learning_rate", "lr, lr_anneal", "same value, constant (lr_anneal=false)"),
    ("gamma", "gamma; env_config.gamma", "same value, also the discount of the reward scaling"),
    ("gae_lambda", "lambda", "same value"),
    ("clip_range", "epsilon", "ppo_clip's ε (the PGU learner's clip)"),
    ("ent_coef", "entropy_coeff", "same value"),
    ("vf_coef", "vf_loss_coeff", "same value (both scale a mean squared error)"),
    ("max_grad_norm", "grad_clip", "same value, global norm"),
    ("normalize: true", "the task's recipe", "observations: running mean/std clipped at ±10 (MeanStdFilter); "
                                             "rewards: divided by the running std of the discounted return, clipped at ±10"),
    ("policy_kwargs.net_arch pi/vf [256, 256]", "model_config.fcnet_hiddens [256, 256]", "separate actor and critic"),
    ("policy_kwargs.activation_fn nn.ReLU", "model_config.fcnet_activation relu", ""),
    ("policy_kwargs.ortho_init False", "model_config initialisers null", "PyTorch's default initialisation"),
    ("policy_kwargs.log_std_init -2", "log_std_init -2", "the free log-std starts at -2"),
    ("n_timesteps", "--env-steps", "both arms train for the same budget B"),
]
NOT_MATCHED = [
    "SB3 standardises advantages per minibatch; RLlib (and so PGU) once per batch.",
    "SB3's Adam uses eps 1e-5; RLlib's torch Adam uses 1e-8.",
    "SB3's VecNormalize and RLlib's MeanStdFilter estimate the observation statistics with different "
    "update rules (both running, both clipped at ±10).",
    "SB3 samples n_steps from one env and keeps the episode running across batches, as RLlib does, "
    "but RLlib appends one artificial step per episode chunk to bootstrap it; SB3 bootstraps from the "
    "value of the last observation. Both bootstrap at time-limit truncation.",
]


def zoo_entry(key: str) -> dict:
    import rl_zoo3
    import yaml

    path = pathlib.Path(rl_zoo3.__file__).parent / "hyperparams" / "ppo.yml"
    return yaml.safe_load(path.read_text())[key]


def _policy_kwargs(entry: dict) -> dict:
    """RL Zoo's ``policy_kwargs`` string as the values pgu can match: SB3's defaults where it is absent
    (MlpPolicy: 64-64 tanh, orthogonal init, log-std 0)."""
    kwargs = entry.get("policy_kwargs", "")
    if not kwargs:
        return {"hiddens": [64, 64], "activation": "tanh", "ortho_init": True, "log_std_init": 0.0}
    if kwargs.startswith("dict(log_std_init=") and kwargs.count("=") == 1:  # pgu's own export: SB3's defaults + log-std
        return {"hiddens": [64, 64], "activation": "tanh", "ortho_init": True,
                "log_std_init": float(kwargs.removeprefix("dict(log_std_init=").rstrip(")"))}
    assert "net_arch=dict(pi=[256, 256], vf=[256, 256])" in kwargs and "nn.ReLU" in kwargs, kwargs
    assert "ortho_init=False" in kwargs and "log_std_init=-2" in kwargs, kwargs
    return {"hiddens": [256, 256], "activation": "relu", "ortho_init": False, "log_std_init": -2.0}


def translate(entry: dict, env_id: str) -> dict:
    """``pgu evaluate`` overrides (on the ``ppo`` preset and the task's recipe) for an RL Zoo entry.

    Without ``policy_kwargs`` (Walker2d-v4) the entry uses SB3's default MlpPolicy, 64-64 tanh with
    orthogonal init, which is the task recipe's network already (its value head's gain is 0.01 where
    SB3's is 1: not matched)."""
    assert entry.get("normalize") is True and entry.get("policy") == "MlpPolicy", entry
    net = _policy_kwargs(entry)
    lr = str(entry["learning_rate"])
    out = {
        "num_envs_per_env_runner": int(entry["n_envs"]),
        "train_batch_size_per_learner": int(entry["n_steps"]) * int(entry["n_envs"]),
        "minibatch_size": int(entry["batch_size"]),
        "num_epochs": int(entry["n_epochs"]),
        "lr": float(lr.removeprefix("lin_")), "lr_anneal": lr.startswith("lin_"),  # RL Zoo's lin_X: linear to 0
        "gamma": float(entry["gamma"]),
        "env_config": {"env_id": env_id, "gamma": float(entry["gamma"])},
        "lambda": float(entry["gae_lambda"]),
        "epsilon": float(entry["clip_range"]),
        "entropy_coeff": float(entry["ent_coef"]),
        "vf_loss_coeff": float(entry["vf_coef"]),
        "grad_clip": float(entry["max_grad_norm"]),
        "log_std_init": net["log_std_init"],
    }
    if not net["ortho_init"]:
        out["model_config"] = {"fcnet_hiddens": net["hiddens"], "fcnet_activation": net["activation"],
                               "fcnet_kernel_initializer": None, "fcnet_kernel_initializer_kwargs": None,
                               "fcnet_bias_initializer": None, "head_fcnet_kernel_initializer": None,
                               "head_fcnet_kernel_initializer_kwargs": None, "head_fcnet_bias_initializer": None}
    return out


def _monitor_curve(folder: pathlib.Path) -> list[list[float]]:
    """[[env steps, episode return], ...] from the Monitor CSV RL Zoo writes (raw returns)."""
    import csv

    rows, steps = [], 0
    for path in sorted(folder.rglob("*.monitor.csv")):
        with open(path) as f:
            next(f)  # the JSON header line
            for rec in csv.DictReader(f):
                steps += int(rec["l"])
                rows.append([steps, float(rec["r"])])
    return rows


def evaluate_model(model_dir: pathlib.Path, env_id: str) -> list[float]:
    """pgu's protocol on a trained RL Zoo model: deterministic actions, 10 episodes with env seeds
    10000+i, the VecNormalize statistics frozen, raw env returns."""
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    env_name = env_id
    model = PPO.load(model_dir / f"{env_name}.zip", device="cpu")
    returns = []
    for i in range(EVAL_EPISODES):
        venv = VecNormalize.load(str(model_dir / env_name / "vecnormalize.pkl"), DummyVecEnv([lambda: gym.make(env_id)]))
        venv.training, venv.norm_reward = False, False
        venv.seed(EVAL_SEED_BASE + i)
        obs, done, total = venv.reset(), False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, _, dones, infos = venv.step(action)
            total += float(venv.get_original_reward()[0])
            done = bool(dones[0])
        returns.append(total)
        venv.close()
    return returns


def run(env_id: str, zoo_key: str, seed: int, env_steps: int, out: pathlib.Path) -> dict:
    result_path = out / f"rlzoo_{env_id}_seed{seed}.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    entry = dict(zoo_entry(zoo_key), n_timesteps=env_steps)
    with tempfile.TemporaryDirectory(prefix="rlzoo-") as tmp:
        tmp = pathlib.Path(tmp)
        conf = tmp / "ppo.yml"
        import yaml

        conf.write_text(yaml.safe_dump({env_id: entry}))
        logs = tmp / "logs"
        t0 = time.time()
        cmd = [sys.executable, "-m", "rl_zoo3.train", "--algo", "ppo", "--env", env_id, "--conf-file", str(conf),
               "-n", str(env_steps), "--seed", str(seed), "--num-threads", "1", "--eval-freq", "-1",
               "--device", "cpu", "--vec-env", "dummy", "-f", str(logs), "--log-interval", "-1"]
        subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                       stdout=subprocess.DEVNULL)
        wall = time.time() - t0
        model_dir = next((logs / "ppo").glob(f"{env_id}_*"))
        scores = evaluate_model(model_dir, env_id)
        curve = _monitor_curve(model_dir)
    record = {"arm": "rlzoo", "env_id": env_id, "zoo_entry": zoo_key, "hyperparams": entry, "seed": seed,
              "env_steps": env_steps, "score": sum(scores) / len(scores), "eval_returns": scores,
              "curve": curve, "wall_s": wall,
              "versions": {d: _version(d) for d in ("stable-baselines3", "rl-zoo3", "gymnasium", "mujoco", "torch")}}
    out.mkdir(parents=True, exist_ok=True)
    result_path.write_text(json.dumps(record))
    return record


def _version(dist: str) -> str | None:
    import importlib.metadata as md

    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description="Train RL Zoo's PPO entry on one seed; score it with pgu's protocol")
    ap.add_argument("--env", required=True, help="gymnasium id to train on, e.g. Hopper-v5")
    ap.add_argument("--zoo-entry", required=True, help="the ppo.yml entry to use, e.g. Hopper-v4")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--env-steps", type=int, required=True)
    ap.add_argument("--out", type=pathlib.Path, required=True)
    args = ap.parse_args()
    rec = run(args.env, args.zoo_entry, args.seed, args.env_steps, args.out)
    print(json.dumps({k: rec[k] for k in ("env_id", "seed", "env_steps", "score", "wall_s")}))


if __name__ == "__main__":
    main()
