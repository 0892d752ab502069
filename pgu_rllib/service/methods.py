"""The search methods by name: Optuna's samplers, the pruners (ASHA, Wilcoxon, none) and the population
schedulers (PBT, PB2), and the trackers. The CLI reads its choices from ``SAMPLERS``, ``PRUNERS``,
``SCHEDULERS`` and ``TRACKERS``; the module imports Ray and Optuna only inside the factories, so reading the names costs nothing."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI reads the names at start-up: no registry (SQLAlchemy) import for that
    from pgu_rllib.service.run import SearchRun


def finished_trials(run: SearchRun) -> int:
    from pgu_rllib.service.run import finished_trials as count

    return count(run)


PRUNERS = ("asha", "wilcoxon", "none")


SAMPLERS = ("tpe", "random", "cmaes", "gp")


SCHEDULERS = (None, "pbt", "pb2")


TRACKERS = ("mlflow", "wandb")  # --tracking: Tune's logger callbacks (``make_tracker``)


def make_sampler(run: SearchRun):
    import optuna

    startup = min(10, max(3, run.trials // 3))
    seed = run.seed + finished_trials(run)  # a continued search does not replay the same draws
    return {"tpe": lambda: optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup),
            "random": lambda: optuna.samplers.RandomSampler(seed=seed),
            "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=startup,
                                                          warn_independent_sampling=False),
            "gp": lambda: optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)}[run.sampler]()


def make_scheduler(run: SearchRun):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from pgu_rllib.service._schedulers import WilcoxonScheduler
    from pgu_rllib.service._tune_hooks import STEPS

    # First rung: a ninth of the budget, but never before 3 training iterations (one iteration's
    # objective is noise: on the bandit it is the initial policy's score for every trial).
    grace = min(max(run.budget // 9, 3 * int(run.base_config.get("_train_batch_size_per_learner") or 1)), run.budget)
    if run.pruner == "asha":
        return ASHAScheduler(time_attr=STEPS, max_t=run.budget, grace_period=grace, reduction_factor=3)
    if run.pruner == "wilcoxon":
        return WilcoxonScheduler(grace_steps=grace)
    return FIFOScheduler()


def make_population_scheduler(run: SearchRun):
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.schedulers.pb2 import PB2

    from pgu_rllib.service._schedulers import clip_to_bounds
    from pgu_rllib.service._tune_hooks import STEPS

    batch = int(run.base_config.get("_train_batch_size_per_learner") or 1)
    # every tenth of the budget in whole iterations, and never more often than every two: each perturbation
    # point pauses and restores every member (the population is synchronous)
    interval = max(2 * batch, (run.budget // 10) // batch * batch)
    bounds = {k: v for k, v in run.space.mutable.items() if not isinstance(v, dict)}
    if run.scheduler == "pb2":
        return PB2(time_attr=STEPS, perturbation_interval=interval, hyperparam_bounds=bounds, quantile_fraction=0.25,
                   log_config=True, require_attrs=True, synch=True)
    mutations = {k: (v["choice"] if isinstance(v, dict) else tune.uniform(*v)) for k, v in run.space.mutable.items()}
    return PopulationBasedTraining(time_attr=STEPS, perturbation_interval=interval, hyperparam_mutations=mutations,
                                   quantile_fraction=0.25, resample_probability=0.25, log_config=True,
                                   custom_explore_fn=clip_to_bounds(bounds), require_attrs=True, synch=True)


def make_schedule_reader(run: SearchRun):
    from pgu_rllib.service._schedulers import ScheduleReader

    return ScheduleReader(str(run.exp_dir), sorted(run.space.mutable),
                          int(run.base_config.get("_train_batch_size_per_learner") or 1))


def first_draws(run: SearchRun, n: int) -> list[dict]:
    """``n`` configurations drawn from the space by the search's sampler (seeded), with the tuning seeds."""
    import optuna

    from pgu_rllib.service._tune_hooks import TrialSpace

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=make_sampler(run), direction="maximize")
    space = TrialSpace(run.space, run.seeds.tuning_base)
    points = []
    for i in range(n):
        trial = study.ask()
        constants = space(trial)  # suggests the parameters first
        point = {**trial.params, **constants}
        point["seed"] = run.seeds.tuning(1, start=finished_trials(run) + i)[0]
        for key, spec in run.space.mutable.items():  # a mutable key starts inside its bounds
            if key not in point:
                point[key] = (trial.suggest_categorical(key, spec["choice"]) if isinstance(spec, dict)
                              else trial.suggest_float(key, *spec))
        study.tell(trial, 0.0)
        points.append(point)
    return points


def make_tracker(kind: str, name: str, space: dict, keys_: set, uri: str | None = None):
    """Tune's MLflow or W&B logger for a search's tuning trials (``--tracking``): each trial is a run named by
    its trial id, with the keys the trial sampled as parameters and the objective, the training and
    evaluation returns and the env steps as metrics per iteration. Optional extras: ``pgu-rllib[mlflow]``,
    ``pgu-rllib[wandb]``."""
    import math

    from pgu_rllib.rllib import keys
    from pgu_rllib.service._tune_hooks import STEPS, sampled_params
    from pgu_rllib.service.spaces import active_keys

    def params(trial):
        return {k: v for k, v in sampled_params(trial.config, keys_ | active_keys(space, trial.config)).items()
                if not isinstance(v, (dict, list))}

    def metrics(result):
        pgu = result.get(keys.PGU, {})
        out = {k: pgu.get(k) for k in (keys.OBJECTIVE, keys.EPISODE_RETURN_MEAN, keys.EVAL_RETURN_MEAN)}
        out[STEPS] = result.get(STEPS)
        return {k: float(v) for k, v in out.items() if isinstance(v, (int, float)) and math.isfinite(v)}

    if kind == "mlflow":
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        class Tracker(MLflowLoggerCallback):
            def log_trial_start(self, trial):
                runs = self.__dict__.setdefault("pgu_runs", {})
                if trial.trial_id not in runs:
                    run = self.mlflow_util.start_run(tags={**(self.tags or {}), "trial_name": str(trial)},
                                                     run_name=trial.trial_id)
                    runs[trial.trial_id] = run.info.run_id
                self.mlflow_util.log_params(run_id=runs[trial.trial_id], params_to_log=params(trial))

            def log_trial_result(self, iteration, trial, result):
                self.mlflow_util.log_metrics(run_id=self.pgu_runs[trial.trial_id], metrics_to_log=metrics(result),
                                             step=int(result.get(STEPS, iteration)))

            def log_trial_end(self, trial, failed=False):
                self.mlflow_util.end_run(status="FAILED" if failed else "FINISHED", run_id=self.pgu_runs[trial.trial_id])

        return Tracker(tracking_uri=uri, experiment_name=name)
    from ray.air.integrations.wandb import WandbLoggerCallback

    return WandbLoggerCallback(project=name, excludes=["config"])
