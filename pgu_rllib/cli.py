"""The ``pgu`` command line.

``pgu presets`` / ``pgu tasks`` list what exists; ``pgu train`` runs one
training. Bad input prints one line ``pgu: error: ...`` and exits 2.

Example::

    $ pgu train --task cartpole --preset ppo --env-steps 5000 --json
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

from pgu_rllib.core.errors import InvalidArgument, PGUError

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


MAX_COUNT = 10**12


def _positive_int(text: str, high: int = MAX_COUNT, what: str = "a whole number") -> int:
    """A whole number in [1, ``high``] (``1e5`` and ``2048.0`` are fine; ``1e400``, ``2.5`` are not)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    if not (v <= high and v.is_integer()):
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; allowed: {what} in [1, {high}]")
    return int(v)


def _train_seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= v < 2**31:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; allowed: an integer in [0, 2^31)")
    return v


def _port(text: str) -> int:
    return _positive_int(text, 65535, "a port")


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every default in the help, but not "(default: None)" on a required or unset option."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


FLAGS: set[str] = set()  # every option string of every sub-command (for naming a bad value by its flag)


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (no usage block), exit 2, and every default in the help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        FLAGS.update(a for a in args if a.startswith("--"))
        return super().add_argument(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"pgu: error: {message} (see `{self.prog} --help`)\n")


def cmd_presets(args) -> int:
    from pgu_rllib.core.presets import DESCRIPTIONS, PRESETS

    width = max(map(len, PRESETS))
    for name in PRESETS:
        print(f"{name:<{width}}  {DESCRIPTIONS[name]}")
    return 0


def cmd_tasks(args) -> int:
    from pgu_rllib.tasks import TASKS
    from pgu_rllib.tasks.catalog import plugin_tasks

    tasks = {**TASKS, **plugin_tasks()}
    width = max(map(len, tasks))
    for name, task in tasks.items():
        print(f"{name:<{width}}  {task.describe()}")
    print(f"{'gym:ENV_ID':<{width}}  any registered gymnasium env (--env-kwargs JSON for gym.make): the recipe of its "
          f"action space, budget 100,000 env steps")
    return 0


def _task(args):
    """The ``--task`` (with ``--env-kwargs`` for a ``gym:`` task) as what the service takes: a name or a Task."""
    if not args.env_kwargs:
        return args.task
    from pgu_rllib.tasks import get_task

    try:
        kwargs = json.loads(args.env_kwargs)
    except json.JSONDecodeError as err:
        raise InvalidArgument("env_kwargs", args.env_kwargs, f"a JSON object ({err.msg} at {err.pos})") from None
    return get_task(args.task, kwargs)


def cmd_train(args) -> int:
    from pgu_rllib.tasks.training import build_config, json_safe, train

    overrides = parse_sets(args.set)
    if args.gpus:
        overrides["num_gpus_per_learner"] = args.gpus
    if args.from_best or args.config:
        from pgu_rllib.service.readers import chosen_entry

        entry = chosen_entry(args.task, args.space, registry=args.registry, config_file=args.config)
        print(f"[pgu train] {entry['source']}: {_test_line(entry)}", file=sys.stderr)
        args.preset = entry["preset"]
        overrides = {**entry["params"], **overrides}
        if args.env_steps is None:  # the budget it was tuned and tested at, unless told otherwise
            args.env_steps = entry["budget"]
    task = _task(args)
    config = build_config(task, args.preset, overrides, args.seed)  # fail fast, before Ray starts
    if args.dry_run:  # validated; nothing started or written
        print(f"[pgu train] dry run: task {args.task}, preset {args.preset}, {_rule(config.to_dict())}, "
              f"{_params(overrides)}")
        return 0
    summary = train(task, args.preset, overrides, env_steps=args.env_steps, seed=args.seed,
                    save_policy=args.save_policy)
    if args.json:
        print(json.dumps(json_safe(summary), default=str))
    else:
        ret = summary["episode_return_mean"]
        print(f"{summary['task']} / {summary['preset']}: return(last 10 episodes) "
              f"{'n/a' if ret is None else f'{ret:.2f}'} after {summary['env_steps']:,} env steps, "
              f"{summary['env_steps_per_s']:.0f} env steps/s, {summary['wall_s']:.1f}s wall")
    return 0


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def _params(params: dict) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in params.items()) or "(the preset as it is)"


