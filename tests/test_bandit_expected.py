"""The exact expected-update integrator of the unit-circle bandit (``envs/bandit_expected``) as the
oracle of the learner: the real ``PGUTorchLearner``'s gradient, averaged over sampled batches at a
fixed θ, equals E[U](θ) within 4 Monte-Carlo standard errors, for every form and several scales
and Δ_R; and the oracle separates the forms by far more than that error."""
import pickle

import numpy as np
import pytest
import torch
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

from pgu_rllib.rllib.accel import internals
from pgu_rllib.tasks.bandit import UnitCircleBandit
from pgu_rllib.tasks.bandit_expected import expected_update, fixed_point, quadrature
from pgu_rllib.tasks.training import build_config

THETA = [0.3, 0.8]
BATCHES, ROWS = 10, 8192
RULES = [("P", "sq", "q", {}), ("V", "sq", "q", {}), ("Q", "sq", "q", {}), ("V", "ml", "q", {}),
         ("P", "mla", "q", {"alpha_o": 1.0, "alpha_r": 1.0}), ("V", "sil", "advantage", {}),
         ("Q", "ppo_clip", "advantage", {"epsilon": 0.2})]


def _config(form, scale, dr, extra):
    return build_config("bandit", "ppo", {"form": form, "scale": scale, "delta_r": dr, **extra, "lr": 1e-9,
                                          "num_epochs": 1, "minibatch_size": None,
                                          "train_batch_size_per_learner": ROWS, "num_envs_per_env_runner": 64},
                        seed=11, budget=ROWS)


@pytest.fixture(scope="module")
def batches():
    """Train batches at θ, as the learner's connector pipeline (GAE over one-step episodes) makes them from
    sampled episodes, pickled. Neither the samples nor the connector's columns depend on the rule: the
    values are the softmax-weighted q of θ, and no rule here has Δ_R 'return' or 'group' (which change the
    pipeline). So each batch goes through the connectors once, not once per rule, and each rule's learner
    updates from its own copy (``update(batch=…)`` runs no connector)."""
    config = _config("V", "sq", "q", {})
    learner = config.build_learner(env=UnitCircleBandit())
    learner.module["default_policy"].theta.data = torch.tensor(THETA)
    runner = SingleAgentEnvRunner(config=config)
    runner.set_state(learner.get_state(components="rl_module"))
    pipeline = internals.learner_connector(learner)
    out = []
    for _ in range(BATCHES):
        columns = pipeline(rl_module=learner.module, batch={}, episodes=runner.sample(num_timesteps=ROWS),
                           shared_data={}, metrics=learner.metrics)
        out.append(pickle.dumps(MultiAgentBatch({mid: SampleBatch(c) for mid, c in columns.items()}, ROWS)))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("form,scale,dr,extra", RULES)
def test_learner_expected_update_matches_the_exact_integrator(batches, form, scale, dr, extra):
    config = _config(form, scale, dr, extra)
    learner = config.build_learner(env=UnitCircleBandit())
    module = learner.module["default_policy"]
    grads = []
    for batch in batches:
        module.theta.data = torch.tensor(THETA)
        learner.update(batch=pickle.loads(batch), timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: ROWS}, num_epochs=1,
                       minibatch_size=None)
        grads.append(-module.theta.grad.double().numpy())  # the loss gradient is −(batch mean of U)
    grads = np.array(grads)
    mean, se = grads.mean(0), grads.std(0, ddof=1) / np.sqrt(BATCHES)
    exact = expected_update(THETA, config.update_rule())
    assert np.all(np.abs(mean - exact) <= 4 * se + 1e-5), (mean, exact, se)
    assert np.all(se < 0.05 * np.abs(exact).max())  # the check has power: errors are small next to E[U]


def test_the_forms_differ_by_far_more_than_the_sampling_error():
    from pgu_rllib.core.update_rule import UpdateRule

    u = {f: expected_update(THETA, UpdateRule(form=f, scale="sq", delta_r="q", parameterisation="logit")) for f in "QVP"}
    assert min(np.abs(u["V"] - u["P"]).max(), np.abs(u["Q"] - u["V"]).max()) > 0.01


def test_quadrature_has_converged_and_pgpb_has_a_stable_fixed_point():
    from pgu_rllib.core.update_rule import UpdateRule

    rule = UpdateRule(form="P", scale="sq", delta_r="q", parameterisation="logit")
    a, b = expected_update(THETA, rule, grid=quadrature(24)), expected_update(THETA, rule, grid=quadrature(48))
    assert np.abs(a - b).max() < 1e-8
    fp = fixed_point(rule)
    assert fp["converged"] and all(np.real(fp["jacobian_eigenvalues"]) < 0)
    assert fp["theta"][0] == pytest.approx(fp["theta"][1], abs=1e-6) and 2.3 < fp["theta"][0] < 2.7
    assert 0.70 < fp["greedy"] < 0.72 < 0.7538  # PGPB's fixed point is not the optimal θ* = (1, 1)
