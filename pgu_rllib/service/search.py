"""``search``, ``evaluate``, ``best``, ``export``: the search service's public API.

``search`` runs three phases on three disjoint seed sets (``S`` = ``seed``):

1. **tuning**: a Ray Tune ``Tuner`` over ``PGU``, driven by ``OptunaSearch`` (seeded TPE,
   define-by-run from the YAML space, its study in the registry's database), ASHA on env
   steps, a concurrency limit. Trial ``i`` trains with seed ``1000·S + i``;
2. **selection**: the top-k distinct configurations by tuning score are re-trained at the full
   budget on the selection seeds ``1_000_000 + 1000·S + j``; the winner is the highest mean;
3. **test**: only the winner is re-trained on the test seeds ``2_000_000 + 1000·S + j``. These
   scores are the ones reported (mean, std, median, IQM, bootstrap CI) and are never used for
   any choice.

The winner becomes the best row of (task, space) unless the stored one has a higher
*selection* mean. Every run's row is written as soon as it finishes, so an interrupted or
killed search loses no finished run; ``resume=True`` continues it.

``evaluate`` re-trains one fixed configuration (a preset plus overrides) on the test seeds
with the same protocol, for baselines.

Example::

    >>> from pgu_rllib import search, best
    >>> summary = search("bandit", "paper", trials=6, env_steps=3000)   # doctest: +SKIP
    >>> best("bandit", "paper")["test_mean"]                            # doctest: +SKIP
    0.74
"""
from __future__ import annotations

import json
import os
import pathlib
import time

from pgu_rllib.core.errors import InvalidArgument, SearchFailed, SearchInterrupted
from pgu_rllib.core.stats import summarize
from pgu_rllib.service._schedulers import MIN_WILCOXON_SEEDS
from pgu_rllib.service.methods import PRUNERS, SAMPLERS, SCHEDULERS, TRACKERS
from pgu_rllib.service._population import prepare_population, start_population, stop_population
from pgu_rllib.service.phases import (cluster_cpus, interrupted, run_phase, run_tuning, selection_table, start_search,
                                      top_candidates)
from pgu_rllib.service.provenance import git_commit, versions
from pgu_rllib.service.readers import best, export, open_existing  # noqa: F401 (the public API's readers)
from pgu_rllib.service.registry import DEFAULT_URL, Phase, SearchStatus, optuna_storage, protocol_key
from pgu_rllib.service.run import DEFAULT_STORAGE, SearchRun, finished_trials, log_line, plural
from pgu_rllib.service.seeds import SeedPlan, check_count, check_seed
from pgu_rllib.service.spaces import load_space
from pgu_rllib.service.validation import (check_budget, check_choice, check_gpus, check_int, check_name,
                                          check_new_or_resume, check_objective, check_population, check_resume,
                                          check_storage, default_name, open_registry)
from pgu_rllib.tasks import get_task


def test_seed_list(seed: int, n: int) -> list[int]:
    """The test seeds of a search with ``--seed seed`` (``SeedPlan``); for the experiments' baselines."""
    return SeedPlan(seed).test(n)