def _rule(config: dict) -> str:
    """The update rule a configuration trains with, read off its config (not its base preset's name)."""
    from pgu_rllib.core.scales import SCALES

    scale = config.get("scale")
    params = ", ".join(f"{k}={_fmt(config.get(k))}" for k in (SCALES[scale].params if scale in SCALES else ()))
    step = "" if config.get("step", "first_order") == "first_order" else f", step {config['step']}"
    return f"form {config.get('form')}, scale {scale}{f'({params})' if params else ''}, Δ_R {config.get('delta_r')}{step}"


def _test_line(row: dict) -> str:
    """The reported scores of a best row or summary: test seeds only."""
    if row.get("test_mean") is None:
        return f"no test scores (selection mean {_fmt(row['selection_mean'])}; registry migrated from schema 0001)"
    n = len(row["test_scores"])
    if n == 1:
        return f"test {row['test_mean']:.4g} (1 seed: std and 95% CI n/a)"
    lo, hi = row["test_ci95"] or (None, None)
    return (f"test {row['test_mean']:.4g} ± {row['test_std']:.3g} (median {row['test_median']:.4g}, "
            f"IQM {row['test_iqm']:.4g}, 95% CI [{_fmt(lo)}, {_fmt(hi)}], {n} seeds)")


def cmd_search(args) -> int:
    import contextlib

    from pgu_rllib.service.search import search
    from pgu_rllib.tasks.training import json_safe

    with contextlib.redirect_stdout(sys.stderr):  # Tune's console output: stdout stays ours
        summary = search(_task(args), args.space, args.trials, max_concurrent=args.max_concurrent,
                         env_steps=args.env_steps, seed=args.seed, registry=args.registry,
                         storage_path=args.storage_path, name=args.name, resume=args.resume,
                         gpus_per_trial=args.gpus_per_trial, top_k=args.top_k,
                         selection_seeds=args.selection_seeds, test_seeds=args.test_seeds,
                         seeds_per_trial=args.seeds_per_trial, pruner=args.pruner, sampler=args.sampler,
                         scheduler=args.scheduler, objective=args.objective, tuning_env_steps=args.tuning_env_steps,
                         tracking=args.tracking, tracking_uri=args.tracking_uri, dry_run=args.dry_run)
    if summary["status"] == "dry-run":  # validated; nothing started or written
        print(f"[pgu search {summary['name']}] dry run: {summary['plan']}; registry {summary['registry']}, "
              f"results {summary['storage_path']}")
        if args.json:
            print(json.dumps(json_safe(summary)))
        return 0
    if summary["status"] != "complete":  # interrupted (Ctrl-C, SIGTERM): resumable, exit like SIGINT does
        print(f"pgu: search {summary['name']} interrupted during {summary['phase']}; continue it with the same "
              f"command and --resume", file=sys.stderr)
        if args.json:
            print(json.dumps(json_safe(summary)))
        return 130
    protocol = summary["protocol"]
    n_sel = len(protocol["selection_seeds"])
    print(f"\nCandidates of {summary['name']} (top {protocol['top_k']} by tuning score, re-trained on "
          f"{n_sel} selection seed{'' if n_sel == 1 else 's'} x {protocol['budget_env_steps']:,} env steps)")
    print(f"{'rank':<5} {'tuning':>9} {'selection mean':>15}  overrides")
    winner = summary["best"]
    for c in summary["candidates"]:
        mark = "*" if c["params"] == winner["params"] else " "
        print(f"{c['rank']:<3}{mark}  {c['tuning_score']:>9.4g} {c['selection_mean']:>15.4g}  {_params(c['params'])}")
    n_test = len(protocol["test_seeds"])
    print(f"winner (*) on {n_test} test seed{'' if n_test == 1 else 's'}: {_test_line(winner)}")
    print(f"registry: {summary['registry']} ({'updated' if summary['registry_updated'] else 'kept an earlier row with a higher selection mean'})")
    if args.json:
        print(json.dumps(json_safe(summary), default=str))
    return 0


