"""The three phases of a search as functions of a ``SearchRun``: start (resources, the registry row and
its lease), tuning (Tune + Optuna, ``run_tuning``), and the selection and test runs (``run_phase``)."""
from __future__ import annotations

import json
import math
import os
import signal
import threading
import time

from pgu_rllib.core.errors import MissingResources, SearchFailed, SearchInterrupted
from pgu_rllib.service._trainables import SEEDS, EvaluationRun, MultiSeedPGU, PGUTrial
from pgu_rllib.service.lease import Lease
from pgu_rllib.service.methods import (first_draws, make_population_scheduler, make_sampler, make_schedule_reader,
                                      make_scheduler, make_tracker)
from pgu_rllib.service.provenance import git_commit, versions
from pgu_rllib.service.registry import REGISTRY_ENV, Phase, SearchStatus, optuna_storage
from pgu_rllib.service.run import FAILURE_RETRIES, SearchRun, finished_trials, plural
from pgu_rllib.core.stats import summarize


RESOURCE_WAIT_ENV = "PGU_RESOURCE_WAIT_S"  # how long to wait for an autoscaler (default 120 s on a cluster)
REUSE_ENV = "PGU_REUSE_ACTORS"  # "0": a fresh worker process per trial and run (``_trainables``: reuse is the default)


def reuse_actors(run: SearchRun | None = None) -> bool:
    """Tune's ``reuse_actors`` for every phase: a worker trains run after run (same numbers as fresh workers,
    ``tests/test_actor_reuse.py``) unless ``PGU_REUSE_ACTORS=0``, e.g. for a plugin task with global state.
    Never with ``--population``: a run that ends must leave its population at once (Tune keeps an ended
    trial's actor for the next one without stopping it), or the other members would wait for it."""
    return os.environ.get(REUSE_ENV, "1") != "0" and (run is None or run.population == 1)


def largest_run(run: SearchRun) -> dict:
    """The base config with the space's largest value of every key that changes what a run asks for
    (``rllib.resources.RESOURCE_KEYS``), so that the check covers every trial the space can sample."""
    from pgu_rllib.rllib.resources import RESOURCE_KEYS

    config = dict(run.base_config)
    if run.space is not None:
        for key, values in run.space.values_of(RESOURCE_KEYS).items():
            numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if numbers:
                config[key] = max(numbers)
    return config


def check_resources(run: SearchRun, started_locally: bool, progress) -> None:
    """Every run must fit what the cluster offers (``rllib.resources.need``: the main process, env
    runners, learners, GPUs), the space's largest sampled values included. On a local Ray nothing more
    can appear: refuse at once. On a cluster an autoscaler may add nodes: wait up to
    ``PGU_RESOURCE_WAIT_S`` (120 s), then refuse."""
    import ray

    from pgu_rllib.rllib.resources import check_fits, need

    config = largest_run(run)
    if run.seeds_per_trial > 1 or run.gpus_per_trial:  # MultiSeedPGU and the phases' runs: tune.with_resources
        config["num_gpus_per_learner"] = run.gpus_per_trial
    wait = 0.0 if started_locally else float(os.environ.get(RESOURCE_WAIT_ENV, "120"))
    t0 = time.time()
    while True:
        have = {k: float(ray.cluster_resources().get(k, 0.0)) for k in ("CPU", "GPU")}
        try:
            check_fits(config, have)
            return
        except MissingResources as err:
            if time.time() - t0 >= wait:
                param, value = ((("gpus_per_trial", run.gpus_per_trial) if run.gpus_per_trial and
                                 err.param == "num_gpus_per_learner" else (err.param, err.value)))
                raise MissingResources(param, value, have, time.time() - t0, asks=need(config)) from None
        progress(f"{run.label} waiting for the cluster to offer what one run asks for (has {have})")
        time.sleep(min(10.0, wait))


