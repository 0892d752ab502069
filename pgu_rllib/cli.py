"""The ``pgu`` command line.

``pgu presets`` / ``pgu tasks`` list what exists; ``pgu train`` runs one
training. Bad input prints one line ``pgu: error: ...`` and exits 2.

Example::

    $ pgu train --task cartpole --preset ppo --env-steps 5000 --json
"""
from __future__ import annotations

import argparse
import json
import sys


def _parse_value(text: str):
    """``--set`` values: numbers (``1e-3``, ``64``), else YAML (``true``, ``null``, ``[64, 64]``, ``V``)."""
    import yaml

    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _parse_sets(items: list[str]) -> dict:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r} is not key=value")
        out[key.strip()] = _parse_value(value)
    return out


def _positive_int(text: str) -> int:
    try:
        v = int(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return v


def cmd_presets(args) -> int:
    from pgu_rllib.presets import DESCRIPTIONS, PRESETS

    width = max(map(len, PRESETS))
    for name in PRESETS:
        print(f"{name:<{width}}  {DESCRIPTIONS[name]}")
    return 0


def cmd_tasks(args) -> int:
    from pgu_rllib.tasks import TASKS

    width = max(map(len, TASKS))
    for name, task in TASKS.items():
        print(f"{name:<{width}}  {task.describe()}")
    return 0


def cmd_train(args) -> int:
    from pgu_rllib.training import build_config, json_safe, train

    overrides = _parse_sets(args.set)
    build_config(args.task, args.preset, overrides, args.seed)  # fail fast, before Ray starts
    summary = train(args.task, args.preset, overrides, env_steps=args.env_steps, seed=args.seed)
    if args.json:
        print(json.dumps(json_safe(summary), default=str))
    else:
        ret = summary["episode_return_mean"]
        print(f"{summary['task']} / {summary['preset']}: return(last 10 episodes) "
              f"{'n/a' if ret is None else f'{ret:.2f}'} after {summary['env_steps']:,} env steps, "
              f"{summary['env_steps_per_s']:.0f} env steps/s, {summary['wall_s']:.1f}s wall")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgu", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("presets", help="list the named update rules").set_defaults(fn=cmd_presets)
    sub.add_parser("tasks", help="list the tasks").set_defaults(fn=cmd_tasks)
    p = sub.add_parser("train", help="one training run on a local Ray")
    p.add_argument("--task", required=True)
    p.add_argument("--preset", default="ppo")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--env-steps", type=_positive_int, help="budget in env steps (default: the task's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="end stdout with one JSON summary line")
    p.set_defaults(fn=cmd_train)
    return parser


def _quiet_ray_logs() -> None:
    """Hide the per-build 'new API stack' banner and deprecation chatter from RLlib."""
    import logging

    for name in ("ray.rllib.algorithms.algorithm_config", "ray._common.deprecation", "ray.rllib"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    _quiet_ray_logs()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except ValueError as err:
        # One line: RLlib appends a hint about `_validate_config` on a second line.
        parser.exit(2, f"pgu: error: {str(err).splitlines()[0]}\n")
    except KeyboardInterrupt:
        parser.exit(130, "pgu: interrupted\n")


if __name__ == "__main__":
    sys.exit(main())
