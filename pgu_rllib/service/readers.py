"""``best``, ``export``: the readers of the registry, for ``pgu best`` and ``pgu export``.

Reading writes nothing, and imports no Ray: a reader's start-up is the registry's, not RLlib's.
"""
from __future__ import annotations

from pgu_rllib.core.errors import InvalidArgument, NothingStored
from pgu_rllib.service.registry import DEFAULT_URL, Registry
from pgu_rllib.tasks import get_task


def open_existing(registry: str) -> Registry | None:
    """The registry for reading, or None when it holds no pgu tables yet. Reading writes nothing;
    a registry of an older schema is refused with the command that upgrades it."""
    reg = Registry(registry)
    reg.check_reachable(write=False)
    return reg if reg.check_current() else None


def best(task: str, space: str | None = None, registry: str = DEFAULT_URL) -> dict | None:
    """The best stored configuration for ``task`` (and ``space``), or None. Its ``test_*`` fields
    are the reported scores; ``selection_mean`` is what chose it.

    Example::

        >>> best("bandit", registry="sqlite://") is None
        True
    """
    get_task(task)
    reg = open_existing(registry)
    return reg.best(task, space) if reg else None


FORMATS = ("yaml", "rlzoo")


def _entry_key(row: dict, rows: list[dict]) -> str:
    """The export's key of a best row: its space, or, where several protocols of one space are stored side by
    side, the space with its budget and protocol key."""
    if sum(r["space"] == row["space"] for r in rows) == 1:
        return row["space"]
    return f"{row['space']}@{row['protocol'].get('budget_env_steps')}-{row['protocol_key']}"


def chosen_entry(task, space: str | None = None, *, registry: str = DEFAULT_URL, config_file: str | None = None) -> dict:
    """The one configuration ``pgu train --from-best`` / ``--config`` runs: ``{preset, params, budget, source,
    test_*}``, from the registry's best rows or from a file ``pgu export`` wrote. Several entries (spaces,
    protocols) and no ``space`` that picks one is an error naming them; so is none."""
    import yaml

    name = get_task(task).name
    if config_file is not None:
        from pgu_rllib.service.spaces import StrictLoader

        try:
            doc = yaml.load(open(config_file, encoding="utf-8"), Loader=StrictLoader)  # noqa: S506
        except (OSError, yaml.YAMLError) as err:
            raise InvalidArgument("config", config_file, f"a YAML file written by `pgu export` ({err})") from None
        entries = (doc or {}).get(name) if isinstance(doc, dict) else None
        if not isinstance(entries, dict) or not entries:
            raise InvalidArgument("config", config_file, f"a `pgu export` file with an entry for task {name!r}")
        found = {k: {"preset": e["preset"], "params": e["overrides"], "budget": e["protocol"].get("budget_env_steps"),
                     "test_mean": e["test"]["mean"], "test_std": e["test"]["std"], "test_median": e["test"]["median"],
                     "test_iqm": e["test"]["iqm"], "test_ci95": e["test"]["ci95"], "test_scores": e["test"]["scores"],
                     "selection_mean": e["selection"]["mean"], "space": k.split("@")[0],
                     "source": f"{config_file}, entry {k}"} for k, e in entries.items()}
    else:
        reg = open_existing(registry)
        rows = reg.best_rows(name) if reg else []
        if not rows:
            raise NothingStored(name, Registry(registry).safe_url)
        found = {_entry_key(r, rows): {**r, "budget": r["protocol"].get("budget_env_steps"),
                                       "source": f"best of space {r['space']}, search {r['search_name']}"}
                 for r in rows}
    if space is not None:
        found = {k: v for k, v in found.items() if v["space"] == space or k == space}
        if not found:
            raise InvalidArgument("space", space, "a space with an entry for this task")
    if len(found) > 1:
        raise InvalidArgument("space", space, f"one of the entries {', '.join(found)} (there are {len(found)}; "
                                              f"pick one, as space names or the keys listed)")
    return next(iter(found.values()))


# RL Zoo's PPO can express exactly these rules (issue 25 §6): the clipped surrogate on the standardised GAE
# advantage, Adam steps, no KL penalty, PPO's own network defaults.
PPO_RULE = {"form": "V", "scale": "ppo_clip", "delta_r": "advantage", "normalize_delta_r": False, "tau": 1.0,
            "step": "first_order", "use_kl_loss": False, "ref_kl_coeff": 0.0}