def cluster_cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def start_search(run: SearchRun, *, space_name: str, space_yaml: str, settings: dict, resume: bool) -> Lease:
    """Check resources, then create (or reopen) the search's row holding its lease; returns the lease,
    kept alive until the caller releases it."""
    from pgu_rllib.rllib import ray_session
    from pgu_rllib.rllib.accel.tune_retry import retry_only_dead_workers

    started = ray_session.ensure_ray()
    retry_only_dead_workers()  # FAILURE_RETRIES re-run a trial whose worker died, not one whose code raised
    check_resources(run, started, run.progress)  # before anything is written
    if started:  # where a user finds the workers' logs of this run
        run.progress(f"{run.label} started a local Ray with {cluster_cpus()} CPUs; its logs: "
                     f"{ray_session.started_session_dir}/logs")
    os.environ[REGISTRY_ENV] = run.registry.url
    run.registry.connect()
    lease = Lease(run.registry, run.name)
    row = run.registry.start_search(name=run.name, task=run.task.name, space=space_name, space_yaml=space_yaml,
                                    settings=settings, storage_path=str(run.exp_dir), versions=versions(),
                                    git_commit=git_commit(), resume=resume, lease=lease.claim)
    run.search_id = row.id
    return lease.keep_alive()


def interrupted(run: SearchRun, stop: SearchInterrupted | KeyboardInterrupt, resume_hint: str) -> dict:
    """Mark the search interrupted in the phase ``stop`` names (Tune's handler caught the signal), or, for a
    bare Ctrl-C (between phases, or a second one), in the phase the run was in (``run.phase``)."""
    phase = stop.phase if isinstance(stop, SearchInterrupted) else run.phase
    run.registry.set_status(run.name, SearchStatus.INTERRUPTED)
    run.progress(f"{run.label} interrupted during {phase}; finished runs are stored. Resume with "
                 f"{resume_hint}")
    return {"name": run.name, "status": "interrupted", "phase": phase, "task": run.task.name,
            "space": run.space.name if run.space else None}


def run_tuning(run: SearchRun, resume: bool) -> None:
    """Run (or continue) the Tune + Optuna search until ``run.trials`` trials are recorded, or until
    ``run.tuning_env_steps`` training env steps are spent (``TuningMeter``)."""
    from ray import tune

    from pgu_rllib.service._tune_hooks import TuningMeter

    # Tune's experiment state every 10 s: a kill loses at most that much of it (the registry, not Tune's
    # state, says which trials finished); saving it on every loop cost the driver a quarter of a core
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "10")
    meter = TuningMeter(run.registry, run.name, run.search_id, run.tuning_env_steps, run.seeds_per_trial)
    run.phase = "tuning"

    def more() -> bool:
        return finished_trials(run) < run.trials and not meter.exhausted()

    try:
        if resume and tune.Tuner.can_restore(str(run.exp_dir)) and more():
            run.progress(f"{run.label} resuming the tuning phase from {run.exp_dir}")
            fit_tuner(run, restore_tuner(run), "tuning")
        if more():
            remaining = run.trials - finished_trials(run)
            if resume:
                run.progress(f"{run.label} {plural(finished_trials(run), 'trial')} in the registry"
                             + (f", {meter.spent:,} tuning env steps spent" if run.tuning_env_steps else "")
                             + f"; running up to {remaining} more")
            fit_tuner(run, new_tuner(run, remaining), "tuning")
        if more():
            raise SearchInterrupted(run.name, "tuning")
    finally:
        meter.flush()
    close_abandoned_trials(run)
    if run.tuning_env_steps:
        run.progress(f"{run.label} tuning spent {meter.spent:,} training env steps over "
                     f"{plural(finished_trials(run), 'trial')} (limit {run.tuning_env_steps:,})")




ABANDONED = "pgu_abandoned"


def close_abandoned_trials(run: SearchRun) -> int:
    """Once the tuning phase is over, a study trial still RUNNING was asked for by an attempt that was
    interrupted (Ctrl-C, ``kill -9``) before it could tell the study: the resume ran that point again under
    a new trial. It is told FAIL with the user attribute ``pgu_abandoned`` (optuna-dashboard shows why), so the study holds no
    trial that looks alive. Returns how many were closed."""
    import optuna

    from pgu_rllib.service.registry import optuna_storage

    storage = optuna_storage(run.registry.url)
    try:
        study = optuna.load_study(study_name=run.name, storage=storage)
    except KeyError:  # no study (a search with no tuning phase)
        return 0
    stale = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    if not stale:
        return 0
    study_id = storage.get_study_id_from_name(run.name)
    for trial in stale:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_user_attr(trial_id, ABANDONED, "its attempt was interrupted; the resume ran the point again")
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    run.progress(f"{run.label} closed {plural(len(stale), 'study trial')} left RUNNING by an interrupted attempt (FAIL, "
                 f"user attribute {ABANDONED})")
    return len(stale)


