"""A population trial: K members of one structure trained together in one process (issue 26; docs/spec.md §8).

Member k has ``num_envs`` envs of its own (env i of member k starts from seed ``seed_k + i``), its own torch
generator (actions, minibatch order) and its own weights, Adam state, γ and λ. Every iteration:

1. **sample**: ``rollout`` steps of all K·n envs; one batched forward (``vmap``) gives every member's
   actions; an episode that ends is reset at once (gymnasium's SAME_STEP autoreset), a truncated one
   bootstrapped with γ·V(final obs), as RLlib does;
2. **GAE(λ)** per member (``core.population.gae``), advantages standardised over the member's batch;
3. **update**: ``epochs`` passes of minibatches, each member its own shuffle; one ``Population.step``
   per minibatch updates every member (the PGU loss, global-norm clip, Adam).

The recipe is the CleanRL/MuJoCo one of ``benchmarks/minimal_ppo.py``: per-env observation and reward
normalisation wrappers (clipped to ±10) when ``normalize``, linear lr annealing to 0 at the budget.

A member's learning does not depend on the other members: member k of a population and a population of
member k alone (``K = 1``, same seed) take the same steps (``tests/test_population.py``).

Example::

    >>> from pgu_rllib.core.population import Member
    >>> from pgu_rllib.core.update_rule import UpdateRule
    >>> trainer = PopulationTrainer(PopulationSpec("CartPole-v1", num_envs=2, rollout=32, minibatch=16, epochs=2,
    ...                                            normalize=False),
    ...                             [Member(UpdateRule(), lr=3e-4), Member(UpdateRule(scale="mla", alpha_o=1.0,
    ...                              alpha_r=0.5), lr=1e-3)], seeds=[0, 1])
    >>> stats = trainer.iterate(budget=640)
    >>> trainer.env_steps                     # 2 members x 2 envs x 32 steps
    128
"""
from __future__ import annotations

import dataclasses
import math
import time

import gymnasium as gym
import numpy as np
import torch
from torch.func import functional_call, vmap

from pgu_rllib.core.population import ActorCritic, Member, Population, gae, log_prob_entropy


@dataclasses.dataclass
class PopulationSpec:
    """The structure every member shares (docs/spec.md §8): the env, the sampling layout, the update's
    shape, the network."""

    env_id: str
    num_envs: int = 16  # per member
    rollout: int = 128  # steps per env per iteration: the batch per member is num_envs × rollout
    minibatch: int = 64
    epochs: int = 10
    hidden: tuple = (64, 64)
    normalize: bool = True  # observation and reward normalisation (the MuJoCo recipe)
    vf_clip: float = math.inf
    anneal_lr: bool = True


def make_env(env_id: str, gamma: float, normalize: bool) -> gym.Env:
    """One env with the recipe's wrappers (``benchmarks/minimal_ppo.py``'s)."""
    env = gym.wrappers.RecordEpisodeStatistics(gym.make(env_id))
    if isinstance(env.action_space, gym.spaces.Box):
        env = gym.wrappers.ClipAction(env)
    if normalize:
        env = gym.wrappers.NormalizeObservation(env)
        env = gym.wrappers.TransformObservation(env, lambda o: np.clip(o, -10, 10), env.observation_space)
        env = gym.wrappers.NormalizeReward(env, gamma=gamma)
        env = gym.wrappers.TransformReward(env, lambda r: float(np.clip(r, -10, 10)))
    return env


