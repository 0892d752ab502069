"""A stored policy and the one evaluator every episodic score comes from (spec §6).

``StoredPolicy`` is what a trained run leaves behind: the actor network's weights as plain
layers, the frozen observation-normalisation statistics, and how its output becomes an env
action. It is one ``.npz`` file, read back with numpy alone, so a plain gymnasium loop (no
Ray, no RLlib) can replay it: ``pgu rollout`` does, and ``tests/test_evaluation.py`` writes
its own loop and checks that it gets the service's score.

``evaluate_policy`` is the evaluator. Its protocol, the one the registry stores:

* **deterministic**: the action is the distribution's mode (argmax of the logits) or mean
  (a Gaussian's ``loc``), then RLlib's unsquash/clip to the action space's bounds;
* **seeded**: episode ``i`` starts from ``env.reset(seed=seed_base + i)``;
* **frozen**: the normalisation statistics are constants of the stored policy; nothing
  updates them;
* **exactly N complete episodes**, whatever ``num_envs``: each env runs its episode to the end
  and then takes the next unstarted episode index, and the forward pass is per observation
  (batch 1), so 1, 5 or 16 envs give the same returns bit for bit;
* **raw env returns**: the env is ``gym.make(env_id, **env_kwargs)``, the reward as the env
  gives it (no training-time reward scaling).

Example::

    >>> import gymnasium as gym, numpy as np
    >>> env = gym.make("CartPole-v1")
    >>> policy = StoredPolicy(env_id="CartPole-v1", layers=[("linear", np.zeros((2, 4)), np.array([0.0, 1.0]))],
    ...                       action="argmax")
    >>> evaluate_policy(policy, episodes=3).returns    # always push right: the pole falls fast
    [9.0, 9.0, 9.0]
"""
from __future__ import annotations

import dataclasses
import json
import math
import pathlib

import numpy as np

EVAL_SEED_BASE = 10_000
FILTER_EPSILON = 1e-6  # RLlib's SMALL_NUMBER in MeanStdFilter: x / (std + 1e-6)
ACTIVATIONS = ("tanh", "relu", "sigmoid", "elu", "silu")
ACTIONS = ("argmax", "mean")  # discrete: the logits' mode; continuous: the Gaussian's mean


@dataclasses.dataclass
class StoredPolicy:
    """An actor network as plain layers, with its frozen observation filter and action mapping.

    ``layers`` is a list of ``("linear", W, b)`` (``y = x Wᵀ + b``) and ``(activation,)`` entries
    applied in order to the (normalised) observation; the last layer's output is the logits
    (``action="argmax"``) or the Gaussian's mean (``action="mean"``). ``obs_mean``/``obs_std``/``obs_clip``
    are the frozen ``MeanStdFilter`` (None: no normalisation); ``action_low``/``action_high`` unsquash
    a mean in [−1, 1] to the bounds and clip there (RLlib's ``normalize_actions``), or only clip
    (``squash=False``: RLlib's ``clip_actions``).
    """

    env_id: str
    layers: list
    action: str
    env_kwargs: dict = dataclasses.field(default_factory=dict)
    obs_mean: np.ndarray | None = None
    obs_std: np.ndarray | None = None
    obs_clip: float | None = None
    action_low: np.ndarray | None = None
    action_high: np.ndarray | None = None
    squash: bool = True
    meta: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.action not in ACTIONS:
            raise ValueError(f"action={self.action!r} is not allowed; allowed: {', '.join(ACTIONS)}")
        for layer in self.layers:
            if layer[0] not in ("linear", *ACTIVATIONS):
                raise ValueError(f"layer {layer[0]!r} is not allowed; allowed: linear, {', '.join(ACTIVATIONS)}")

    # -- the policy's arithmetic ---------------------------------------------------------------
    def normalise(self, obs) -> np.ndarray:
        """The frozen filter: ``clip((obs − mean)/(std + 1e-6), ±clip)`` in float64, then float32."""
        x = np.asarray(obs, dtype=np.float64)
        if self.obs_mean is not None:
            x = (x - self.obs_mean) / (self.obs_std + FILTER_EPSILON)
            if self.obs_clip:
                x = np.clip(x, -self.obs_clip, self.obs_clip)
        return x.astype(np.float32)

    def net(self, x):
        """The network's output (logits or mean) for a float32 torch batch ``x``."""
        import torch

        for layer in self._torch_layers():
            x = torch.nn.functional.linear(x, layer[1], layer[2]) if layer[0] == "linear" else _activation(layer[0], x)
        return x

    def act(self, obs):
        """The deterministic env action for one observation."""
        import torch

        with torch.no_grad():
            out = self.net(torch.from_numpy(self.normalise(obs)).unsqueeze(0))[0].numpy()
        if self.action == "argmax":
            return int(np.argmax(out))
        a = out.astype(np.float64)
        if self.action_low is not None:
            if self.squash:
                a = self.action_low + (a + 1.0) * (self.action_high - self.action_low) / 2.0
            a = np.clip(a, self.action_low, self.action_high)
        return a.astype(np.float32)

    def _torch_layers(self):
        if getattr(self, "_cached", None) is None:
            import torch

            self._cached = [(l[0], torch.as_tensor(l[1], dtype=torch.float32), torch.as_tensor(l[2], dtype=torch.float32))
                            if l[0] == "linear" else l for l in self.layers]
        return self._cached

    # -- the file ---------------------------------------------------------------------------------
    def save(self, path) -> pathlib.Path:
        """Write one ``.npz`` (arrays, plus the JSON header ``spec``); the write is atomic."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays, layers = {}, []
        for i, layer in enumerate(self.layers):
            if layer[0] == "linear":
                arrays[f"w{i}"], arrays[f"b{i}"] = np.asarray(layer[1]), np.asarray(layer[2])
            layers.append(layer[0])
        for key in ("obs_mean", "obs_std", "action_low", "action_high"):
            if getattr(self, key) is not None:
                arrays[key] = np.asarray(getattr(self, key))
        spec = {"format": "pgu-policy-1", "env_id": self.env_id, "env_kwargs": self.env_kwargs, "layers": layers,
                "action": self.action, "obs_clip": self.obs_clip, "squash": self.squash, "meta": self.meta}
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, spec=np.array(json.dumps(spec)), **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path) -> "StoredPolicy":
        """Read a file written by ``save`` (numpy only; no pickle)."""
        with np.load(path, allow_pickle=False) as data:
            spec = json.loads(str(data["spec"]))
            if spec.get("format") != "pgu-policy-1":
                raise ValueError(f"{path} is not a pgu policy file (format {spec.get('format')!r})")
            layers = [("linear", data[f"w{i}"], data[f"b{i}"]) if kind == "linear" else (kind,)
                      for i, kind in enumerate(spec["layers"])]
            arrays = {k: data[k] for k in ("obs_mean", "obs_std", "action_low", "action_high") if k in data}
        return cls(env_id=spec["env_id"], env_kwargs=spec["env_kwargs"], layers=layers, action=spec["action"],
                   obs_clip=spec["obs_clip"], squash=spec["squash"], meta=spec["meta"], **arrays)


def _activation(name: str, x):
    import torch

    return {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid,
            "elu": torch.nn.functional.elu, "silu": torch.nn.functional.silu}[name](x)


@dataclasses.dataclass
class EvalResult:
    """Per-episode raw returns and lengths, in episode order (episode i used env seed ``seed_base + i``)."""

    returns: list[float]
    lengths: list[int]
    seed_base: int

    @property
    def mean(self) -> float:
        return float(sum(self.returns) / len(self.returns))

    @property
    def env_steps(self) -> int:
        return int(sum(self.lengths))


def protocol(episodes: int, seed_base: int = EVAL_SEED_BASE) -> str:
    """The evaluator's protocol in words (what the registry stores)."""
    return (f"{episodes} complete episodes of the final policy, deterministic (mode/mean action), frozen "
            f"observation normalisation, env seeds {seed_base}+i, raw env returns")