def cmd_evaluate(args) -> int:
    import contextlib

    from pgu_rllib.service.search import evaluate
    from pgu_rllib.tasks.training import json_safe

    with contextlib.redirect_stdout(sys.stderr):
        preset, overrides = args.preset, parse_sets(args.set)
        if args.config:
            from pgu_rllib.service.readers import chosen_entry

            entry = chosen_entry(args.task, args.space, config_file=args.config)
            preset, overrides = entry["preset"], {**entry["params"], **overrides}
            args.env_steps = args.env_steps or entry["budget"]
        summary = evaluate(_task(args), preset, overrides, env_steps=args.env_steps, seed=args.seed,
                           test_seeds=args.test_seeds, name=args.name, registry=args.registry,
                           storage_path=args.storage_path, max_concurrent=args.max_concurrent,
                           gpus_per_trial=args.gpus_per_trial, resume=args.resume)
    if summary["status"] != "complete":
        print(f"pgu: evaluation {summary['name']} interrupted; continue it with the same command and --resume",
              file=sys.stderr)
        return 130
    print(f"{summary['task']} / preset {summary['preset']} + {_params(summary['overrides'])}: {_test_line(summary)}")
    if args.json:
        print(json.dumps(json_safe(summary), default=str))
    return 0


def cmd_rollout(args) -> int:
    """Replay a stored policy in a plain gymnasium loop (no Ray, no RLlib): the evaluator's protocol."""
    from pgu_rllib.core.policy import StoredPolicy, evaluate_policy

    path = pathlib.Path(args.policy)
    if not path.is_file():
        raise InvalidArgument("policy", args.policy, "a policy file (.npz) written by a search, `pgu evaluate` or "
                                                     "`pgu train --save-policy`")
    policy = StoredPolicy.load(path)
    make_env = None
    if args.video:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # render off-screen, no sound device
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        import gymnasium as gym

        try:
            import moviepy  # noqa: F401 (RecordVideo writes with it)
        except ImportError:
            raise InvalidArgument("video", args.video, "a folder, with the video extra installed "
                                                       "(pip install 'pgu-rllib[video]')") from None

        def make_env():
            env = gym.make(policy.env_id, render_mode="rgb_array", **policy.env_kwargs)
            return gym.wrappers.RecordVideo(env, args.video, episode_trigger=lambda i: True,
                                            name_prefix=path.stem, disable_logger=True)
    ev = evaluate_policy(policy, args.episodes, args.seed_base, make_env=make_env)
    print(json.dumps({"policy": str(path), "env_id": policy.env_id, "episodes": args.episodes,
                      "seed_base": args.seed_base, "mean": ev.mean, "returns": ev.returns, "lengths": ev.lengths,
                      "stored_score": policy.meta.get("score")}) if args.json else
          f"{policy.env_id}: mean return {ev.mean:.6g} over {args.episodes} episodes (env seeds {args.seed_base}+i); "
          f"stored score {policy.meta.get('score', 'n/a')}")
    return 0


def cmd_best(args) -> int:
    from pgu_rllib.service.readers import open_existing
    from pgu_rllib.tasks import get_task
    from pgu_rllib.tasks.training import json_safe

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
        print(f"{r['task']} / {r['space']}: {_test_line(r)}\n"
              f"    chosen by: selection mean {r['selection_mean']:.4g} on seeds {r['selection_seeds']}, "
              f"tuning score {r['tuning_score']:.4g}\n"
              f"    rule {_rule(r['config'])}; overrides {_params(r['params'])} on preset {r['preset']}'s recipe\n"
              f"    search {r['search_name']}, {r['updated_at']}")
    return 0


def cmd_registry(args) -> int:
    from pgu_rllib.service.registry import Registry, head_revision

    reg = Registry(args.registry)
    reg.check_reachable()
    before = reg.schema()
    if args.action == "upgrade":
        reg.connect()
        print(f"registry {reg.safe_url}: schema {before or '(empty)'} -> {reg.schema()}")
    else:
        print(f"registry {reg.safe_url}: schema {before or '(empty)'}; this pgu-rllib writes {head_revision()}")
    return 0


