"""What each ``pgu`` sub-command does: ``cmd_<name>(args) -> exit code``. Each imports what it needs when it
runs, so ``pgu best`` loads no RLlib (``tests/test_startup.py``)."""
from __future__ import annotations

import json
import math
import os
import pathlib
import sys

from pgu_rllib.cli.args import parse_sets
from pgu_rllib.core.errors import InvalidArgument


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
    from pgu_rllib.tasks.training import build_config, train

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

    with contextlib.redirect_stdout(sys.stderr):  # Tune's console output: stdout stays ours
        summary = search(_task(args), args.space, args.trials, max_concurrent=args.max_concurrent,
                         env_steps=args.env_steps, seed=args.seed, registry=args.registry,
                         storage_path=args.storage_path, name=args.name, resume=args.resume,
                         gpus_per_trial=args.gpus_per_trial, top_k=args.top_k,
                         selection_seeds=args.selection_seeds, test_seeds=args.test_seeds,
                         seeds_per_trial=args.seeds_per_trial, pruner=args.pruner, sampler=args.sampler,
                         scheduler=args.scheduler, objective=args.objective, tuning_env_steps=args.tuning_env_steps,
                         tracking=args.tracking, tracking_uri=args.tracking_uri, population=args.population,
                         dry_run=args.dry_run)
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
                           gpus_per_trial=args.gpus_per_trial, resume=args.resume, population=args.population)
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


def full_paths(args, err: OSError) -> str:
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


def json_safe(obj):
    """Replace non-finite floats by None so ``json.dumps`` writes valid JSON (here, not in ``tasks``, so
    that ``pgu best --json`` loads no torch)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj
