"""A pgu run's configuration as a population member (issue 26; docs/spec.md §8).

``population_member(config)`` reads one run's resolved configuration (a ``PGUConfig.to_dict()`` with a
trial's sampled keys, what every Tune trial of a search gets) and returns the population's structure
(``PopulationSpec``), the member (``Member``) and its seed. A population trial runs the two recipes a
population can: a gymnasium env id with the classic recipe (no normalisation), or the MuJoCo recipe
(``RewardScaled`` around a gymnasium env: observation filter and reward scaling). Anything a population
cannot run is refused in one line naming the key, its value and what is allowed.

``structure_key(spec, member)`` says which members can share a population: the same spec and the same
rule outside ``PER_MEMBER_RULE_KEYS``.

Example::

    >>> from pgu_rllib.tasks import get_task
    >>> from pgu_rllib.tasks.training import build_config
    >>> config = build_config(get_task("cartpole"), "ppo", {"lr": 1e-3}, seed=7, budget=4096).to_dict()
    >>> spec, member, seed = population_member(config)
    >>> (spec.env_id, spec.num_envs, spec.rollout, spec.epochs, member.lr, seed)
    ('CartPole-v1', 1, 512, 10, 0.001, 7)
"""
from __future__ import annotations

import dataclasses
import json
import math
import types

from pgu_rllib.core.population import PER_MEMBER_RULE_KEYS, Member
from pgu_rllib.core.update_rule import UpdateRule
from pgu_rllib.tasks.population import PopulationSpec

# the keys a member may differ in from the others of its population (the rest is its structure)
MEMBER_KEYS = ("seed", "lr", "grad_clip", "entropy_coeff", "vf_loss_coeff", "gamma", "lambda", *PER_MEMBER_RULE_KEYS)


class NotAPopulationRun(ValueError):
    """A configuration a population trial cannot run (the message names the key)."""


def _refuse(key: str, value, allowed: str):
    raise NotAPopulationRun(f"{key}={value!r} cannot run in a population; allowed: {allowed}")


def _env(config: dict) -> tuple[str, bool, float]:
    """(gymnasium env id, the MuJoCo recipe's normalisation on, its reward discount)."""
    env, env_config = config.get("env"), dict(config.get("env_config") or {})
    if getattr(env, "__name__", None) == "RewardScaled":
        if env_config.get("env_kwargs") or env_config.get("reward_clip", 10.0) != 10.0:
            _refuse("env_config", env_config, "the MuJoCo recipe's env_config without env_kwargs")
        return env_config["env_id"], True, float(env_config.get("gamma", 0.99))
    if isinstance(env, str) and not env_config:
        return env, False, 0.99
    _refuse("env", env, "a gymnasium env id (the classic recipe) or the MuJoCo recipe's RewardScaled, "
                        "with no env_config")


def _model(config: dict, continuous: bool) -> tuple:
    model = config.get("_model_config") or config.get("model_config")
    fields = dataclasses.asdict(model) if dataclasses.is_dataclass(model) else dict(model or {})
    if fields.get("fcnet_activation", "tanh") != "tanh":
        _refuse("fcnet_activation", fields.get("fcnet_activation"), "tanh")
    if fields.get("vf_share_layers"):
        _refuse("vf_share_layers", True, "false (separate policy and value networks)")
    if continuous and not fields.get("free_log_std"):
        _refuse("free_log_std", fields.get("free_log_std"), "true (a state-independent log-std, the MuJoCo recipe's)")
    return tuple(int(h) for h in fields.get("fcnet_hiddens", (64, 64)))


def population_member(config: dict) -> tuple[PopulationSpec, Member, int]:
    """The structure, the member and the seed of one run's resolved ``config``; ``NotAPopulationRun`` names the
    first key a population cannot run."""
    env_id, normalize, reward_gamma = _env(config)
    for _, values in config.get("pgu_schedule") or []:
        for key in values:
            if key not in MEMBER_KEYS:
                _refuse("pgu_schedule", config["pgu_schedule"], f"values of the per-member keys only "
                                                                f"({', '.join(MEMBER_KEYS[1:])}); {key!r} is structural")
    fixed = {"num_env_runners": (0, "0"), "use_kl_loss": (False, "false"), "use_critic": (True, "true"),
             "use_gae": (True, "true"), "batch_mode": ("truncate_episodes", "truncate_episodes"),
             "grad_clip_by": ("global_norm", "global_norm"), "step": ("first_order", "first_order"),
             "ref_kl_coeff": (0.0, "0"),
             "pgu_objective": ("train", "train (the periodic evaluation is not offered in a population)"),
             "log_std_init": (None, "null")}
    for key, (want, allowed) in fixed.items():
        if key in config and config[key] != want:
            _refuse(key, config[key], allowed)
    envs = int(config.get("num_envs_per_env_runner") or 1)
    batch = int(config.get("_train_batch_size_per_learner") or config.get("train_batch_size_per_learner"))
    minibatch = config.get("minibatch_size") or batch
    if batch % envs:
        _refuse("train_batch_size_per_learner", batch, f"a multiple of num_envs_per_env_runner={envs}")
    if not isinstance(config.get("lr"), (int, float)):
        _refuse("lr", config.get("lr"), "a number (lr schedules are not offered in a population)")
    spec = PopulationSpec(env_id, num_envs=envs, rollout=batch // envs, minibatch=int(minibatch),
                          epochs=int(config.get("num_epochs", 1)), hidden=_model(config, normalize),
                          normalize=normalize, vf_clip=float(config.get("vf_clip_param", math.inf)),
                          anneal_lr=bool(config.get("lr_anneal")), reward_gamma=reward_gamma)
    rule = UpdateRule.from_object(types.SimpleNamespace(**{k: config[k] for k in UpdateRule.keys()}))
    member = Member(rule, lr=float(config["lr"]), grad_clip=config.get("grad_clip"),
                    entropy_coeff=float(config.get("entropy_coeff") or 0.0),
                    vf_loss_coeff=float(config.get("vf_loss_coeff", 1.0)), gamma=float(config.get("gamma", 0.99)),
                    lam=float(config.get("lambda", 1.0)))
    return spec, member, int(config.get("seed") or 0)


def member_schedule(config: dict) -> list[tuple[int, Member]]:
    """A run's ``pgu_schedule`` as members: ``(env steps, the member from then on)`` for each entry, each entry's
    values on top of the earlier ones (``PGU``'s replay: in effect from the first iteration starting at or after
    those env steps)."""
    out, values = [], {}
    for steps, entry in config.get("pgu_schedule") or []:
        values = {**values, **entry}
        out.append((int(steps), population_member({**config, **values})[1]))
    return out


def structure_key(spec: PopulationSpec, member: Member) -> str:
    """Members with equal keys can share one population: the spec and the rule outside the per-member keys."""
    rule = {k: v for k, v in dataclasses.asdict(member.rule).items() if k not in PER_MEMBER_RULE_KEYS}
    return json.dumps({"spec": dataclasses.asdict(spec), "rule": rule}, sort_keys=True, default=str)