class TuneInterrupt:
    """Whether a ``tuner.fit()`` ended on Ctrl-C (or SIGTERM, which the CLI turns into SIGINT).

    Tune catches the first SIGINT, saves its state and returns normally; its handler then puts back the
    SIGINT handler it found. So: install a marker handler before the fit; finding it in place after the fit
    means Tune's handler ran. (Unfinished trials in the results say the same, except when the signal
    came between two trials, e.g. in a restored fit.) A second Ctrl-C reaches the marker: KeyboardInterrupt."""

    def __enter__(self):
        self.active = threading.current_thread() is threading.main_thread()
        if self.active:
            self.before = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._marker)
        return self

    @staticmethod
    def _marker(sig, frame):
        raise KeyboardInterrupt

    @property
    def seen(self) -> bool:
        return self.active and signal.getsignal(signal.SIGINT) is self._marker

    def __exit__(self, *exc):
        if self.active:
            signal.signal(signal.SIGINT, self.before)
        return False


def fit_tuner(run: SearchRun, tuner, phase: str):
    with TuneInterrupt() as interrupt:
        results = tuner.fit()
        interrupted = interrupt.seen
    if interrupted or results.num_terminated + results.num_errors < len(results):  # Tune saved a resumable state
        raise SearchInterrupted(run.name, phase)
    return results


def trial_loggers() -> list:
    """Tune's JSON and CSV trial loggers that keep every row when a trial restarts in the same driver
    (``rllib.accel.tune_loggers``); Tune adds its TensorBoard logger as usual."""
    from pgu_rllib.rllib.accel.tune_loggers import CSVLogger, JsonLogger

    return [CSVLogger(), JsonLogger()]


def tuning_trainable(run: SearchRun):
    """What a tuning trial runs: ``PGUTrial`` (one seed), ``MultiSeedPGU`` (k seeds in one process, one CPU), or
    ``PopulationMember`` (a member of a population host)."""
    from ray import tune

    if run.population > 1:
        from pgu_rllib.service._population import PopulationMember

        return PopulationMember
    if run.seeds_per_trial == 1:
        return PGUTrial
    return tune.with_resources(MultiSeedPGU, {"cpu": 1, "gpu": run.gpus_per_trial})


def restore_tuner(run: SearchRun):
    """Tune's stored tuning state, its unfinished trials resumed. Tune stored its objects as placeholders, so the
    trainable is given again; a state written before the tuning trials were reusable (they ran ``PGU`` itself) gets
    ``PGU`` back."""
    from ray import tune

    def restore(trainable):
        return tune.Tuner.restore(str(run.exp_dir), trainable=trainable, resume_unfinished=True, resume_errored=True,
                                  param_space=run.base_config)

    try:
        return restore(tuning_trainable(run))
    except ValueError as err:
        if "identifier 'PGU'" not in str(err) and "expected 'PGU'" not in str(err):
            raise
        from pgu_rllib.rllib.algorithm import PGU

        return restore(PGU)


