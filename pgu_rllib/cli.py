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

DEFAULT_REGISTRY = "sqlite:///pgu_results/registry.db"


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


def parse_sets(items: list[str]) -> dict:
    """``--set KEY=VALUE`` items as a dict (values as ``_parse_value`` reads them); shared with
    ``benchmarks/``. ``ValueError`` names an item without ``=``."""
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

    overrides = parse_sets(args.set)
    if args.from_best:
        from pgu_rllib.search_service import best

        row = best(args.task, args.space, registry=args.registry)
        if row is None:
            raise ValueError(f"no best configuration for task {args.task!r}"
                             f"{'' if args.space is None else f' and space {args.space!r}'} in the registry; "
                             f"run `pgu search --task {args.task}` first")
        print(f"[pgu train] from best: space {row['space']}, search {row['search_name']}, "
              f"held-out {row['heldout_mean']:.4g} ± {row['heldout_std']:.2g}", file=sys.stderr)
        args.preset = row["preset"]
        overrides = {**row["params"], **overrides}
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


def cmd_search(args) -> int:
    from pgu_rllib.search_service import search
    from pgu_rllib.training import json_safe

    import contextlib

    with contextlib.redirect_stdout(sys.stderr):  # Tune's console output: stdout stays ours
        summary = search(args.task, args.space, args.trials, max_concurrent=args.max_concurrent,
                         env_steps=args.env_steps, seed=args.seed, registry=args.registry,
                         storage_path=args.storage_path, name=args.name, resume=args.resume,
                         gpus_per_trial=args.gpus_per_trial, top_k=args.top_k,
                         heldout_seeds=args.heldout_seeds)
    if summary["status"] != "complete":  # interrupted (Ctrl-C): resumable, exit like SIGINT does
        if args.json:
            print(json.dumps(json_safe(summary)))
        return 130
    print(f"\nBest configurations of {summary['name']} (held-out: {len(summary['protocol']['test_seeds'])} "
          f"test seeds x {summary['protocol']['budget_env_steps']:,} env steps)")
    print(f"{'rank':<5} {'tuning':>9} {'held-out mean':>14} {'std':>8} {'median':>9}  overrides")
    for c in summary["candidates"]:
        mark = "*" if c["params"] == summary["best"]["params"] else " "
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in c["params"].items())
        print(f"{c['rank']:<3}{mark}  {c['tuning_score']:>9.4g} {c['heldout_mean']:>14.4g} {c['heldout_std']:>8.3g} "
              f"{c['heldout_median']:>9.4g}  {params}")
    print(f"registry: {summary['registry']} ({'updated' if summary['registry_updated'] else 'kept a better earlier row'})")
    if args.json:
        print(json.dumps(json_safe(summary), default=str))
    return 0


def cmd_best(args) -> int:
    from pgu_rllib.search_service import open_existing
    from pgu_rllib.tasks import get_task
    from pgu_rllib.training import json_safe

    get_task(args.task)
    reg = open_existing(args.registry)
    rows = reg.best_rows(args.task, args.space) if reg else []
    if args.json:
        print(json.dumps(json_safe(rows), default=str))
        return 0 if rows else 1
    if not rows:
        print(f"no best configuration stored for task {args.task!r}" +
              ("" if args.space is None else f" and space {args.space!r}"), file=sys.stderr)
        return 1
    for r in rows:
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["params"].items())
        print(f"{r['task']} / {r['space']}: held-out {r['heldout_mean']:.4g} ± {r['heldout_std']:.3g} "
              f"(median {r['heldout_median']:.4g}, {len(r['heldout_scores'])} seeds), tuning {r['tuning_score']:.4g}"
              f"\n    preset {r['preset']} + {params}\n    search {r['search_name']}, {r['updated_at']}")
    return 0


def cmd_export(args) -> int:
    from pgu_rllib.search_service import export

    text = export(args.task, registry=args.registry, fmt=args.format)
    if args.out:
        import pathlib

        pathlib.Path(args.out).write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def cmd_report(args) -> int:
    from pgu_rllib.report import report

    page = report(args.name, args.out, registry=args.registry)
    print(f"wrote {page} ({len(list(page.parent.glob('*.png')))} plots)")
    return 0


def cmd_dashboard(args) -> int:
    import optuna_dashboard

    from pgu_rllib.registry import Registry
    from pgu_rllib.search_service import _absolute_sqlite

    reg = Registry(args.registry)
    reg.check_reachable()
    print(f"optuna-dashboard for {reg.safe_url} at http://{args.host}:{args.port}/ (Ctrl-C stops)",
          file=sys.stderr, flush=True)
    optuna_dashboard.run_server(_absolute_sqlite(args.registry), host=args.host, port=args.port)
    return 0


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return v


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
    p.add_argument("--from-best", action="store_true", help="start from the registry's best configuration")
    p.add_argument("--space", help="with --from-best: the search space whose best to use (default: best of all)")
    p.add_argument("--registry", default=DEFAULT_REGISTRY, help="SQLAlchemy URL of the registry")
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("search", help="search a space on a task with Tune + Optuna; store the held-out winner")
    p.add_argument("--task", required=True)
    p.add_argument("--space", default="paper", help="a shipped space name or a path to a YAML file")
    p.add_argument("--trials", type=_positive_int, default=12)
    p.add_argument("--max-concurrent", type=_positive_int, help="trials at a time (default: the CPUs, at most --trials)")
    p.add_argument("--env-steps", type=_positive_int, help="budget of each trial (default: the task's)")
    p.add_argument("--seed", type=int, default=0, help="seeds TPE, the tuning seeds and the held-out seeds")
    p.add_argument("--registry", default=DEFAULT_REGISTRY, help="SQLAlchemy URL (default %(default)s)")
    p.add_argument("--storage-path", default="pgu_results/tune", help="Tune results (shared storage on a cluster)")
    p.add_argument("--name", help="search name (default TASK-SPACE-sSEED); also the Optuna study name")
    p.add_argument("--resume", action="store_true", help="continue an interrupted search of this --name")
    p.add_argument("--gpus-per-trial", type=_fraction, default=0.0, help="e.g. 0.25: four trials share a GPU")
    p.add_argument("--top-k", type=_positive_int, default=3, help="configurations re-trained on held-out seeds")
    p.add_argument("--heldout-seeds", type=_positive_int, default=5, help="held-out test seeds per configuration")
    p.add_argument("--json", action="store_true", help="end stdout with one JSON summary line")
    p.set_defaults(fn=cmd_search)

    p = sub.add_parser("best", help="show the best stored configuration of a task")
    p.add_argument("--task", required=True)
    p.add_argument("--space")
    p.add_argument("--registry", default=DEFAULT_REGISTRY)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_best)

    p = sub.add_parser("export", help="write a task's best configurations as YAML")
    p.add_argument("--task", required=True)
    p.add_argument("--format", default="yaml")
    p.add_argument("--registry", default=DEFAULT_REGISTRY)
    p.add_argument("--out", help="file to write (default: stdout)")
    p.set_defaults(fn=cmd_export)

    p = sub.add_parser("report", help="an HTML page with plots of one search")
    p.add_argument("--name", required=True, help="the search name")
    p.add_argument("--out", required=True, help="output folder (index.html and PNGs)")
    p.add_argument("--registry", default=DEFAULT_REGISTRY)
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser("dashboard", help="serve optuna-dashboard for the registry's studies")
    p.add_argument("--registry", default=DEFAULT_REGISTRY)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--port", type=_positive_int, default=8080)
    p.set_defaults(fn=cmd_dashboard)
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
