"""Result keys: where PGU puts its numbers in RLlib's and Tune's results (the one place they are
spelled).

``result[PGU]`` is the dict the callbacks add to every training result; Tune flattens it to
``"pgu/<key>"``. ``learners/<module>/<LEARNER_METRICS>`` are the learner's own metrics.
"""
PGU = "pgu"  # result["pgu"]: the callbacks' dict
OBJECTIVE = "objective"  # always present, never NaN: what Tune, Optuna and ASHA see
EPISODE_RETURN_MEAN = "episode_return_mean"  # mean raw return of the last 10 finished episodes (or None)
EVAL_RETURN_MEAN = "eval_return_mean"  # the evaluator's mean (objective "eval": the latest periodic one)
EVAL_ENV_STEPS = "eval_env_steps"  # env steps spent by evaluations, apart from training's
EPISODES_TOTAL = "episodes_total"
EPISODES_THIS_ITER = "episodes_this_iter"
NODE_ID = "node_id"
EPISODE_RETURNS = "pgu_episode_returns"  # env-runner metric: each finished episode's raw return
TUNE_OBJECTIVE = f"{PGU}/{OBJECTIVE}"  # the flattened key Tune and OptunaSearch use
ENV_STEPS = "num_env_steps_sampled_lifetime"  # RLlib's top-level env-step count
RETURNS = "pgu_returns"  # learner batch column: Monte-Carlo returns (delta_r="return")
GROUP = "pgu_group_relative"  # learner batch column: returns standardised within groups of a state (delta_r="group")

# learners/<module>/... (the learner's PGU metrics)
DELTA_O_MEAN = "delta_o_mean"
DELTA_O_ABS_MAX = "delta_o_abs_max"  # max over the update's minibatches
ABS_F_MEAN = "abs_f_mean"
F_ZERO_FRAC = "f_zero_frac"
SURROGATE_LOSS = "surrogate_loss"
STEP_KL = "step_kl"  # natural / trust_region: KL(π_old‖π_new) of the accepted step on the minibatch
OPTIMISM_C = "optimism_c"  # optimistic_sgd: the coefficient c in effect (adapted with optimism_adaptive)
REF_KL = "ref_kl"  # GRPO: the k3 estimate of KL(π_θ‖π_ref), masked mean over the minibatch
REF_KL_EXACT = "ref_kl_exact"  # GRPO: KL(π_θ(·|s)‖π_ref(·|s)) of the two distributions, masked mean over states
LINE_SEARCH_BACKTRACKS = "line_search_backtracks"  # trust_region: j of the accepted β^j step (−1: none)
# logged as rule_<key>: the values in effect (with every registered scale's parameters: learner.py)
LOGGED_RULE_VALUES = ("max_kl", "optimism", "ref_kl_coeff")
LEARNER_METRICS = (DELTA_O_ABS_MAX, DELTA_O_MEAN, ABS_F_MEAN, F_ZERO_FRAC)  # what `pgu train --json` reports
