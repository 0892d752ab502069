"""``PGU`` on a real local Ray: two ``train()`` iterations per form, RLlib's own result
checks, our learner metrics and the always-present objective."""
import math

import pytest
from ray.rllib.utils.test_utils import check_train_results_new_api_stack

from pgu_rllib import PGU, PGUConfig
from pgu_rllib.tasks.training import build_config


@pytest.mark.parametrize("form", ["Q", "V", "P"])
def test_two_iterations_per_form(ray_local, form):
    config = build_config("cartpole", "mla", {"form": form, "delta_r": "q", "train_batch_size_per_learner": 256,
                                              "num_epochs": 2}, seed=1)
    assert isinstance(config, PGUConfig)
    algo = config.build_algo()
    try:
        assert isinstance(algo, PGU)
        for i in range(2):
            result = algo.train()
            check_train_results_new_api_stack(result)
            learner = result["learners"]["default_policy"]
            for key in ("delta_o_mean", "abs_f_mean", "f_zero_frac", "surrogate_loss"):
                assert math.isfinite(float(learner[key])), key
            assert math.isfinite(result["pgu"]["objective"])
        assert result["num_env_steps_sampled_lifetime"] >= 512
        assert result["pgu"]["episodes_total"] > 0
        assert result["pgu"]["episode_return_mean"] > 0
    finally:
        algo.stop()


def test_tune_style_dict_merges_into_pgu_config(ray_local):
    """Tune hands the trainable a dict: the update-rule keys must survive and be validated."""
    base = build_config("cartpole", "ppo", {"train_batch_size_per_learner": 256}).to_dict()
    algo = PGU(config={**base, "form": "P", "delta_r": "q", "scale": "sil"})
    try:
        assert (algo.config.form, algo.config.delta_r, algo.config.scale) == ("P", "q", "sil")
    finally:
        algo.stop()
    with pytest.raises(ValueError, match="scale='bogus' is not allowed"):
        PGU(config={**base, "scale": "bogus"})
    with pytest.raises(ValueError, match="form='P' with delta_r='advantage' is not PGPB"):
        PGU(config={**base, "form": "P"})  # a Tune dict cannot smuggle in a combination outside the family


def test_a_restored_run_keeps_the_objective_history(ray_local, tmp_path):
    """A trial that Tune pauses and restores (PBT/PB2 at every perturbation) scores the area over
    all its iterations, not only those since the restore: the history is in the checkpoint."""
    config = build_config("bandit", preset="pgpb", overrides={"delta_r": "q"}, budget=1024)
    algo = config.build_algo()
    greedy = [algo.train()["pgu"]["greedy_expected_reward"] for _ in range(3)]
    algo.save_to_path(tmp_path / "ckpt")
    algo.stop()

    restored = config.build_algo()
    restored.restore_from_path(tmp_path / "ckpt")
    result = restored.train()
    restored.stop()
    greedy.append(result["pgu"]["greedy_expected_reward"])
    assert greedy[3] > greedy[0]  # it learned, so the area differs from the last value
    assert result["pgu"]["objective"] == pytest.approx(sum(greedy) / 4)