def evaluate_policy(policy: StoredPolicy, episodes: int = 10, seed_base: int = EVAL_SEED_BASE, num_envs: int = 1,
                    make_env=None, max_steps: int = 10**7) -> EvalResult:
    """Run exactly ``episodes`` complete episodes of ``policy`` (episode i from env seed
    ``seed_base + i``) on ``num_envs`` envs in lockstep; return their raw returns in episode order.

    ``make_env`` builds one env (default ``gym.make(policy.env_id, **policy.env_kwargs)``).
    An episode longer than ``max_steps`` raises (an env with no time limit)."""
    import gymnasium as gym

    if not (isinstance(episodes, int) and episodes >= 1):
        raise ValueError(f"episodes={episodes!r} is not allowed; allowed: an integer >= 1")
    if not (isinstance(num_envs, int) and num_envs >= 1):
        raise ValueError(f"num_envs={num_envs!r} is not allowed; allowed: an integer >= 1")
    make_env = make_env or (lambda: gym.make(policy.env_id, **policy.env_kwargs))
    envs = [make_env() for _ in range(min(num_envs, episodes))]
    returns, lengths = [0.0] * episodes, [0] * episodes
    slots: list[tuple[int, object] | None] = []  # (episode index, current obs) per env
    next_episode = 0
    for env in envs:
        obs, _ = env.reset(seed=seed_base + next_episode)
        slots.append((next_episode, obs))
        next_episode += 1
    try:
        while any(s is not None for s in slots):
            for k, env in enumerate(envs):
                if slots[k] is None:
                    continue
                i, obs = slots[k]
                obs, reward, terminated, truncated, _ = env.step(policy.act(obs))
                returns[i] += float(reward)
                lengths[i] += 1
                if lengths[i] > max_steps:
                    raise RuntimeError(f"episode {i} of {policy.env_id} ran past {max_steps} steps")
                if terminated or truncated:
                    if next_episode < episodes:
                        obs, _ = env.reset(seed=seed_base + next_episode)
                        slots[k] = (next_episode, obs)
                        next_episode += 1
                    else:
                        slots[k] = None
                else:
                    slots[k] = (i, obs)
    finally:
        for env in envs:
            env.close()
    if not all(math.isfinite(r) for r in returns):
        raise FloatingPointError(f"{policy.env_id}: a non-finite episode return {returns}")
    return EvalResult(returns=returns, lengths=lengths, seed_base=seed_base)