def search(task: str, space: str = "paper", trials: int = 12, *, max_concurrent: int | None = None,
           env_steps: int | None = None, seed: int = 0, registry: str = DEFAULT_URL,
           storage_path: str = DEFAULT_STORAGE, name: str | None = None, resume: bool = False,
           gpus_per_trial: float = 0.0, top_k: int = 3, selection_seeds: int = 3, test_seeds: int = 5,
           seeds_per_trial: int = 1, pruner: str = "asha", sampler: str = "tpe", scheduler: str | None = None,
           objective: str = "train", tuning_env_steps: int | None = None, tracking: str | None = None,
           tracking_uri: str | None = None, population: int = 1, dry_run: bool = False, progress=log_line) -> dict:
    """Search ``space`` on ``task``: tune, select on selection seeds, test the winner on test seeds;
    store the winner in the registry and return a summary (``status`` is ``complete`` or
    ``interrupted``).

    Everything is validated before anything is written: a bad argument raises a ``PGUError``
    (a ``ValueError``) naming it. ``dry_run`` stops there: the summary (``status`` ``dry-run``) holds
    the plan; no Ray is started and nothing is written.

    ``objective`` (episodic tasks) is what tuning maximises: ``train``, the mean raw return of the
    last 10 training episodes, or ``eval``, the evaluator's score of the current policy every tenth
    of the budget (its env steps are counted apart). ``tuning_env_steps`` N makes tuning start trials
    until N training env steps are spent (ASHA-stopped trials counted), at most ``trials`` trials, so
    that two spaces can be compared at equal tuning compute.

    ``seeds_per_trial`` k > 1 trains every trial on the same k tuning seeds (1000·S + j) in one
    process and scores it by their mean; ``pruner`` is ``asha`` (successive halving on env steps),
    ``wilcoxon`` (a paired signed-rank test of the per-seed scores against the best finished trial,
    k ≥ 4) or ``none``; ``sampler`` is Optuna's ``tpe``, ``random``, ``cmaes`` or ``gp``.

    ``scheduler="pbt"`` or ``"pb2"`` (Ray Tune's) trains a population of ``trials`` drawn from the
    space (the sampler's first draws) to the full budget; every tenth of the budget (at least two
    iterations) the population waits for all its members (synchronous PBT, so a seeded search exploits at
    the same points whatever the machine's load), then the weak quarter copies a strong member and
    changes the space's ``mutable`` keys within their bounds. Each trial's
    schedule of those values (its lineage) is stored with it, and the selection and test runs, ``export``
    and ``pgu train --from-best`` replay the winner's schedule.

    ``population`` K > 1 trains every run (tuning, selection, test) as a member of a population of up to K
    runs of one structure in one process (``service._population``, docs/spec.md §8): each run is still one
    Tune trial, Optuna trial and registry row; the pruner, PBT and the phases act per run. It needs a
    gymnasium task with the classic or MuJoCo recipe, first-order steps, the ``train`` objective and one
    seed per trial; anything else is refused, naming the key.
    """
    arguments = dict(locals())  # every argument, checked once in prepare_run
    run, settings = prepare_run(**{k: v for k, v in arguments.items() if k not in ("resume", "dry_run")})
    check_new_or_resume(run.registry, run.name, run.exp_dir, resume)
    if resume:
        check_resume(run.registry, run.name, run.task.name, run.space.source, settings)
    if dry_run:
        run.max_concurrent = run.max_concurrent or min(run.trials, (os.cpu_count() or 1) * run.population)
        return {"status": "dry-run", "name": run.name, "task": run.task.name, "space": run.space.name,
                "plan": _plan(run), "registry": run.registry.safe_url, "storage_path": str(run.exp_dir),
                "settings": settings}
    return run_protocol(run, settings, resume)