def _check_out(path: str | None, *, folder: bool) -> None:
    """``--out`` must be a file path (``export``) or a folder (``report``) whose parent exists."""
    if path is None:
        return
    p = pathlib.Path(path)
    wrong = (p.exists() and p.is_dir() != folder) or not p.resolve().parent.is_dir()
    if wrong:
        raise InvalidArgument("out", path, "a folder (created if missing) in an existing folder" if folder
                              else "a file path in an existing folder")


def cmd_export(args) -> int:
    from pgu_rllib.service.readers import export

    _check_out(args.out, folder=False)
    text = export(args.task, registry=args.registry, fmt=args.format)
    if args.out:
        out = pathlib.Path(args.out)
        if out.exists() and not out.is_file():  # /dev/stdout, a FIFO: write through
            try:
                out.write_text(text)
            except OSError as err:
                raise OSError(err.errno, err.strerror, str(out)) from None
        else:  # a whole file or none: write beside it, then rename over it
            tmp = out.with_name(f".{out.name}.tmp")
            try:
                tmp.write_text(text)
                tmp.replace(out)
            finally:
                tmp.unlink(missing_ok=True)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def cmd_report(args) -> int:
    from pgu_rllib.report import report

    _check_out(args.out, folder=True)
    page = report(args.name, args.out, registry=args.registry)
    print(f"wrote {page} ({len(list(page.parent.glob('*.png')))} plots)")
    return 0