def rlzoo_entry(task: str, rows: list[dict]) -> str:
    """The best rows as RL Zoo ``hyperparams/ppo.yml`` entries (one per row PPO can express); a row outside
    PPO is refused with a one-line error naming what PPO cannot do."""
    import yaml

    from pgu_rllib.tasks.training import build_config

    t = get_task(task)
    out = {}
    for row in rows:
        budget = row["protocol"].get("budget_env_steps") or t.budget
        config = build_config(t, row["preset"], row["params"], budget=budget)
        outside = {k: getattr(config, k) for k, v in PPO_RULE.items() if getattr(config, k) != v}
        if outside:
            raise InvalidArgument("format", "rlzoo", f"a winner RL Zoo's PPO can express; the best row of space "
                                                     f"{row['space']} has {outside} (PPO needs {PPO_RULE})")
        envs = int(config.num_envs_per_env_runner)
        normalize = getattr(config.env, "__name__", "") == "RewardScaled"  # the MuJoCo recipe's obs and reward scaling
        entry = {"n_timesteps": int(budget), "policy": "MlpPolicy", "normalize": normalize, "n_envs": envs,
                 "n_steps": int(config.train_batch_size_per_learner) // envs,
                 "batch_size": int(config.minibatch_size or config.train_batch_size_per_learner),
                 "n_epochs": int(config.num_epochs),
                 "learning_rate": f"lin_{config.lr}" if config.lr_anneal else float(config.lr),
                 "gamma": float(config.gamma), "gae_lambda": float(config.lambda_),
                 "clip_range": float(config.epsilon), "ent_coef": float(config.entropy_coeff),
                 "vf_coef": float(config.vf_loss_coeff), "max_grad_norm": float(config.grad_clip or 1e10)}
        if config.log_std_init not in (None, 0.0):
            entry["policy_kwargs"] = f"dict(log_std_init={config.log_std_init})"
        out[f"{t.env_id}" if len(rows) == 1 else f"{t.env_id}:{_entry_key(row, rows)}"] = entry
    header = (f"# pgu-rllib winners of task {task!r} as RL Zoo (rl-zoo3) ppo.yml entries: the PPO-expressible subset.\n"
              f"# 64-64 tanh actor and critic with orthogonal init are SB3's MlpPolicy defaults.\n")
    return header + yaml.safe_dump(out, sort_keys=False)


def export(task: str, registry: str = DEFAULT_URL, fmt: str = "yaml") -> str:
    """All best rows of ``task`` as one YAML document a person can read, commit and re-run.

    Raises ``NothingStored`` when the registry holds no best row of ``task`` (a mistyped registry
    must not produce an empty file).

    Example::

        >>> export("bandit", registry="sqlite://")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        pgu_rllib.core.errors.NothingStored: no best configuration for task 'bandit' in sqlite://; nothing written ...
    """
    import yaml

    if fmt not in FORMATS:
        raise InvalidArgument("format", fmt, ", ".join(FORMATS))
    get_task(task)
    reg = open_existing(registry)
    rows = reg.best_rows(task) if reg else []
    if not rows:
        raise NothingStored(task, Registry(registry).safe_url)
    if fmt == "rlzoo":
        return rlzoo_entry(task, rows)
    doc = {task: {_entry_key(r, rows): {
        "preset": r["preset"], "overrides": r["params"], "config": r["config"],
        "test": {"mean": r["test_mean"], "std": r["test_std"], "median": r["test_median"], "iqm": r["test_iqm"],
                 "ci95": r["test_ci95"], "scores": r["test_scores"], "seeds": r["test_seeds"]},
        "selection": {"mean": r["selection_mean"], "scores": r["selection_scores"], "seeds": r["selection_seeds"]},
        "tuning_score": r["tuning_score"], "protocol": r["protocol"], "search": r["search_name"],
        "versions": r["versions"], "git_commit": r["git_commit"], "updated_at": r["updated_at"]} for r in rows}}
    header = (f"# pgu-rllib best configurations for task {task!r} (one entry per search space).\n"
              f"# Scores under `test` come from seeds used for no choice; `selection` chose the winner.\n"
              f"# Train one: pgu train --task {task} --from-best --space SPACE --registry URL\n")
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