def prepare_run(*, task, space, trials, max_concurrent, env_steps, seed, registry, storage_path, name,
                gpus_per_trial, top_k, selection_seeds, test_seeds, seeds_per_trial, pruner, sampler, scheduler,
                objective, tuning_env_steps, tracking, tracking_uri, population, progress) -> tuple[SearchRun, dict]:
    """``search``'s arguments, each checked once (``validation``), as a ``SearchRun`` and the settings a resume
    must match. Raises a ``PGUError`` naming the first bad one; writes nothing."""
    from pgu_rllib.tasks.training import build_config

    t = get_task(task)
    sp = load_space(space)
    name = check_name(name if name is not None else default_name(t.name, sp.name, check_seed(seed)))
    run = SearchRun(
        name=name, task=t, budget=check_budget(t, env_steps), seed=check_seed(seed),
        max_concurrent=0 if max_concurrent is None else check_int("max_concurrent", max_concurrent),
        gpus_per_trial=check_gpus(gpus_per_trial), registry=open_registry(registry),
        exp_dir=check_storage(storage_path) / name, base_config={}, progress=progress,
        space=sp, trials=check_count("trials", trials), top_k=check_count("top_k", top_k),
        seeds_per_trial=check_int("seeds_per_trial", seeds_per_trial, 1, 20), pruner=check_choice("pruner", pruner, PRUNERS),
        sampler=check_choice("sampler", sampler, SAMPLERS), scheduler=check_choice("scheduler", scheduler, SCHEDULERS),
        n_selection=check_count("selection_seeds", selection_seeds), n_test=check_count("test_seeds", test_seeds),
        objective=check_objective(t, objective), tracking_uri=tracking_uri,
        tracking=None if tracking is None else check_choice("tracking", tracking, TRACKERS),
        tuning_env_steps=None if tuning_env_steps is None else check_int("tuning_env_steps", tuning_env_steps, 1, 10**12),
        population=check_int("population", population, 1, 64))
    _check_methods(run)
    sp.check(t, run.budget)
    base = build_config(t, sp.base_preset, {"pgu_objective": run.objective}, seed=0, budget=run.budget)
    if run.gpus_per_trial:
        base = base.learners(num_gpus_per_learner=run.gpus_per_trial)
    run.base_config = base.to_dict()
    if run.population > 1:
        prepare_population(run)
    if os.environ.get("RAY_ADDRESS") and (not pathlib.Path(storage_path).is_absolute() or registry == DEFAULT_URL):
        progress(f"{run.label} warning: inside a Ray job the working directory is a temporary copy that Ray "
                 "deletes; pass --storage-path and --registry on shared storage to keep the results")
    settings = {"env_id": t.env_id, "env_kwargs": t.eval_env_kwargs,
                "trials": run.trials, "env_steps": run.budget, "seed": run.seed, "top_k": run.top_k,
                "selection_seeds": run.n_selection, "test_seeds": run.n_test, "seeds_per_trial": run.seeds_per_trial,
                "pruner": run.pruner, "sampler": run.sampler, "scheduler": run.scheduler,
                "gpus_per_trial": run.gpus_per_trial, "base_preset": sp.base_preset, "objective": run.objective,
                "tuning_env_steps": run.tuning_env_steps, **({"population": run.population} if run.population > 1 else {})}
    return run, settings


def _check_methods(run: SearchRun) -> None:
    """The combinations of search methods that cannot work together, and a tracker whose extra is missing."""
    if run.tracking:
        import importlib.util

        if importlib.util.find_spec(run.tracking) is None:
            raise InvalidArgument("tracking", run.tracking, f"a tracker whose extra is installed "
                                                            f"(pip install 'pgu-rllib[{run.tracking}]')")
        if run.tracking == "mlflow" and run.tracking_uri is None:  # MLflow 3 refuses its old file store
            run.tracking_uri = f"sqlite:///{pathlib.Path('pgu_results/mlflow.db').resolve()}"
    if run.scheduler:
        check_population(run, run.space)
        if run.tuning_env_steps is not None:
            raise InvalidArgument("tuning_env_steps", run.tuning_env_steps,
                                  "none with a population scheduler (its trials all run the full budget)")
    if run.pruner == "wilcoxon" and run.seeds_per_trial < MIN_WILCOXON_SEEDS:
        raise InvalidArgument("seeds_per_trial", run.seeds_per_trial,
                              f"an integer >= {MIN_WILCOXON_SEEDS} with pruner='wilcoxon' (its smallest p-value is 2^-k)")