def new_tuner(run: SearchRun, n: int):
    from ray import tune

    from pgu_rllib.service._tune_hooks import (OBJECTIVE, BudgetOrFinished, RecordTrials, ResumableOptunaSearch,
                                               TrialSpace, short_dirname)

    searcher = ResumableOptunaSearch(space=TrialSpace(run.space, run.seeds.tuning_base, run.seeds_per_trial),
                                     metric=OBJECTIVE, mode="max", sampler=make_sampler(run), study_name=run.name,
                                     storage=optuna_storage(run.registry.url))
    searcher.pgu_search_id, searcher.pgu_budget, searcher.pgu_trials = run.search_id, run.budget, run.trials
    trainable = tuning_trainable(run)
    keys_ = {"seed"} | ({SEEDS} if run.seeds_per_trial > 1 else set())  # with each trial's active space keys
    finished = finished_trials(run)
    scheduler = make_scheduler(run)
    if run.scheduler:  # a population: its first draws from the space, then the scheduler explores
        from ray.tune.search.basic_variant import BasicVariantGenerator

        searcher = BasicVariantGenerator(points_to_evaluate=first_draws(run, n))
        scheduler = make_population_scheduler(run)
        keys_ |= set(run.space.mutable) | {"pgu_schedule"}
    return tune.Tuner(
        trainable, param_space=run.base_config,
        tune_config=tune.TuneConfig(metric=OBJECTIVE, mode="max", search_alg=searcher, scheduler=scheduler,
                                    num_samples=n, max_concurrent_trials=min(run.max_concurrent, n),
                                    trial_dirname_creator=short_dirname,
                                    reuse_actors=reuse_actors(run)),
        run_config=tune.RunConfig(
            name=run.exp_dir.name if finished == 0 else f"{run.exp_dir.name}-more{finished}",
            storage_path=str(run.exp_dir.parent), stop=BudgetOrFinished(run.budget, run.search_id), verbose=0,
            callbacks=[*trial_loggers(), RecordTrials(run.search_id, keys_, run.trials, run.budget, run.label, space=run.space.params,
                                    planned_steps=run.tuning_env_steps or run.trials * run.seeds_per_trial * run.budget,
                                    schedules=make_schedule_reader(run) if run.scheduler else None),
                       *([make_tracker(run.tracking, run.name, run.space.params, keys_, run.tracking_uri)]
                         if run.tracking else [])],
            # a trial whose worker dies (an infrastructure fault) is re-run from its start, twice at most;
            # an exception its own code raised fails it at once (accel.tune_retry)
            failure_config=tune.FailureConfig(max_failures=FAILURE_RETRIES),
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False)))


