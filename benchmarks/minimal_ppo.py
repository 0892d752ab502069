"""A minimal single-file PyTorch PPO loop: the yardstick for ``trial_throughput.py``.

CleanRL's ``ppo_continuous_action.py`` reduced to what the ``ppo`` preset's MuJoCo recipe
does (``pgu tasks``): ``--num-envs`` envs in a gymnasium ``SyncVectorEnv`` (CleanRL's
default is 1), each with its own wrappers; observations normalised by a running mean/std and clipped
to ±10; rewards divided by the running std of the discounted return and clipped to ±10;
separate 64-64 tanh actor and critic with orthogonal init; a state-independent log-std;
batch 2048, minibatch 64, 10 epochs; GAE(γ 0.99, λ 0.95) with advantages standardised
over the batch; clip 0.2; no KL penalty, no entropy bonus, no value clipping; value
coefficient 0.5; global grad-norm clip 0.5; Adam lr 3e-4 annealed linearly to 0.
torch runs on one thread.

``env_steps_per_s`` counts the training loop only (sampling, GAE, updates);
``startup_s`` is imports + env and network construction.

    python benchmarks/minimal_ppo.py --env HalfCheetah-v5 --env-steps 20480
"""
from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402


def layer(n_in, n_out, gain=np.sqrt(2)):
    lin = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(lin.weight, gain)
    nn.init.zeros_(lin.bias)
    return lin


class Agent(nn.Module):
    def __init__(self, n_obs, n_act):
        super().__init__()
        self.critic = nn.Sequential(layer(n_obs, 64), nn.Tanh(), layer(64, 64), nn.Tanh(), layer(64, 1, 0.01))
        self.actor = nn.Sequential(layer(n_obs, 64), nn.Tanh(), layer(64, 64), nn.Tanh(), layer(64, n_act, 0.01))
        self.log_std = nn.Parameter(torch.zeros(n_act))

    def dist(self, obs):
        return torch.distributions.Normal(self.actor(obs), self.log_std.exp())


def make_env(env_id, gamma):
    env = gym.make(env_id)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    env = gym.wrappers.ClipAction(env)
    env = gym.wrappers.NormalizeObservation(env)
    env = gym.wrappers.TransformObservation(env, lambda o: np.clip(o, -10, 10), env.observation_space)
    env = gym.wrappers.NormalizeReward(env, gamma=gamma)
    return gym.wrappers.TransformReward(env, lambda r: float(np.clip(r, -10, 10)))


def train(env_id="HalfCheetah-v5", env_steps=20480, seed=0, num_envs=1, batch=2048, minibatch=64, epochs=10,
          lr=3e-4, gamma=0.99, lam=0.95, clip=0.2, vf_coef=0.5, max_grad_norm=0.5) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    envs = gym.vector.SyncVectorEnv([lambda: make_env(env_id, gamma) for _ in range(num_envs)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    n_obs, n_act = envs.single_observation_space.shape[0], envs.single_action_space.shape[0]
    agent = Agent(n_obs, n_act)
    optim = torch.optim.Adam(agent.parameters(), lr=lr)
    T, K = batch // num_envs, num_envs  # rollout length per env, envs
    obs_buf, act_buf = torch.zeros(T, K, n_obs), torch.zeros(T, K, n_act)
    logp_buf, rew_buf, done_buf, val_buf = (torch.zeros(T, K) for _ in range(4))
    obs, _ = envs.reset(seed=seed)
    obs = torch.as_tensor(obs, dtype=torch.float32)
    startup_s = time.perf_counter() - T0
    t_loop, steps, returns, sample_s = time.perf_counter(), 0, [], 0.0
    while steps < env_steps:
        t_sample = time.perf_counter()
        optim.param_groups[0]["lr"] = lr * (1.0 - steps / env_steps)
        for t in range(T):  # --- sample
            with torch.no_grad():
                dist = agent.dist(obs)
                action = dist.sample()
                obs_buf[t], act_buf[t] = obs, action
                logp_buf[t], val_buf[t] = dist.log_prob(action).sum(-1), agent.critic(obs).squeeze(-1)
            nxt, reward, terminated, truncated, info = envs.step(action.numpy())
            rew_buf[t] = torch.as_tensor(reward, dtype=torch.float32)
            done_buf[t] = torch.as_tensor(terminated | truncated, dtype=torch.float32)
            for i in np.flatnonzero(truncated & ~terminated):  # bootstrap a cut-off tail, as RLlib does
                with torch.no_grad():
                    final = torch.as_tensor(info["final_obs"][i], dtype=torch.float32)
                    rew_buf[t, i] += gamma * agent.critic(final)[0]
            if "episode" in info:
                returns.extend(float(r) for r in info["episode"]["r"][info["_episode"]])
            obs = torch.as_tensor(nxt, dtype=torch.float32)
        steps += T * K
        sample_s += time.perf_counter() - t_sample
        with torch.no_grad():  # --- GAE(λ); the rollout's cut-off is bootstrapped with V(obs)
            next_value = agent.critic(obs).squeeze(-1)
            adv, last = torch.zeros(T, K), torch.zeros(K)
            for t in reversed(range(T)):
                nv = next_value if t == T - 1 else val_buf[t + 1]
                delta = rew_buf[t] + gamma * nv * (1 - done_buf[t]) - val_buf[t]
                last = delta + gamma * lam * (1 - done_buf[t]) * last
                adv[t] = last
            ret = (adv + val_buf).flatten()
            adv = ((adv - adv.mean()) / (adv.std() + 1e-8)).flatten()
        b_obs, b_act, b_logp = obs_buf.reshape(-1, n_obs), act_buf.reshape(-1, n_act), logp_buf.flatten()
        for _ in range(epochs):  # --- update
            for idx in torch.randperm(T * K).split(minibatch):
                dist = agent.dist(b_obs[idx])
                ratio = (dist.log_prob(b_act[idx]).sum(-1) - b_logp[idx]).exp()
                pg_loss = -torch.min(ratio * adv[idx], ratio.clamp(1 - clip, 1 + clip) * adv[idx]).mean()
                v_loss = (agent.critic(b_obs[idx]).squeeze(-1) - ret[idx]).pow(2).mean()
                loss = pg_loss + vf_coef * v_loss
                optim.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), max_grad_norm)
                optim.step()
    loop_s = time.perf_counter() - t_loop
    return {"impl": "minimal", "env": env_id, "num_envs": num_envs, "env_steps": steps,
            "env_steps_per_s": steps / loop_s, "startup_s": startup_s, "loop_s": loop_s,
            "sample_s_per_iter": sample_s / (steps / batch), "gae_and_update_s_per_iter": (loop_s - sample_s) / (steps / batch),
            "episode_return_mean": float(np.mean(returns[-10:])) if returns else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="HalfCheetah-v5")
    ap.add_argument("--env-steps", type=int, default=20480)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-envs", type=int, default=1, help="envs stepped in lock-step (gymnasium SyncVectorEnv)")
    args = ap.parse_args()
    print(json.dumps(train(args.env, args.env_steps, args.seed, args.num_envs)))


if __name__ == "__main__":
    main()