def run_protocol(run: SearchRun, settings: dict, resume: bool) -> dict:
    """The three phases of a validated search: start (the registry row and its lease), tuning, selection of the
    winner among the top-k on the selection seeds, test of the winner on the test seeds; the best row stored.
    Returns the summary; ``status`` ``interrupted`` when a signal stopped it (finished runs are kept)."""
    t0 = time.time()
    lease = start_search(run, space_name=run.space.name, space_yaml=run.space.source, settings=settings,
                         resume=resume)
    run.max_concurrent = run.max_concurrent or min(run.trials, cluster_cpus() * run.population)
    run.progress(f"{run.label} {_plan(run)}; registry {run.registry.safe_url}, results {run.exp_dir}")
    broker = start_population(run)
    try:
        run_tuning(run, resume)
        candidates = top_candidates(run.registry.trials(run.search_id), run.top_k, run.budget)
        if not candidates:
            raise SearchFailed(f"search {run.name!r}: every trial failed (the first error is in the "
                               f"error.txt files under {run.exp_dir})")
        seeds = run.seeds.selection(run.n_selection)

        def test_jobs(selection: list[dict]) -> list[tuple[int, dict, int]]:  # the winner on the test seeds
            winner = max(selection_table(candidates, selection), key=lambda c: c["selection_mean"])
            return [(winner["rank"], winner["params"], s) for s in run.seeds.test(run.n_test)]

        selection, test = run_phase(run, Phase.SELECTION, [(i, c["params"], s) for i, c in enumerate(candidates)
                                                            for s in seeds], then=(Phase.TEST, test_jobs))
        table = selection_table(candidates, selection)
        winner = max(table, key=lambda c: c["selection_mean"])
        summary = _store_best(run, table, winner, test)
        run.registry.set_status(run.name, SearchStatus.COMPLETE)
    except (SearchInterrupted, KeyboardInterrupt) as stop:  # a bare Ctrl-C: outside Tune's handler
        return interrupted(run, stop, resume_hint=f"search(..., name={run.name!r}, resume=True)")
    except BaseException:
        run.registry.set_status(run.name, SearchStatus.FAILED)
        raise
    finally:
        stop_population(broker)
        lease.release()
    summary.update({"status": "complete", "registry": run.registry.safe_url, "storage_path": str(run.exp_dir),
                    "wall_s": time.time() - t0, "timings": run.registry.get_search(run.name).timings})
    return summary


def _at_a_time(run: SearchRun) -> str:
    """How many runs train at once, in the plan lines of ``search`` and ``evaluate``."""
    return f"{run.max_concurrent} at a time" + (f" in populations of up to {run.population}" if run.population > 1 else "")


def _plan(run: SearchRun) -> str:
    """The search's plan in one line: what runs, how many, about how many env steps."""
    tuning = (f"tuning until {run.tuning_env_steps:,} training env steps are spent (at most {plural(run.trials, 'trial')}"
              f" of {run.budget:,} env steps)" if run.tuning_env_steps else
              f"{plural(run.trials, 'tuning trial')} of {run.budget:,} env steps"
              + (f" x {run.seeds_per_trial} seeds" if run.seeds_per_trial > 1 else ""))
    later = (run.top_k * run.n_selection + run.n_test) * run.budget
    at_most = run.tuning_env_steps or run.trials * run.seeds_per_trial * run.budget
    return (f"task {run.task.name}, space {run.space.name}, objective {run.objective}: {tuning}, "
            f"{_at_a_time(run)}; then top {run.top_k} x {plural(run.n_selection, 'selection seed')}, "
            f"then the winner on {plural(run.n_test, 'test seed')}: about {later / 1e6:.3g}M env steps after tuning, "
            f"{(at_most + later) / 1e6:.3g}M at most in all")