class PopulationTrainer:
    """K members (``Member``, one seed each) trained by ``iterate`` on ``spec``'s env. ``remove`` drops a
    member (its envs stop), ``replace`` starts a new member in a slot (fresh weights, envs and generator)."""

    def __init__(self, spec: PopulationSpec, members: list[Member], seeds: list[int]):
        if len(seeds) != len(members):
            raise ValueError(f"{len(seeds)} seeds for {len(members)} members; give one seed per member")
        if spec.num_envs * spec.rollout % spec.minibatch:
            raise ValueError(f"minibatch={spec.minibatch} does not divide the batch num_envs × rollout = "
                             f"{spec.num_envs * spec.rollout}")
        self.spec = spec
        probe = gym.make(spec.env_id)
        space, self.obs_dim = probe.action_space, probe.observation_space.shape[0]
        probe.close()
        self.discrete = isinstance(space, gym.spaces.Discrete)
        self.act_shape = () if self.discrete else space.shape
        self.act_dim = space.n if self.discrete else space.shape[0]
        seats = [self._seat(m, seed) for m, seed in zip(members, seeds)]
        self.envs, self.generators, obs = (list(x) for x in zip(*[s[1:] for s in seats]))
        self.obs = torch.stack(obs)  # [K, n, obs_dim]
        self.pop = Population([s[0] for s in seats], members, discrete=self.discrete, vf_clip=spec.vf_clip)
        self.returns: list[list[float]] = [[] for _ in members]
        self.member_steps = [0] * len(members)  # env steps each member has taken
        self.env_steps = 0  # all members together, removed ones included
        self.timing = {"sample_s": 0.0, "update_s": 0.0}
        self._batched_forward = vmap(lambda p, b, o: functional_call(self.pop.base, (p, b), (o,)))

    @property
    def K(self) -> int:
        return self.pop.K

    @property
    def members(self) -> list[Member]:
        return self.pop.members

    def _seat(self, member: Member, seed: int):
        """A member's network (torch seeded with ``seed``), ``num_envs`` envs (env i reset with ``seed + i``,
        gymnasium's SyncVectorEnv convention), its generator and its first observations."""
        torch.manual_seed(seed)
        module = ActorCritic(self.obs_dim, self.act_dim, discrete=self.discrete, hidden=self.spec.hidden)
        envs = [make_env(self.spec.env_id, member.gamma, self.spec.normalize) for _ in range(self.spec.num_envs)]
        obs = torch.stack([torch.as_tensor(env.reset(seed=seed + i)[0], dtype=torch.float32)
                           for i, env in enumerate(envs)])
        return module, envs, torch.Generator().manual_seed(seed), obs

    def remove(self, k: int) -> None:
        """Stop member k: its envs close and stop stepping, the population shrinks (the others unchanged)."""
        self.pop.remove(k)
        for env in self.envs.pop(k):
            env.close()
        del self.generators[k], self.returns[k], self.member_steps[k]
        self.obs = torch.cat([self.obs[:k], self.obs[k + 1:]])

    def replace(self, k: int, member: Member, seed: int) -> None:
        """Start ``member`` in slot k, as new: weights from ``seed``, fresh Adam state, envs and generator."""
        module, envs, generator, obs = self._seat(member, seed)
        self.pop.set_member(k, member, module)
        for env in self.envs[k]:
            env.close()
        self.envs[k], self.generators[k], self.returns[k], self.member_steps[k] = envs, generator, [], 0
        self.obs[k] = obs

    def policy(self, obs: torch.Tensor):
        """Every member's distribution inputs and values on its own observations ``[K, n, obs_dim]``."""
        with torch.no_grad():
            return self._batched_forward(self.pop.params, self.pop.buffers, obs)

    def _draw_actions(self, dist_inputs: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            probs = torch.softmax(dist_inputs, -1)
            return torch.stack([torch.multinomial(probs[k], 1, generator=g).squeeze(-1)
                                for k, g in enumerate(self.generators)])
        mean, log_std = dist_inputs.chunk(2, -1)
        noise = torch.stack([torch.randn(mean.shape[1:], generator=g) for g in self.generators])
        return mean + log_std.exp() * noise

    def iterate(self, budget: int) -> dict:
        """One iteration (sample, GAE, update) of every member; ``budget`` is the env steps per member its lr
        anneals over. Returns per-member statistics (lists of K)."""
        spec, K, n, T = self.spec, self.K, self.spec.num_envs, self.spec.rollout
        gamma = torch.tensor([m.gamma for m in self.members], dtype=torch.float64)
        if spec.anneal_lr:
            self.pop.lr_factor = torch.tensor([1.0 - s / budget for s in self.member_steps], dtype=torch.float64)
        t0 = time.perf_counter()
        obs_buf = torch.zeros(K, T, n, self.obs_dim)
        act_buf = torch.zeros((K, T, n, *self.act_shape), dtype=torch.long if self.discrete else torch.float32)
        logp_buf, rew_buf, done_buf, val_buf = (torch.zeros(K, T, n) for _ in range(4))
        for t in range(T):
            dist_inputs, values = self.policy(self.obs)
            actions = self._draw_actions(dist_inputs)
            logp, _ = log_prob_entropy(dist_inputs, actions, self.discrete)
            obs_buf[:, t], act_buf[:, t], logp_buf[:, t], val_buf[:, t] = self.obs, actions, logp, values
            flat = actions.numpy()
            next_obs, truncated_final = [], []
            for k, envs in enumerate(self.envs):
                for i, env in enumerate(envs):
                    o, r, term, trunc, info = env.step(int(flat[k, i]) if self.discrete else flat[k, i])
                    rew_buf[k, t, i], done_buf[k, t, i] = float(r), float(term or trunc)
                    if term or trunc:
                        self.returns[k].append(float(info["episode"]["r"]))
                        if trunc and not term:
                            truncated_final.append((k, i, o))
                        o, _ = env.reset()
                    next_obs.append(torch.as_tensor(o, dtype=torch.float32))
            if truncated_final:  # bootstrap each cut-off tail with γ·V(final obs), as RLlib does: one forward
                final = self.obs.clone()
                for k, i, o in truncated_final:
                    final[k, i] = torch.as_tensor(o, dtype=torch.float32)
                final_values = self.policy(final)[1]
                for k, i, _ in truncated_final:
                    rew_buf[k, t, i] += float(gamma[k]) * final_values[k, i]
            self.obs = torch.stack(next_obs).view(K, n, -1)
        self.env_steps += K * n * T
        self.member_steps = [s + n * T for s in self.member_steps]
        t1 = time.perf_counter()

        with torch.no_grad():
            adv = gae(rew_buf, val_buf, done_buf, self.policy(self.obs)[1], gamma, [m.lam for m in self.members])
        B = T * n
        value_targets = (adv + val_buf).reshape(K, B)
        adv = adv.reshape(K, B)
        adv = (adv - adv.mean(1, keepdim=True)) / (adv.std(1, keepdim=True) + 1e-8)
        data = {"obs": obs_buf.reshape(K, B, -1), "actions": act_buf.reshape(K, B, *self.act_shape),
                "behaviour_logp": logp_buf.reshape(K, B), "advantages": adv, "value_targets": value_targets}
        rows = torch.arange(K).unsqueeze(1)
        stats = []
        for _ in range(spec.epochs):
            order = torch.stack([torch.randperm(B, generator=g) for g in self.generators])
            for start in range(0, B, spec.minibatch):
                idx = order[:, start:start + spec.minibatch]
                stats.append(self.pop.step({key: x[rows, idx] for key, x in data.items()}))
        t2 = time.perf_counter()
        self.timing["sample_s"] += t1 - t0
        self.timing["update_s"] += t2 - t1
        means = {key: torch.stack([s[key] for s in stats]).mean(0) for key in ("total", "policy", "vf_mean", "entropy")}
        return {"episode_return_mean": [float(np.mean(r[-10:])) if r else None for r in self.returns],
                **{key: v.tolist() for key, v in means.items()}}

    def train(self, env_steps_per_member: int) -> list[dict]:
        """Iterate until every member has taken ``env_steps_per_member`` env steps; the statistics of each
        iteration."""
        history = []
        while min(self.member_steps) < env_steps_per_member:
            history.append(self.iterate(env_steps_per_member))
        return history
