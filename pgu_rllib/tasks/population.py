"""A population trial: K members of one structure trained together in one process (issue 26; docs/spec.md §8).

Member k has ``num_envs`` envs of its own (env i of member k starts from seed ``seed_k + i``), its own torch
generator (actions, minibatch order) and its own weights, Adam state, γ and λ. Every iteration:

1. **sample**: ``rollout`` steps of all K·n envs; one batched forward (``Population.forward``) gives every member's
   actions; an episode that ends is reset at once (gymnasium's SAME_STEP autoreset), a truncated one
   bootstrapped with γ·V(final obs), as RLlib does;
2. **GAE(λ)** per member (``core.population.gae``), advantages standardised over the member's batch;
3. **update**: ``epochs`` passes of minibatches, each member its own shuffle; one ``Population.step``
   per minibatch updates every member (the PGU loss, global-norm clip, Adam).

The envs are plain ``gym.make(env_id)``; a Box action is clipped to its bounds (RLlib's ``clip_actions``).
With ``normalize`` the recipe is pgu's MuJoCo one (``tasks/catalog.py``), on tensors over all K·n envs
(``tasks/normalisation.py``): one observation filter per member, shared by its n envs (RLlib's
``MeanStdFilter``, clip ±10), and each env's reward divided by the running std of its discounted return
(``RewardScaled``, with the recipe's γ = 0.99, clip ±10). Episode returns are the raw env returns. Linear
lr annealing to 0 at the budget.

``stored_policy(k)`` is member k's deterministic actor with its filter frozen (``core.policy.StoredPolicy``),
so ``score(k)`` is the evaluator every episodic score in the service comes from (spec §6), and ``pgu rollout``
replays it.

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

from pgu_rllib.core.policy import EvalResult, StoredPolicy, evaluate_policy
from pgu_rllib.core.population import ActorCritic, Member, Population, gae, log_prob_entropy
from pgu_rllib.tasks.normalisation import ObsFilter, RewardScaler


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
    reward_gamma: float = 0.99  # the reward scaling's discount: the recipe's constant, not a member's γ
    vf_clip: float = math.inf
    anneal_lr: bool = True


def make_env(env_id: str) -> gym.Env:
    """One env of a population: ``gym.make(env_id)``; the recipe's normalisations run on tensors."""
    return gym.make(env_id)


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
        self.bounds = None if self.discrete else (space.low.astype(np.float64), space.high.astype(np.float64))
        K, n = len(members), spec.num_envs
        self.obs_filter = ObsFilter(K, self.obs_dim) if spec.normalize else None
        self.reward_scaler = (RewardScaler([spec.reward_gamma] * K, n)
                              if spec.normalize else None)
        seats = [self._seat(m, seed) for m, seed in zip(members, seeds)]
        self.envs, self.generators, raw = (list(x) for x in zip(*[s[1:] for s in seats]))
        self.obs = self._filter(torch.stack(raw))  # [K, n, obs_dim]: what the module reads
        self.pop = Population([s[0] for s in seats], members, discrete=self.discrete, vf_clip=spec.vf_clip)
        self.returns: list[list[float]] = [[] for _ in members]  # each member's finished episodes' raw returns
        self._episode_return = np.zeros((K, n))
        self.member_steps = [0] * K  # env steps each member has taken
        self.env_steps = 0  # all members together, removed ones included
        self.timing = {"sample_s": 0.0, "update_s": 0.0}

    @property
    def K(self) -> int:
        return self.pop.K

    @property
    def members(self) -> list[Member]:
        return self.pop.members

    def _seat(self, member: Member, seed: int):
        """A member's network (torch seeded with ``seed``), ``num_envs`` envs (env i reset with ``seed + i``,
        gymnasium's SyncVectorEnv convention), its generator and its first raw observations."""
        torch.manual_seed(seed)
        module = ActorCritic(self.obs_dim, self.act_dim, discrete=self.discrete, hidden=self.spec.hidden)
        envs = [make_env(self.spec.env_id) for _ in range(self.spec.num_envs)]
        raw = torch.as_tensor(np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]),
                              dtype=torch.float64)
        return module, envs, torch.Generator().manual_seed(seed), raw

    def _filter(self, raw: torch.Tensor, update: bool = True) -> torch.Tensor:
        """Raw observations [K, n, d] as the module reads them (each member's filter; pushed with ``update``)."""
        return self.obs_filter(raw, update) if self.obs_filter is not None else raw.float()

    def remove(self, k: int) -> None:
        """Stop member k: its envs close and stop stepping, the population shrinks (the others unchanged)."""
        self.pop.remove(k)
        keep = [i for i in range(len(self.envs)) if i != k]
        for env in self.envs.pop(k):
            env.close()
        del self.generators[k], self.returns[k], self.member_steps[k]
        self.obs, self._episode_return = self.obs[keep], self._episode_return[keep]
        for norm in (self.obs_filter, self.reward_scaler):
            if norm is not None:
                norm.select(keep)

    def replace(self, k: int, member: Member, seed: int) -> None:
        """Start ``member`` in slot k, as new: weights from ``seed``, fresh Adam state, filter, envs and generator."""
        module, envs, generator, raw = self._seat(member, seed)
        self.pop.set_member(k, member, module)
        for env in self.envs[k]:
            env.close()
        self.envs[k], self.generators[k], self.returns[k], self.member_steps[k] = envs, generator, [], 0
        self._episode_return[k] = 0.0
        if self.obs_filter is not None:
            self.obs_filter.reset_member(k)
            self.reward_scaler.reset_member(k)
            self.obs[k] = self.obs_filter.member(k, raw)
        else:
            self.obs[k] = raw.float()

    def add(self, member: Member, seed: int) -> int:
        """Start ``member`` in a new slot (the population grows); returns the slot. It starts as a new member:
        weights from ``seed``, fresh Adam state, filter, envs and generator."""
        module, envs, generator, raw = self._seat(member, seed)
        k = self.pop.add(member, module)
        self.envs.append(envs)
        self.generators.append(generator)
        self.returns.append([])
        self.member_steps.append(0)
        self._episode_return = np.concatenate([self._episode_return, np.zeros((1, self.spec.num_envs))])
        if self.obs_filter is not None:
            self.obs_filter.grow()
            self.reward_scaler.grow()
            obs = self.obs_filter.member(k, raw)
        else:
            obs = raw.float()
        self.obs = torch.cat([self.obs, obs.unsqueeze(0)])
        return k

    def member_state(self, k: int) -> dict:
        """What a checkpoint of member k holds: weights, Adam state, observation filter, env steps taken."""
        state = {"optimizer": self.pop.optimizer_state(k), "env_steps": self.member_steps[k]}
        if self.obs_filter is not None:
            state["filter"] = {name: getattr(self.obs_filter, name)[k].clone() for name in ("count", "mean", "ssd")}
        return state

    def load_member_state(self, k: int, state: dict) -> None:
        """Slot k continues from ``member_state`` (PBT's exploit, or a paused trial restored); its envs, their
        reward scalers and its generator go on."""
        self.pop.load_optimizer_state(k, state["optimizer"])
        self.member_steps[k] = int(state["env_steps"])
        if self.obs_filter is not None:
            for name, value in state["filter"].items():
                getattr(self.obs_filter, name)[k] = value

    def copy_member(self, src: int, dst: int) -> None:
        """PBT's exploit: slot ``dst`` takes slot ``src``'s weights, Adam state and observation filter (what a
        checkpoint restores); its envs, their reward scalers and its generator go on."""
        self.pop.copy_member(src, dst)
        if self.obs_filter is not None:
            self.obs_filter.copy_member(src, dst)

    def policy(self, obs: torch.Tensor):
        """Every member's distribution inputs and values on its own observations ``[K, n, obs_dim]``."""
        with torch.no_grad():
            return self.pop.forward(obs)

    def _draw_actions(self, dist_inputs: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            probs = torch.softmax(dist_inputs, -1)
            return torch.stack([torch.multinomial(probs[k], 1, generator=g).squeeze(-1)
                                for k, g in enumerate(self.generators)])
        mean, log_std = dist_inputs.chunk(2, -1)
        noise = torch.stack([torch.randn(mean.shape[1:], generator=g) for g in self.generators])
        return mean + log_std.exp() * noise

    def _step_envs(self, actions: torch.Tensor):
        """Step every env once (an ended episode is reset at once); returns the raw next observations [K, n, d]
        (reset ones for ended episodes), raw rewards, terminated and truncated flags [K, n], and the final raw
        observations of truncated episodes as ``{(k, i): obs}``."""
        K, n = self.K, self.spec.num_envs
        flat = actions.numpy()
        if self.bounds is not None:
            flat = np.clip(flat, *self.bounds)
        obs = np.empty((K, n, self.obs_dim))
        reward, term, trunc = np.empty((K, n)), np.zeros((K, n), bool), np.zeros((K, n), bool)
        truncated_final = {}
        for k, envs in enumerate(self.envs):
            for i, env in enumerate(envs):
                o, reward[k, i], term[k, i], trunc[k, i], _ = env.step(int(flat[k, i]) if self.discrete else flat[k, i])
                if term[k, i] or trunc[k, i]:
                    if not term[k, i]:
                        truncated_final[(k, i)] = o
                    o, _ = env.reset()
                obs[k, i] = o
        return torch.from_numpy(obs), reward, term, trunc, truncated_final

    def _count_returns(self, reward: np.ndarray, done: np.ndarray) -> None:
        self._episode_return += reward
        for k, i in zip(*done.nonzero()):
            self.returns[k].append(float(self._episode_return[k, i]))
            self._episode_return[k, i] = 0.0

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
            raw, reward, term, trunc, truncated_final = self._step_envs(actions)
            done = term | trunc
            self._count_returns(reward, done)
            r = torch.from_numpy(reward)
            if self.reward_scaler is not None:
                r = self.reward_scaler(r, torch.from_numpy(done))
            rew_buf[:, t], done_buf[:, t] = r.float(), torch.from_numpy(done).float()
            if truncated_final:  # bootstrap each cut-off tail with γ·V(final obs), as RLlib does: one forward
                final_raw = raw.clone()
                for (k, i), o in truncated_final.items():
                    final_raw[k, i] = torch.from_numpy(np.asarray(o, dtype=np.float64))
                final_values = self.policy(self._filter(final_raw, update=False))[1]
                for k, i in truncated_final:
                    rew_buf[k, t, i] += float(gamma[k]) * final_values[k, i]
            self.obs = self._filter(raw)
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

    def stored_policy(self, k: int, meta: dict | None = None) -> StoredPolicy:
        """Member k's deterministic actor, its observation filter frozen as it is now (spec §6)."""
        state = self.pop.member_state_dict(k)
        layers = []
        for i, layer in enumerate(self.pop.base.pi):
            if isinstance(layer, torch.nn.Linear):
                layers.append(("linear", state[f"pi.{i}.weight"].numpy().copy(), state[f"pi.{i}.bias"].numpy().copy()))
            else:
                layers.append((type(layer).__name__.lower(),))  # Tanh -> "tanh", ReLU -> "relu", ...
        mean = std = clip = None
        if self.obs_filter is not None:
            mean, std = (t.numpy() for t in self.obs_filter.frozen(k))
            clip = self.obs_filter.clip
        low, high = self.bounds if self.bounds is not None else (None, None)
        return StoredPolicy(env_id=self.spec.env_id, layers=layers, action="argmax" if self.discrete else "mean",
                            obs_mean=mean, obs_std=std, obs_clip=clip, action_low=low, action_high=high, squash=False,
                            meta=dict(meta or {}))

    def score(self, k: int, episodes: int = 10) -> EvalResult:
        """Member k scored by the one evaluator (``core.policy.evaluate_policy``): deterministic, env seeds
        10000+i, filter frozen, raw returns. Nothing of the trainer changes."""
        return evaluate_policy(self.stored_policy(k), episodes=episodes)

    def train(self, env_steps_per_member: int) -> list[dict]:
        """Iterate until every member has taken ``env_steps_per_member`` env steps; the statistics of each
        iteration."""
        history = []
        while min(self.member_steps) < env_steps_per_member:
            history.append(self.iterate(env_steps_per_member))
        return history