def cmd_dashboard(args) -> int:
    import optuna_dashboard

    from pgu_rllib.service.registry import Registry
    from pgu_rllib.service.provenance import absolute_sqlite

    reg = Registry(args.registry)
    reg.check_reachable()
    print(f"optuna-dashboard for {reg.safe_url} at http://{args.host}:{args.port}/ (Ctrl-C stops)",
          file=sys.stderr, flush=True)
    optuna_dashboard.run_server(absolute_sqlite(args.registry), host=args.host, port=args.port)
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
    parser = _Parser(prog="pgu", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"pgu-rllib {_package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    task_help = f"a task: {', '.join(_task_names())}, or gym:ENV_ID (any gymnasium env), or an installed plugin's"
    preset_help = f"a named update rule: {', '.join(_preset_names())}"
    sub.add_parser("presets", help="list the named update rules").set_defaults(fn=cmd_presets)
    sub.add_parser("tasks", help="list the tasks").set_defaults(fn=cmd_tasks)
    env_kwargs_help = "with --task gym:ENV_ID: gym.make's keyword arguments, a JSON object"
    p = sub.add_parser("train", help="one training run on a local Ray")
    p.add_argument("--task", required=True, help=task_help)
    p.add_argument("--env-kwargs", metavar="JSON", help=env_kwargs_help)
    p.add_argument("--gpus", type=_fraction, default=0.0, help="GPUs for the learner (e.g. 1; 0: the CPU)")
    p.add_argument("--preset", default="ppo", help=preset_help)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--env-steps", type=_positive_int, help="budget in env steps (default: the task's)")
    p.add_argument("--seed", type=_train_seed, default=0, help="the run's seed, an integer in [0, 2^31) (default 0)")
    p.add_argument("--json", action="store_true", help="end stdout with one JSON summary line")
    p.add_argument("--save-policy", metavar="PATH", help="store the final policy (.npz) for `pgu rollout`")
    p.add_argument("--dry-run", action="store_true", help="validate the configuration and print it; train nothing")
    p.add_argument("--from-best", action="store_true",
                   help="train the registry's best configuration (at its tuned budget unless --env-steps)")
    p.add_argument("--config", metavar="FILE", help="train a configuration exported by `pgu export` (a YAML file)")
    p.add_argument("--space", help="with --from-best or --config: which search space's entry (needed when there are "
                                   "several)")
    p.add_argument("--registry", default=DEFAULT_REGISTRY, help="SQLAlchemy URL of the registry")
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("search", help="search a space on a task (Tune + Optuna), select on selection seeds, test the winner")
    p.add_argument("--task", required=True, help=task_help)
    p.add_argument("--env-kwargs", metavar="JSON", help=env_kwargs_help)
    p.add_argument("--space", default="paper", help="a shipped space name or a path to a YAML file")
    p.add_argument("--trials", type=_positive_int, default=12,
                   help="tuning trials (with --tuning-env-steps: at most this many)")
    p.add_argument("--max-concurrent", type=_positive_int, help="trials at a time (default: the CPUs, at most --trials)")
    p.add_argument("--env-steps", type=_positive_int, help="budget of each trial (default: the task's)")
    p.add_argument("--seed", type=int, default=0, help="seeds TPE and picks the tuning, selection and test seeds")
    p.add_argument("--registry", default=DEFAULT_REGISTRY, help="SQLAlchemy URL (default %(default)s)")
    p.add_argument("--storage-path", default="pgu_results/tune", help="Tune results (shared storage on a cluster)")
    p.add_argument("--name", help="search name (default TASK-SPACE-sSEED); also the Optuna study name")
    p.add_argument("--resume", action="store_true", help="continue an interrupted search of this --name")
    p.add_argument("--gpus-per-trial", type=_fraction, default=0.0, help="e.g. 0.25: four trials share a GPU")
    p.add_argument("--top-k", type=_positive_int, default=3, help="configurations re-trained on the selection seeds")
    p.add_argument("--selection-seeds", type=_positive_int, default=3,
                   help="seeds the top-k are re-trained on; the winner is chosen there")
    p.add_argument("--test-seeds", type=_positive_int, default=5,
                   help="seeds only the winner is re-trained on: the reported scores")
    p.add_argument("--seeds-per-trial", type=_positive_int, default=1,
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
    p.add_argument("--tuning-env-steps", type=_positive_int,
                   help="start trials until this many training env steps are spent (ASHA-stopped trials "
                        "counted; at most --trials trials): equal tuning compute across spaces")
    p.add_argument("--tracking", choices=_methods("TRACKERS"),
                   help="also log every tuning trial to MLflow or Weights & Biases (extras: pgu-rllib[mlflow], [wandb])")
    p.add_argument("--tracking-uri", help="with --tracking mlflow: the tracking URI (default: "
                                          "sqlite:///pgu_results/mlflow.db)")
    p.add_argument("--json", action="store_true", help="end stdout with one JSON summary line")
    p.add_argument("--dry-run", action="store_true",
                   help="validate everything and print the plan; start no Ray, write nothing")
    p.set_defaults(fn=cmd_search)

    p = sub.add_parser("evaluate", help="train one fixed configuration on the test seeds (a baseline)")
    p.add_argument("--task", required=True, help=task_help)
    p.add_argument("--env-kwargs", metavar="JSON", help=env_kwargs_help)
    p.add_argument("--preset", default="ppo", help=preset_help)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--env-steps", type=_positive_int, help="budget of each run (default: the task's)")
    p.add_argument("--seed", type=int, default=0, help="picks the test seeds, as for pgu search --seed")
    p.add_argument("--test-seeds", type=_positive_int, default=5)
    p.add_argument("--config", metavar="FILE", help="evaluate a configuration exported by `pgu export` (YAML)")
    p.add_argument("--space", help="with --config: which search space's entry")
    p.add_argument("--name", help="name of this evaluation in the registry (default TASK-PRESET-sSEED)")
    p.add_argument("--registry", default=DEFAULT_REGISTRY, help="SQLAlchemy URL (default %(default)s)")
    p.add_argument("--storage-path", default="pgu_results/tune", help="Tune results")
    p.add_argument("--max-concurrent", type=_positive_int, help="runs at a time (default: the CPUs)")
    p.add_argument("--gpus-per-trial", type=_fraction, default=0.0)
    p.add_argument("--resume", action="store_true", help="continue an interrupted evaluation of this --name")
    p.add_argument("--json", action="store_true", help="end stdout with one JSON summary line")
    p.set_defaults(fn=cmd_evaluate)

    p = sub.add_parser("rollout", help="replay a stored policy in a plain gymnasium loop (no Ray, no RLlib)")
    p.add_argument("--policy", required=True, help="a policy file (.npz)")
    p.add_argument("--episodes", type=_positive_int, default=10, help="complete episodes (default %(default)s)")
    p.add_argument("--seed-base", type=int, default=10_000, help="episode i starts from env seed BASE+i "
                                                                 "(default %(default)s, the evaluator's)")
    p.add_argument("--video", metavar="DIR", help="record every episode to DIR (gymnasium's RecordVideo)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(fn=cmd_rollout)

    p = sub.add_parser("registry", help="show or upgrade the registry's schema version")
    p.add_argument("action", choices=["version", "upgrade"])
    p.add_argument("--registry", default=DEFAULT_REGISTRY)
    p.set_defaults(fn=cmd_registry)

    p = sub.add_parser("best", help="show the best stored configuration of a task")
    p.add_argument("--task", required=True, help=task_help)
    p.add_argument("--space")
    p.add_argument("--registry", default=DEFAULT_REGISTRY)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_best)

    p = sub.add_parser("export", help="write a task's best configurations as YAML")
    p.add_argument("--task", required=True, help=task_help)
    p.add_argument("--format", default="yaml", choices=["yaml", "rlzoo"],
                   help="yaml: every best row with its scores and protocol; rlzoo: RL Zoo's ppo.yml entry (the "
                        "winners PPO can express)")
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
    p.add_argument("--port", type=_port, default=8080)
    p.set_defaults(fn=cmd_dashboard)
    return parser


def _full_paths(args, err: OSError) -> str:
    """For a full disk reported without a path (pyarrow, SQLite): the run's paths that have no room left."""
    import errno
    import shutil

    if err.errno != errno.ENOSPC and "No space left" not in str(err):
        return ""
    candidates = [getattr(args, "storage_path", None), getattr(args, "out", None)]
    registry = getattr(args, "registry", "") or ""
    if registry.startswith("sqlite:///"):
        candidates.append(str(pathlib.Path(registry.removeprefix("sqlite:///")).parent))
    full = []
    for path in filter(None, candidates):
        probe = pathlib.Path(path)
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if shutil.disk_usage(probe).free < 1 << 20:
            full.append(path)
    return f"{', '.join(full)}: " if full else ""


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


def main(argv: list[str] | None = None) -> int:
    from pgu_rllib.rllib.ray_session import quiet_logs

    quiet_logs()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("search", "evaluate", "registry"):
        # the registry, Tune's state and the logs: the user and the group (a team shares results), nobody else;
        # secrets (the cluster's token, a password in a URL) never reach them. Reports and exports are made to be
        # shared and keep the user's umask.
        os.umask(os.umask(0o027) | 0o027)
    if args.command in ("search", "evaluate", "train"):
        import signal

        # SIGTERM (a scheduler, `kill`, `ray job stop`) stops a run as Ctrl-C does: it is turned into a SIGINT to
        # this process, so whichever SIGINT handler is in place (Tune's, during a fit) runs; Tune saves its
        # state, the search is marked interrupted, exit 130 with the resume hint
        signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    try:
        return args.fn(args)
    except PGUError as err:
        param = getattr(err, "param", None)
        flag = f"--{param.replace('_', '-')}" if param else None
        if flag and flag not in FLAGS:  # a config key of --set, not a flag
            flag = None
        parser.exit(2, f"pgu: error: {err.worded(flag=flag).splitlines()[0]}\n")
    except ValueError as err:
        # One line: RLlib appends a hint about `_validate_config` on a second line.
        parser.exit(2, f"pgu: error: {str(err).splitlines()[0]}\n")
    except KeyboardInterrupt:
        parser.exit(130, "pgu: interrupted\n")
    except OSError as err:  # the environment, not the input: a full disk, a read-only or vanished path
        where = f"{err.filename}: " if getattr(err, "filename", None) else _full_paths(args, err)
        parser.exit(1, f"pgu: error: {where}{err.strerror or str(err).splitlines()[0]}\n")


if __name__ == "__main__":
    sys.exit(main())