def evaluate(task: str, preset: str = "ppo", overrides: dict | None = None, *, env_steps: int | None = None,
             seed: int = 0, test_seeds: int = 5, name: str | None = None, registry: str = DEFAULT_URL,
             storage_path: str = DEFAULT_STORAGE, max_concurrent: int | None = None, gpus_per_trial: float = 0.0,
             resume: bool = False, population: int = 1, progress=log_line) -> dict:
    """Train one fixed configuration (``preset`` + ``overrides``) on ``test_seeds`` test seeds with
    the search's protocol (same seeds as a search with this ``seed``); store each run under the
    search name ``name`` and return the test summary. For baselines; nothing is selected.

    ``population`` K > 1 trains the test runs as members of populations of up to K (one structure, so
    they all fit: ``service._population``, docs/spec.md §8); each run is still its own row and stored policy.
    """
    from pgu_rllib.tasks.training import build_config

    t = get_task(task)
    overrides = dict(overrides or {})
    name = check_name(name if name is not None else default_name(t.name, preset, check_seed(seed)))
    run = SearchRun(name=name, task=t, budget=check_budget(t, env_steps), seed=check_seed(seed),
                    max_concurrent=0 if max_concurrent is None else check_int("max_concurrent", max_concurrent),
                    gpus_per_trial=check_gpus(gpus_per_trial), registry=open_registry(registry),
                    exp_dir=check_storage(storage_path) / name, base_config={}, progress=progress,
                    n_test=check_count("test_seeds", test_seeds),
                    population=check_int("population", population, 1, 64))
    run.label = f"[pgu evaluate {name}]"
    check_new_or_resume(run.registry, name, run.exp_dir, resume)
    config = build_config(t, preset, overrides, seed=0, budget=run.budget)
    if run.gpus_per_trial:
        config = config.learners(num_gpus_per_learner=run.gpus_per_trial)
    run.base_config = config.to_dict()
    if run.population > 1:
        prepare_population(run)
    settings = {"env_id": t.env_id, "env_kwargs": t.eval_env_kwargs,
                "kind": "evaluation", "preset": preset, "overrides": overrides, "env_steps": run.budget,
                "seed": run.seed, "test_seeds": run.n_test, "gpus_per_trial": run.gpus_per_trial,
                **({"population": run.population} if run.population > 1 else {})}
    if resume:
        check_resume(run.registry, name, t.name, "", settings)
    t0 = time.time()
    lease = start_search(run, space_name=f"preset:{preset}", space_yaml="", settings=settings, resume=resume)
    run.max_concurrent = run.max_concurrent or min(run.n_test, cluster_cpus() * run.population)
    progress(f"{run.label} task {t.name}, preset {preset}{' + ' + json.dumps(overrides) if overrides else ''}, "
             f"{plural(run.n_test, 'test seed')} x {run.budget:,} env steps"
             + (f", {_at_a_time(run)}" if run.population > 1 else ""))
    broker = start_population(run)
    try:
        [test] = run_phase(run, Phase.TEST, [(0, {}, s) for s in run.seeds.test(run.n_test)])
        run.registry.set_status(name, SearchStatus.COMPLETE)
    except (SearchInterrupted, KeyboardInterrupt) as stop:  # a bare Ctrl-C: outside Tune's handler
        return interrupted(run, stop, resume_hint=f"evaluate(..., name={run.name!r}, resume=True)")
    except BaseException:
        run.registry.set_status(name, SearchStatus.FAILED)
        raise
    finally:
        stop_population(broker)
        lease.release()
    stats = summarize([e["score"] for e in test])
    return {"status": "complete", "name": name, "task": t.name, "preset": preset, "overrides": overrides,
            "test_scores": [e["score"] for e in test], "test_seeds": [e["seed"] for e in test],
            "policies": [e["policy_path"] for e in test],
            **{f"test_{k}": v for k, v in stats.items() if k != "n"}, "protocol": _protocol(run),
            "registry": run.registry.safe_url, "wall_s": time.time() - t0,
            "timings": run.registry.get_search(name).timings}


