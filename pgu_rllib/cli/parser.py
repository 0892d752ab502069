"""The ``pgu`` parser: one function per sub-command (or group of sub-commands that read the registry), each
adding its flags; ``build_parser`` assembles them. Choices are read from where they are declared (tasks from
the catalog, presets from ``core.presets``, search methods from ``service.methods``), never copied here."""
from __future__ import annotations

import argparse

from pgu_rllib.cli import commands
from pgu_rllib.cli.args import DEFAULT_REGISTRY, Parser, fraction, port, positive_int, train_seed

DESCRIPTION = "The pgu command line: search policy-update rules with Ray Tune and Optuna, keep the best per task."


def add_train(sub, task_help: str, preset_help: str, env_kwargs_help: str) -> None:
    p = sub.add_parser("train", help="one training run on a local Ray")
    p.add_argument("--task", required=True, help=task_help)
    p.add_argument("--env-kwargs", metavar="JSON", help=env_kwargs_help)
    p.add_argument("--gpus", type=fraction, default=0.0, help="GPUs for the learner (e.g. 1; 0: the CPU)")
    p.add_argument("--preset", default="ppo", help=preset_help)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--env-steps", type=positive_int, help="budget in env steps (default: the task's)")
    p.add_argument("--seed", type=train_seed, default=0, help="the run's seed, an integer in [0, 2^31) (default 0)")
    p.add_argument("--json", action="store_true", help="end stdout with one JSON summary line")
    p.add_argument("--save-policy", metavar="PATH", help="store the final policy (.npz) for `pgu rollout`")
    p.add_argument("--dry-run", action="store_true", help="validate the configuration and print it; train nothing")
    p.add_argument("--from-best", action="store_true",
                   help="train the registry's best configuration (at its tuned budget unless --env-steps)")
    p.add_argument("--config", metavar="FILE", help="train a configuration exported by `pgu export` (a YAML file)")
    p.add_argument("--space", help="with --from-best or --config: which search space's entry (needed when there are "
                                   "several)")
    p.add_argument("--registry", default=DEFAULT_REGISTRY, help="SQLAlchemy URL of the registry")
    p.set_defaults(fn=commands.cmd_train)


def add_search(sub, task_help: str, env_kwargs_help: str) -> None:
    p = sub.add_parser("search", help="search a space on a task (Tune + Optuna), select on selection seeds, test the winner")
    p.add_argument("--task", required=True, help=task_help)
    p.add_argument("--env-kwargs", metavar="JSON", help=env_kwargs_help)
    p.add_argument("--space", default="paper", help="a shipped space name or a path to a YAML file")
    p.add_argument("--trials", type=positive_int, default=12,
                   help="tuning trials (with --tuning-env-steps: at most this many)")
    p.add_argument("--max-concurrent", type=positive_int, help="trials at a time (default: the CPUs, at most --trials)")
    p.add_argument("--env-steps", type=positive_int, help="budget of each trial (default: the task's)")
    p.add_argument("--seed", type=int, default=0, help="seeds TPE and picks the tuning, selection and test seeds")
    p.add_argument("--registry", default=DEFAULT_REGISTRY, help="SQLAlchemy URL (default %(default)s)")
    p.add_argument("--storage-path", default="pgu_results/tune", help="Tune results (shared storage on a cluster)")
    p.add_argument("--name", help="search name (default TASK-SPACE-sSEED); also the Optuna study name")
    p.add_argument("--resume", action="store_true", help="continue an interrupted search of this --name")
    p.add_argument("--gpus-per-trial", type=fraction, default=0.0, help="e.g. 0.25: four trials share a GPU")
    p.add_argument("--top-k", type=positive_int, default=3, help="configurations re-trained on the selection seeds")
    p.add_argument("--selection-seeds", type=positive_int, default=3,
                   help="seeds the top-k are re-trained on; the winner is chosen there")
    p.add_argument("--test-seeds", type=positive_int, default=5,
                   help="seeds only the winner is re-trained on: the reported scores")
    p.add_argument("--seeds-per-trial", type=positive_int, default=1,
                   help="train each trial on k seeds (the same k for every trial) and score their mean")
    p.add_argument("--pruner", choices=_methods("PRUNERS"), default="asha",
                   help="stop weak trials early: successive halving on env steps, a paired Wilcoxon test of "
                        "per-seed scores against the best finished trial (needs --seeds-per-trial >= 4), or never")
    p.add_argument("--sampler", choices=_methods("SAMPLERS"), default="tpe",
                   help="Optuna's sampler of the next configuration")
    p.add_argument("--scheduler", choices=[s for s in _methods("SCHEDULERS") if s],
                   help="population-based training: the space's 'mutable' keys change during training "
                        "(replaces the pruner; the winner's schedule is stored and replayed)")
    p.add_argument("--objective", choices=["train", "eval"], default="train",
                   help="what tuning maximises (episodic tasks): the mean return of the last 10 training episodes, "
                        "or the evaluator's score every tenth of the budget (its env steps counted apart)")
    p.add_argument("--tuning-env-steps", type=positive_int,
                   help="start trials until this many training env steps are spent (ASHA-stopped trials "
                        "counted; at most --trials trials): equal tuning compute across spaces")
    p.add_argument("--population", type=positive_int, default=1, metavar="K",
                   help="train up to K runs of one structure in one process, batched (each run is still its own "
                        "trial and registry row; classic and MuJoCo recipes, first-order steps)")
    p.add_argument("--tracking", choices=_methods("TRACKERS"),
                   help="also log every tuning trial to MLflow or Weights & Biases (extras: pgu-rllib[mlflow], [wandb])")
    p.add_argument("--tracking-uri", help="with --tracking mlflow: the tracking URI (default: "
                                          "sqlite:///pgu_results/mlflow.db)")
    p.add_argument("--json", action="store_true", help="end stdout with one JSON summary line")
    p.add_argument("--dry-run", action="store_true",
                   help="validate everything and print the plan; start no Ray, write nothing")
    p.set_defaults(fn=commands.cmd_search)


def add_evaluate_and_rollout(sub, task_help: str, preset_help: str, env_kwargs_help: str) -> None:
    p = sub.add_parser("evaluate", help="train one fixed configuration on the test seeds (a baseline)")
    p.add_argument("--task", required=True, help=task_help)
    p.add_argument("--env-kwargs", metavar="JSON", help=env_kwargs_help)
    p.add_argument("--preset", default="ppo", help=preset_help)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--env-steps", type=positive_int, help="budget of each run (default: the task's)")
    p.add_argument("--seed", type=int, default=0, help="picks the test seeds, as for pgu search --seed")
    p.add_argument("--test-seeds", type=positive_int, default=5)
    p.add_argument("--config", metavar="FILE", help="evaluate a configuration exported by `pgu export` (YAML)")
    p.add_argument("--space", help="with --config: which search space's entry")
    p.add_argument("--name", help="name of this evaluation in the registry (default TASK-PRESET-sSEED)")
    p.add_argument("--registry", default=DEFAULT_REGISTRY, help="SQLAlchemy URL (default %(default)s)")
    p.add_argument("--storage-path", default="pgu_results/tune", help="Tune results")
    p.add_argument("--max-concurrent", type=positive_int, help="runs at a time (default: the CPUs)")
    p.add_argument("--gpus-per-trial", type=fraction, default=0.0)
    p.add_argument("--resume", action="store_true", help="continue an interrupted evaluation of this --name")
    p.add_argument("--population", type=positive_int, default=1, metavar="K",
                   help="train up to K of the test runs in one process, batched (each run is still its own "
                        "registry row and stored policy; classic and MuJoCo recipes, first-order steps)")
    p.add_argument("--json", action="store_true", help="end stdout with one JSON summary line")
    p.set_defaults(fn=commands.cmd_evaluate)

    p = sub.add_parser("rollout", help="replay a stored policy in a plain gymnasium loop (no Ray, no RLlib)")
    p.add_argument("--policy", required=True, help="a policy file (.npz)")
    p.add_argument("--episodes", type=positive_int, default=10, help="complete episodes (default %(default)s)")
    p.add_argument("--seed-base", type=int, default=10_000, help="episode i starts from env seed BASE+i "
                                                                 "(default %(default)s, the evaluator's)")
    p.add_argument("--video", metavar="DIR", help="record every episode to DIR (gymnasium's RecordVideo)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(fn=commands.cmd_rollout)


def add_readers(sub, task_help: str) -> None:
    """The sub-commands that read (or upgrade) the registry."""
    p = sub.add_parser("registry", help="show or upgrade the registry's schema version")
    p.add_argument("action", choices=["version", "upgrade"])
    p.add_argument("--registry", default=DEFAULT_REGISTRY)
    p.set_defaults(fn=commands.cmd_registry)

    p = sub.add_parser("best", help="show the best stored configuration of a task")
    p.add_argument("--task", required=True, help=task_help)
    p.add_argument("--space")
    p.add_argument("--registry", default=DEFAULT_REGISTRY)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=commands.cmd_best)

    p = sub.add_parser("export", help="write a task's best configurations as YAML")
    p.add_argument("--task", required=True, help=task_help)
    p.add_argument("--format", default="yaml", choices=["yaml", "rlzoo"],
                   help="yaml: every best row with its scores and protocol; rlzoo: RL Zoo's ppo.yml entry (the "
                        "winners PPO can express)")
    p.add_argument("--registry", default=DEFAULT_REGISTRY)
    p.add_argument("--out", help="file to write (default: stdout)")
    p.set_defaults(fn=commands.cmd_export)

    p = sub.add_parser("report", help="an HTML page with plots of one search")
    p.add_argument("--name", required=True, help="the search name")
    p.add_argument("--out", required=True, help="output folder (index.html and PNGs)")
    p.add_argument("--registry", default=DEFAULT_REGISTRY)
    p.set_defaults(fn=commands.cmd_report)

    p = sub.add_parser("dashboard", help="serve optuna-dashboard for the registry's studies")
    p.add_argument("--registry", default=DEFAULT_REGISTRY)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--port", type=port, default=8080)
    p.set_defaults(fn=commands.cmd_dashboard)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="pgu", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"pgu-rllib {_package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    task_help = f"a task: {', '.join(_task_names())}, or gym:ENV_ID (any gymnasium env), or an installed plugin's"
    preset_help = f"a named update rule: {', '.join(_preset_names())}"
    env_kwargs_help = "with --task gym:ENV_ID: gym.make's keyword arguments, a JSON object"
    sub.add_parser("presets", help="list the named update rules").set_defaults(fn=commands.cmd_presets)
    sub.add_parser("tasks", help="list the tasks").set_defaults(fn=commands.cmd_tasks)
    add_train(sub, task_help, preset_help, env_kwargs_help)
    add_search(sub, task_help, env_kwargs_help)
    add_evaluate_and_rollout(sub, task_help, preset_help, env_kwargs_help)
    add_readers(sub, task_help)
    return parser


def _methods(kind: str) -> list:
    """The search methods' names, from ``service.methods`` (the one place they are declared)."""
    from pgu_rllib.service import methods

    return list(getattr(methods, kind))


def _package_version() -> str:
    import importlib.metadata as md

    try:
        return md.version("pgu-rllib")
    except md.PackageNotFoundError:
        return "unknown (not installed)"


def _task_names() -> list[str]:
    """The catalog's task names, read without importing torch or Ray."""
    from pgu_rllib.tasks.catalog import TASKS

    return list(TASKS)


def _preset_names() -> list[str]:
    from pgu_rllib.core.presets import PRESETS

    return list(PRESETS)
