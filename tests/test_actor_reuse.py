"""Tune's actor reuse (``reuse_actors=True``): a worker that trained one trial and is reset to the next trains
the next exactly as a fresh worker would: same objective each iteration, same weights, same env steps.
Tuning (``PGUTrial``), multi-seed trials (``MultiSeedPGU``) and the selection and test runs
(``EvaluationRun``) all reuse their workers, so this is what makes a search's numbers independent of which
worker ran which trial."""
import numpy as np
import pytest

from pgu_rllib.service._trainables import SEEDS, MultiSeedPGU, PGUTrial
from pgu_rllib.tasks.training import build_config

BASE = {"train_batch_size_per_learner": 256, "minibatch_size": 64, "num_epochs": 2}


def weights(algo) -> list[np.ndarray]:
    return [p.detach().cpu().numpy().copy() for p in algo.get_module().parameters()]


def run(trainable, iterations: int = 2) -> list[float]:
    return [float(trainable.train()["pgu"]["objective"]) for _ in range(iterations)]


@pytest.mark.parametrize("task", ["cartpole", "bandit"])
def test_a_reset_worker_trains_the_next_trial_like_a_fresh_one(ray_local, task):
    first = build_config(task, "mla", BASE, seed=3).to_dict()
    second = build_config(task, "ppo", {**BASE, "lr": 1e-3}, seed=7).to_dict()

    reused = PGUTrial(config=first)
    try:
        run(reused)
        assert reused.reset(dict(second))
        after_reset = run(reused)
        reused_weights = weights(reused.algo)
        reused_steps = reused.algo.metrics.peek(("env_runners", "num_env_steps_sampled_lifetime"))
        assert reused.training_iteration == 2  # Tune's per-trial counters start again
    finally:
        reused.stop()
    fresh = PGUTrial(config=dict(second))
    try:
        assert run(fresh) == after_reset
        assert fresh.algo.metrics.peek(("env_runners", "num_env_steps_sampled_lifetime")) == reused_steps
        for a, b in zip(weights(fresh.algo), reused_weights, strict=True):
            np.testing.assert_array_equal(a, b)
    finally:
        fresh.stop()


def test_a_reset_multi_seed_trial_trains_its_new_seeds_like_a_fresh_one(ray_local):
    base = build_config("bandit", "ppo", BASE).to_dict()
    reused = MultiSeedPGU(config={**base, SEEDS: [1, 2]})
    try:
        run(reused, 1)
        assert reused.reset({**base, SEEDS: [5, 6], "lr": 1e-3})
        after_reset = run(reused)
    finally:
        reused.stop()
    fresh = MultiSeedPGU(config={**base, SEEDS: [5, 6], "lr": 1e-3})
    try:
        assert run(fresh) == after_reset
    finally:
        fresh.stop()
