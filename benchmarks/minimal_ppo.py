"""A minimal single-file PyTorch PPO loop: the yardstick for ``trial_throughput.py``.

CleanRL's ``ppo_continuous_action.py`` reduced to what the ``ppo`` preset's MuJoCo recipe
does (``pgu tasks``): one env; observations normalised by a running mean/std and clipped
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


def train(env_id="HalfCheetah-v5", env_steps=20480, seed=0, batch=2048, minibatch=64, epochs=10,
          lr=3e-4, gamma=0.99, lam=0.95, clip=0.2, vf_coef=0.5, max_grad_norm=0.5) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    env = make_env(env_id, gamma)
    n_obs, n_act = env.observation_space.shape[0], env.action_space.shape[0]
    agent = Agent(n_obs, n_act)
    optim = torch.optim.Adam(agent.parameters(), lr=lr)
    obs_buf = torch.zeros(batch, n_obs)
    act_buf = torch.zeros(batch, n_act)
    logp_buf, rew_buf, done_buf, val_buf = (torch.zeros(batch) for _ in range(4))
    obs, _ = env.reset(seed=seed)
    obs = torch.as_tensor(obs, dtype=torch.float32)
    startup_s = time.perf_counter() - T0
    t_loop, steps, returns = time.perf_counter(), 0, []
    while steps < env_steps:
        optim.param_groups[0]["lr"] = lr * (1.0 - steps / env_steps)
        for t in range(batch):  # --- sample
            with torch.no_grad():
                dist = agent.dist(obs)
                action = dist.sample()
                obs_buf[t], act_buf[t] = obs, action
                logp_buf[t], val_buf[t] = dist.log_prob(action).sum(), agent.critic(obs)[0]
            nxt, reward, terminated, truncated, info = env.step(action.numpy())
            rew_buf[t], done_buf[t] = reward, float(terminated)
            if terminated or truncated:
                returns.append(float(info["episode"]["r"]))
                nxt, _ = env.reset()
                if truncated:  # bootstrap the cut-off tail as RLlib does
                    with torch.no_grad():
                        rew_buf[t] += gamma * agent.critic(torch.as_tensor(info.get("final_obs", nxt), dtype=torch.float32))[0]
                done_buf[t] = 1.0
            obs = torch.as_tensor(nxt, dtype=torch.float32)
        steps += batch
        with torch.no_grad():  # --- GAE(λ)
            next_value = agent.critic(obs)[0]
            adv, last = torch.zeros(batch), 0.0
            for t in reversed(range(batch)):
                nv = next_value if t == batch - 1 else val_buf[t + 1]
                delta = rew_buf[t] + gamma * nv * (1 - done_buf[t]) - val_buf[t]
                last = delta + gamma * lam * (1 - done_buf[t]) * last
                adv[t] = last
            ret = adv + val_buf
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        for _ in range(epochs):  # --- update
            for idx in torch.randperm(batch).split(minibatch):
                dist = agent.dist(obs_buf[idx])
                ratio = (dist.log_prob(act_buf[idx]).sum(-1) - logp_buf[idx]).exp()
                pg_loss = -torch.min(ratio * adv[idx], ratio.clamp(1 - clip, 1 + clip) * adv[idx]).mean()
                v_loss = (agent.critic(obs_buf[idx]).squeeze(-1) - ret[idx]).pow(2).mean()
                loss = pg_loss + vf_coef * v_loss
                optim.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), max_grad_norm)
                optim.step()
    loop_s = time.perf_counter() - t_loop
    return {"impl": "minimal", "env": env_id, "env_steps": steps, "env_steps_per_s": steps / loop_s,
            "startup_s": startup_s, "loop_s": loop_s,
            "episode_return_mean": float(np.mean(returns[-10:])) if returns else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="HalfCheetah-v5")
    ap.add_argument("--env-steps", type=int, default=20480)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(json.dumps(train(args.env, args.env_steps, args.seed)))


if __name__ == "__main__":
    main()
