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

    if fmt != "yaml":
        raise InvalidArgument("format", fmt, "yaml")
    get_task(task)
    reg = open_existing(registry)
    rows = reg.best_rows(task) if reg else []
    if not rows:
        raise NothingStored(task, Registry(registry).safe_url)
    doc = {task: {r["space"]: {
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