def top_candidates(trials: list[dict], top_k: int, budget: int) -> list[dict]:
    """Top-k distinct configurations: trials that ran the full budget first (by score), then
    trials ASHA stopped early (by score), since an early score is not comparable to a full one."""
    scored = [t for t in trials if t["score"] is not None and math.isfinite(t["score"]) and t["status"] != "error"]
    pool = sorted(scored, key=lambda t: (t["env_steps"] < budget, -t["score"]))
    out, seen = [], set()
    for t in pool:
        params = {k: v for k, v in t["params"].items() if k not in ("seed", SEEDS)}
        key = json.dumps(params, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append({"params": params, "tuning_score": t["score"], "tune_trial_id": t["tune_trial_id"]})
        if len(out) == top_k:
            break
    return out


class _Stage:
    """One phase's runs: the stored rows a resume reuses (same seed and configuration hash: resolved config,
    budget, evaluation protocol), the jobs left to run as Tune configs, and the phase's wall time."""

    def __init__(self, run: SearchRun, phase: Phase, jobs: list[tuple[int, dict, int]]):
        from pgu_rllib.service._tune_hooks import config_hash

        self.run, self.phase, self.t0, self.t1 = run, phase, None, None
        run.phase = phase.value
        protocol = run.task.protocol(run.objective)
        self.hashes = {(i, s): config_hash({**run.base_config, **params}, run.budget, protocol) for i, params, s in jobs}
        stored = {(e["candidate"], e["seed"]): e for e in run.registry.evaluations(run.search_id, phase)}
        self.done = {key for key, e in stored.items() if key in self.hashes and e["config_hash"] == self.hashes[key]}
        stale = sorted(key for key in self.hashes if key in stored and key not in self.done)
        todo = [(i, params, s) for i, params, s in jobs if (i, s) not in self.done]
        run.progress(f"{run.label} {phase.value}: {plural(len(jobs), 'run')} of {run.budget:,} env steps "
                     f"({len(jobs) - len(todo)} already stored), seeds {sorted({s for _, _, s in jobs})}")
        if stale:
            run.progress(f"{run.label} {phase.value}: {plural(len(stale), 'stored run')} ran another configuration "
                         f"(candidate, seed {stale}); re-running them")
        policies = run.exp_dir / "policies" / phase.value
        self.configs = [{"phase": phase.value, "candidate": i, "seed": s, "params": params, "task": run.task,
                         "budget": run.budget, "config": {**run.base_config, **params, "seed": s},
                         "config_hash": self.hashes[(i, s)],
                         "policy_path": str(policies / f"c{i}-s{s}-{self.hashes[(i, s)]}.npz")} for i, params, s in todo]

    def rows(self) -> list[dict]:
        return [r for r in self.run.registry.evaluations(self.run.search_id, self.phase)
                if self.hashes.get((r["candidate"], r["seed"])) == r["config_hash"]]

    def missing(self) -> list[tuple[int, int]]:
        current = {(r["candidate"], r["seed"]) for r in self.rows()}
        return [key for key in self.hashes if key not in current]

    def record_timing(self) -> None:
        """The phase's timing row: wall time from its first run to its last, and the env steps of the runs
        this attempt added (an interrupted attempt's too)."""
        if self.t0 is None:
            return
        new = [r for r in self.rows() if (r["candidate"], r["seed"]) not in self.done]
        self.run.registry.add_timing(self.run.name, self.phase.value, wall_s=(self.t1 or time.time()) - self.t0,
                                     env_steps=sum(r["curve"][-1][0] for r in new if r["curve"]),
                                     eval_env_steps=sum(r["eval_env_steps"] or 0 for r in new))


def run_phase(run: SearchRun, phase: Phase, jobs: list[tuple[int, dict, int]], then=None) -> list[list[dict]]:
    """Train each (candidate, params, seed) job to the full budget and score it; rows are written as each
    run finishes. A stored row is reused only when its seed and configuration hash match the job's; anything
    else is re-run and replaced. ``then``, if given, is ``(next_phase, jobs_of)``: once every job of
    ``phase`` has its row, ``jobs_of(rows)`` gives the next phase's jobs, run in the same Tune run
    (``PhaseQueue``: the worker goes on from one phase to the next). Returns each phase's rows for its jobs."""
    from ray import tune

    from pgu_rllib.service._tune_hooks import PhaseQueue, RecordEvaluations, short_dirname

    stages = [_Stage(run, phase, jobs)]

    def next_stage():
        if then is None or stages[0].missing():
            return None
        stages.append(_Stage(run, then[0], then[1](stages[0].rows())))
        return stages[-1]

    first = stages[0] if stages[0].configs else next_stage()
    pending = next_stage if then is not None and first is stages[0] else None  # the next phase is yet to come
    if first is not None and first.configs:
        recorder = RecordEvaluations(run.search_id, run.label, run.budget)
        queue = PhaseQueue(first, pending, recorder)
        if run.population > 1:
            from pgu_rllib.service._population import PopulationEvaluationRun

            trainable = PopulationEvaluationRun
        else:
            trainable = tune.with_resources(EvaluationRun, {"cpu": 1, "gpu": run.gpus_per_trial})
        names = "-".join([first.phase.value] + ([then[0].value] if pending else []))
        tuner = tune.Tuner(
            trainable, param_space={},
            tune_config=tune.TuneConfig(search_alg=queue, num_samples=-1, max_concurrent_trials=run.max_concurrent,
                                        trial_dirname_creator=short_dirname, reuse_actors=reuse_actors(run)),
            run_config=tune.RunConfig(name=f"{run.exp_dir.name}-{names}-{int(time.time())}",
                                      storage_path=str(run.exp_dir.parent), verbose=0,
                                      callbacks=[*trial_loggers(), recorder],
                                      failure_config=tune.FailureConfig(max_failures=FAILURE_RETRIES),
                                      checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False)))
        try:
            grid = tuner.fit()
        finally:
            for stage in stages:
                stage.record_timing()
        for stage in stages:
            if stage.missing():
                errors = [r.error for r in grid if r.error is not None  # a run that failed to start has no config
                          and (not r.config or r.config["job"]["phase"] == stage.phase.value)]
                if errors:
                    raise SearchFailed(f"{len(errors)} {stage.phase.value} run(s) failed: "
                                       f"{str(errors[0]).splitlines()[0]}")
                raise SearchInterrupted(run.name, stage.phase.value)
        if then is not None and len(stages) == 1:  # the fit ended before the next phase began
            raise SearchInterrupted(run.name, then[0].value)
    return [stage.rows() for stage in stages]


def selection_table(candidates: list[dict], selection: list[dict]) -> list[dict]:
    table = []
    for i, cand in enumerate(candidates):
        rows = sorted((e for e in selection if e["candidate"] == i), key=lambda e: e["seed"])
        scores = [e["score"] for e in rows]
        table.append({**cand, "rank": i, "selection_scores": scores, "selection_seeds": [e["seed"] for e in rows],
                      "selection_mean": summarize(scores)["mean"]})
    return table
