"""Stable-Baselines3 PPO on the ``ppo`` preset's recipe: what an RL Zoo user would run instead.

The same hyper-parameters and network as ``minimal_ppo.py`` and ``pgu train --preset ppo``:
``--num-envs`` envs in SB3's ``DummyVecEnv`` (16 x 128 steps = batch 2048), ``VecNormalize``
(observations and rewards, clip 10, γ 0.99), separate 64-64 tanh actor and critic with orthogonal
init and a state-independent log-std starting at 0, minibatch 64, 10 epochs, GAE(0.99, 0.95) with
advantages standardised per minibatch (SB3's way), clip 0.2, no entropy bonus, value coefficient 0.5,
global grad-norm clip 0.5, Adam lr 3e-4 annealed linearly to 0. torch on one thread, CPU.
CartPole's recipe (``--num-envs 8 --batch 512 --no-normalize``): 8 x 64 steps, no ``VecNormalize``, the
rest the same (pgu's ``cartpole`` task keeps lr constant; SB3's schedule is one call per update).

``env_steps_per_s`` counts the training loop only (from the first rollout to the end of the last
update); ``startup_s`` is imports + env and model construction. Needs the ``baselines`` extra
(``pip install -e ".[baselines]"``).

    python benchmarks/sb3_ppo.py --env HalfCheetah-v5 --env-steps 20480 --num-envs 16
    python benchmarks/sb3_ppo.py --env CartPole-v1 --env-steps 10240 --num-envs 8 --batch 512 --no-normalize
"""
from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402

import torch  # noqa: E402


def train(env_id: str, env_steps: int, seed: int, num_envs: int, batch: int = 2048, normalize: bool = True) -> dict:
    try:
        from stable_baselines3 import PPO
        from stable_baselines3.common.callbacks import BaseCallback
        from stable_baselines3.common.env_util import make_vec_env
        from stable_baselines3.common.vec_env import VecNormalize
    except ImportError:
        raise SystemExit("benchmarks/sb3_ppo.py needs stable-baselines3: pip install -e '.[baselines]'")

    torch.set_num_threads(1)

    class Clock(BaseCallback):
        """Wall time of the training loop and of its rollouts."""

        def __init__(self):
            super().__init__()
            self.start = self.rollout_start = None
            self.sample_s = 0.0

        def _on_rollout_start(self) -> None:
            self.rollout_start = time.perf_counter()
            self.start = self.start or self.rollout_start

        def _on_rollout_end(self) -> None:
            self.sample_s += time.perf_counter() - self.rollout_start

        def _on_step(self) -> bool:
            return True

    envs = make_vec_env(env_id, n_envs=num_envs, seed=seed)
    if normalize:
        envs = VecNormalize(envs, gamma=0.99, clip_obs=10.0, clip_reward=10.0)
    model = PPO("MlpPolicy", envs, n_steps=batch // num_envs, batch_size=64, n_epochs=10,
                learning_rate=lambda remaining: 3e-4 * remaining, gamma=0.99, gae_lambda=0.95, clip_range=0.2,
                ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5, seed=seed, device="cpu", verbose=0,
                policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=torch.nn.Tanh,
                                   ortho_init=True, **({} if envs.action_space.shape == () else {"log_std_init": 0.0})))
    clock = Clock()
    startup_s = time.perf_counter() - T0
    model.learn(total_timesteps=env_steps, callback=clock)
    loop_s = time.perf_counter() - clock.start
    steps = model.num_timesteps
    returns = [info["r"] for info in model.ep_info_buffer]
    return {"impl": "sb3", "env": env_id, "num_envs": num_envs, "env_steps": steps,
            "env_steps_per_s": steps / loop_s, "startup_s": startup_s, "loop_s": loop_s,
            "sample_s_per_iter": clock.sample_s / (steps / batch),
            "gae_and_update_s_per_iter": (loop_s - clock.sample_s) / (steps / batch),
            "episode_return_mean": float(sum(returns[-10:]) / len(returns[-10:])) if returns else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="HalfCheetah-v5")
    ap.add_argument("--env-steps", type=int, default=20480)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-envs", type=int, default=16, help="envs in SB3's DummyVecEnv (the batch must divide by it)")
    ap.add_argument("--batch", type=int, default=2048, help="env steps per update (n_steps x num_envs)")
    ap.add_argument("--no-normalize", dest="normalize", action="store_false", help="no VecNormalize (CartPole's recipe)")
    args = ap.parse_args()
    if args.batch % args.num_envs:
        raise SystemExit(f"--num-envs {args.num_envs}: must divide the batch of {args.batch}")
    print(json.dumps(train(args.env, args.env_steps, args.seed, args.num_envs, args.batch, args.normalize)))


if __name__ == "__main__":
    main()
