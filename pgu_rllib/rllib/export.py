"""``stored_policy``: a trained algorithm's actor as a ``StoredPolicy`` (plain layers, frozen filter).

It reads three things, all through public RLlib API: the module (``algo.get_module()``), the
env-to-module connector state of the local env runner (RLlib's ``MeanStdFilter``: its running
mean and std, and its clip), and the config's action mapping (``normalize_actions`` unsquashes a
Box action from [−1, 1] to the bounds and clips; ``clip_actions`` only clips). The module must be
RLlib's default MLP actor (``DefaultPPOTorchRLModule``: an MLP encoder, then an MLP head), the
module every episodic task trains; anything else is refused with a one-line error.

The export checks itself: on a batch of observations the plain layers must give RLlib's own
``forward_inference`` output (to 1e-5), so a stored policy is the policy that was trained.

Used as ``stored_policy(algo, env_id="Hopper-v5").save("hopper.npz")``; ``Task.stored_policy`` calls it
(``tests/test_evaluation.py`` runs it on Hopper).
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.utils.filter import RunningStat

from pgu_rllib.core.policy import ACTIVATIONS, StoredPolicy

_ACTIVATION_NAMES = {torch.nn.Tanh: "tanh", torch.nn.ReLU: "relu", torch.nn.Sigmoid: "sigmoid", torch.nn.ELU: "elu",
                     torch.nn.SiLU: "silu"}
assert set(_ACTIVATION_NAMES.values()) <= set(ACTIVATIONS)
CHECK_ATOL = 1e-5


def _mlp_layers(module) -> list:
    """The actor path of RLlib's default PPO module as ``("linear", W, b)`` / ``(activation,)``."""
    encoder = getattr(module, "encoder", None)
    actor = getattr(encoder, "actor_encoder", None) or getattr(encoder, "encoder", None)
    head = getattr(module, "pi", None)
    layers = []
    for part, name in ((actor, "encoder"), (head, "pi head")):
        mlp = getattr(getattr(part, "net", None), "mlp", None)
        if not isinstance(mlp, torch.nn.Sequential):
            raise ValueError(f"cannot store a {type(module).__name__} as plain layers: its {name} is not an MLP "
                             f"(stored policies need RLlib's default MLP actor)")
        for layer in mlp:
            if isinstance(layer, torch.nn.Linear):
                bias = layer.bias if layer.bias is not None else torch.zeros(layer.out_features)
                layers.append(("linear", layer.weight.detach().cpu().numpy().copy(),
                               bias.detach().cpu().numpy().copy()))
            elif type(layer) in _ACTIVATION_NAMES:
                layers.append((_ACTIVATION_NAMES[type(layer)],))
            else:
                raise ValueError(f"cannot store a {type(module).__name__} as plain layers: layer "
                                 f"{type(layer).__name__} in its {name} (allowed: Linear, {', '.join(ACTIVATIONS)})")
    return layers


def _obs_filter(algo) -> tuple:
    """(mean, std, clip) of the local env runner's ``MeanStdFilter``, or (None, None, None)."""
    runner = algo.env_runner_group.local_env_runner if algo.env_runner_group is not None else algo.env_runner
    if runner is None:
        return None, None, None
    state = runner.get_state(components="env_to_module_connector").get("env_to_module_connector", {})
    pieces = [s for s in state.values() if isinstance(s, dict) and None in s and "running_stats" in s[None]]
    if not pieces:
        return None, None, None
    if len(pieces) > 1:
        raise ValueError("cannot store a policy whose env-to-module pipeline has several MeanStdFilters")
    f = pieces[0][None]
    if f["shape"] is None or len(f["running_stats"]) != 1 or not (f["de_mean_to_zero"] and f["de_std_to_one"]):
        raise ValueError("cannot store a policy with a structured or partial MeanStdFilter")
    stats = RunningStat.from_state(f["running_stats"][0])
    return (np.asarray(stats.mean, dtype=np.float64).copy(), np.asarray(stats.std, dtype=np.float64).copy(),
            None if f["clip_by_value"] is None else float(f["clip_by_value"]))


def stored_policy(algo, env_id: str, env_kwargs: dict | None = None, meta: dict | None = None,
                  module_id: str = "default_policy") -> StoredPolicy:
    """The deterministic actor of ``algo`` as a ``StoredPolicy`` for ``gym.make(env_id, **env_kwargs)``."""
    module = algo.get_module(module_id)
    space = module.action_space
    if isinstance(space, gym.spaces.Discrete):
        action, low, high, squash = "argmax", None, None, True
    elif isinstance(space, gym.spaces.Box) and space.dtype in (np.float32, np.float64):
        action = "mean"
        bounded = bool(np.all(space.bounded_below) and np.all(space.bounded_above))
        squash = bool(algo.config.normalize_actions)
        keep = bounded and (squash or algo.config.clip_actions)
        low, high = (space.low.astype(np.float64), space.high.astype(np.float64)) if keep else (None, None)
    else:
        raise ValueError(f"cannot store a policy for the action space {space} (allowed: Discrete or a float Box)")
    mean, std, clip = _obs_filter(algo)
    policy = StoredPolicy(env_id=env_id, env_kwargs=dict(env_kwargs or {}), layers=_mlp_layers(module), action=action,
                          obs_mean=mean, obs_std=std, obs_clip=clip, action_low=low, action_high=high, squash=squash,
                          meta=dict(meta or {}))
    _check_forward(policy, module)
    return policy


def _check_forward(policy: StoredPolicy, module) -> None:
    """The plain layers must reproduce RLlib's inference forward pass."""
    n_in = policy.layers[0][1].shape[1]
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((8, n_in)).astype(np.float32))
    with torch.no_grad():
        ours = policy.net(x)
        theirs = module.forward_inference({Columns.OBS: x})[Columns.ACTION_DIST_INPUTS][:, : ours.shape[1]]
    err = float((ours - theirs).abs().max())
    if not err <= CHECK_ATOL:
        raise RuntimeError(f"the stored layers differ from the module's forward pass by {err:.3g} (> {CHECK_ATOL})")
