"""The Tune trainables of a search. Each can be reset to its next run (``reset_config``, Tune's
``reuse_actors``): the next trial or run of a phase starts in the same worker process, so the process start
and the torch/RLlib imports (about 8 s on 2 cores) are paid once per worker, not once per run. A reset
worker trains exactly as a fresh one (``tests/test_actor_reuse.py``).

* ``PGUTrial``: a tuning trial, ``PGU`` on one seed; its results, checkpoints and resources are ``PGU``'s own.
* ``MultiSeedPGU``: a tuning trial that trains k seeds of one configuration in lockstep, in one process
  (one CPU, so k times the trial's time), and reports their mean (the objective), IQM and each seed's
  objective every iteration, so a scheduler acts on the aggregate.
* ``EvaluationRun``: a selection or test run, one configuration on one seed to the full budget, scored.
"""
from __future__ import annotations

import statistics

from ray import tune

from pgu_rllib.rllib import keys

SEEDS = "pgu_seeds"  # a trial's config key: the seeds it trains (seeds_per_trial > 1)
SEED_OBJECTIVES = "seed_objectives"  # result["pgu"][...]: each seed's objective


class _ReusableRun(tune.Trainable):
    """What the three trainables share: RLlib's and Tune's start-up lines silenced in the worker, and Tune's
    ``reuse_actors``: the next run in this process stops what ``setup`` built and builds anew."""

    def __init__(self, *args, **kwargs):
        from pgu_rllib.rllib.ray_session import quiet_logs

        quiet_logs()  # before Tune's own start-up lines
        super().__init__(*args, **kwargs)

    def reset_config(self, new_config: dict) -> bool:
        self.cleanup()
        self.setup(new_config)
        return True


def _build(config: dict):
    """``PGU`` on ``config``, its unused log folder removed."""
    from pgu_rllib.rllib.algorithm import PGU, discard_logdir

    algo = PGU(config=config)
    discard_logdir(algo)
    return algo


class PGUTrial(_ReusableRun):
    """``PGU`` as Tune's trainable, built anew on ``reset_config`` (Tune's ``reuse_actors``). Same seed, same
    numbers: the algorithm seeds every generator it uses when it is built (``tests/test_actor_reuse.py``)."""

    @classmethod
    def default_resource_request(cls, config):
        from pgu_rllib.rllib.algorithm import PGU

        return PGU.default_resource_request(config)

    def setup(self, config: dict) -> None:
        self.algo = _build(config)

    def step(self) -> dict:
        result = self.algo.train()  # the counters Tune keeps per trial (and restores) are this Trainable's own
        for key in ("training_iteration", "timesteps_total", "episodes_total", "done"):
            result.pop(key, None)
        return result

    def save_checkpoint(self, checkpoint_dir: str):
        return self.algo.save_checkpoint(checkpoint_dir)

    def load_checkpoint(self, checkpoint) -> None:
        self.algo.load_checkpoint(checkpoint)

    def cleanup(self) -> None:
        self.algo.stop()


class MultiSeedPGU(_ReusableRun):
    """``PGU`` on every seed of ``config["pgu_seeds"]``; reports ``result["pgu"]`` as PGU does, with
    the objective the mean over seeds."""

    def setup(self, config: dict) -> None:
        base = {k: v for k, v in config.items() if k != SEEDS}
        self.algos = [_build({**base, "seed": int(s)}) for s in config[SEEDS]]

    def step(self) -> dict:
        from pgu_rllib.core.stats import iqm

        results = [algo.train() for algo in self.algos]
        objectives = [float(r[keys.PGU][keys.OBJECTIVE]) for r in results]
        return {keys.PGU: {keys.OBJECTIVE: statistics.fmean(objectives), "objective_iqm": iqm(objectives),
                           SEED_OBJECTIVES: objectives, keys.NODE_ID: results[0][keys.PGU].get(keys.NODE_ID)},
                keys.ENV_STEPS: min(int(r[keys.ENV_STEPS]) for r in results)}

    def cleanup(self) -> None:
        for algo in self.algos:
            algo.stop()


class EvaluationRun(_ReusableRun):
    """Train one configuration on one seed to the full budget, reporting the objective each
    iteration; the last report carries the task's final ``score`` (``Task.score``: the evaluator, or
    the exact metric), and the final policy is stored at the job's ``policy_path`` (episodic tasks)."""

    def setup(self, config: dict) -> None:
        self.job = config["job"]
        self.algo = _build(self.job["config"])

    def step(self) -> dict:
        from pgu_rllib.tasks import get_task

        result = self.algo.train()
        steps = int(result[keys.ENV_STEPS])
        out = {keys.TUNE_OBJECTIVE: result[keys.PGU][keys.OBJECTIVE], keys.ENV_STEPS: steps,
               keys.NODE_ID: result[keys.PGU].get(keys.NODE_ID)}
        if steps >= int(self.job["budget"]):
            score, policy, eval_steps = get_task(self.job["task"]).score(self.algo, result)  # the Task itself
            out.update({"score": score, "done": True, keys.EVAL_ENV_STEPS: eval_steps})
            if policy is not None and self.job.get("policy_path"):
                policy.meta.update(seed=self.job["seed"], env_steps=steps, params=self.job["params"],
                                   config_hash=self.job.get("config_hash"))
                out["policy_path"] = str(policy.save(self.job["policy_path"]))
        return out

    def cleanup(self) -> None:
        self.algo.stop()