def _protocol(run: SearchRun) -> dict:
    out = {"budget_env_steps": run.budget, **run.task.protocol(run.objective),
           "test_seeds": run.seeds.test(run.n_test)}
    if run.space is not None:
        n = finished_trials(run) if run.search_id is not None else run.trials
        tuning = (run.seeds.tuning(n) if run.seeds_per_trial == 1
                  else run.seeds.tuning(run.seeds_per_trial))  # k > 1: every trial, the same k seeds
        out.update(tuning_seeds=tuning, trials=n, top_k=run.top_k, seeds_per_trial=run.seeds_per_trial,
                   pruner=run.pruner, sampler=run.sampler, tuning_env_steps=run.tuning_env_steps,
                   selection_seeds=run.seeds.selection(run.n_selection),
                   selection="highest mean on the selection seeds among the top-k by tuning score; "
                             "the test seeds are used for nothing but the reported scores")
    return out


def _store_best(run: SearchRun, table: list[dict], winner: dict, test: list[dict]) -> dict:
    from pgu_rllib.tasks.training import build_config, config_summary

    test = sorted(test, key=lambda e: e["seed"])
    stats = summarize([e["score"] for e in test])
    best_row = {"params": winner["params"], "tuning_score": winner["tuning_score"],
            "selection_mean": winner["selection_mean"], "selection_scores": winner["selection_scores"],
            "selection_seeds": winner["selection_seeds"],
            **{f"test_{k}": v for k, v in stats.items() if k != "n"},
            "test_scores": [e["score"] for e in test], "test_seeds": [e["seed"] for e in test]}
    config = config_summary(build_config(run.task, run.space.base_preset, winner["params"], budget=run.budget))
    protocol = {**_protocol(run), "test_policies": [e["policy_path"] for e in test]}
    replaced = replaces_best(run.registry.best(run.task.name, run.space.name, key=protocol_key(protocol)),
                             run.name, winner["selection_mean"])
    if replaced:
        run.registry.put_best(task=run.task.name, space=run.space.name, search_name=run.name,
                              preset=run.space.base_preset, config=config, protocol=protocol, versions=versions(),
                              git_commit=git_commit(), **best_row)
    if not run.scheduler:  # a population has no Optuna study
        _tell_study(run, table, best_row)
    return {"name": run.name, "task": run.task.name, "space": run.space.name, "trials": run.trials,
            "candidates": table, "best": {**best_row, "config": config}, "registry_updated": replaced,
            "protocol": protocol}


def _tell_study(run: SearchRun, table: list[dict], best_row: dict) -> None:
    """Put the selection and test phases in the Optuna study (user attributes), so optuna-dashboard shows
    the winner ``pgu best_row`` shows: ``pgu_winner`` (its Optuna trial number, params, selection and test
    scores) and ``pgu_candidates`` (each candidate's trial number and selection mean). The study's own
    "best trial" stays the best_row *tuning* value, which chose only the candidates."""
    import optuna

    study = optuna.load_study(study_name=run.name, storage=optuna_storage(run.registry.url))

    def number(params: dict):
        for trial in study.trials:
            if {k: v for k, v in trial.params.items() if k in params} == {k: v for k, v in params.items()
                                                                          if k in trial.params}:
                return trial.number
        return None

    study.set_user_attr("pgu_candidates", [{"trial": number(c["params"]), "rank": c["rank"],
                                            "selection_mean": c["selection_mean"]} for c in table])
    study.set_user_attr("pgu_winner", {"trial": number(best_row["params"]), "params": best_row["params"],
                                       "selection_mean": best_row["selection_mean"], "test_mean": best_row["test_mean"],
                                       "test_iqm": best_row["test_iqm"], "test_scores": best_row["test_scores"]})


def replaces_best(current: dict | None, search_name: str, selection_mean: float) -> bool:
    """The protocol's replacement rule: a winner replaces the stored best row of its (task, space,
    protocol key) when there is none, when that row is this search's own (a resume), or when the
    winner's *selection* mean is at least the stored one's. Test scores never decide."""
    return current is None or current["search_name"] == search_name or selection_mean >= current["selection_mean"]
