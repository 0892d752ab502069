"""Learner overhead: time of one minibatch update, PGU vs RLlib's PPOTorchLearner.

Protocol: one process, torch 1 thread. One batch of 2048 env steps is sampled
from HalfCheetah-v5 (Gaussian, 64-64 tanh) or CartPole-v1 and run through
PPO's learner connector once (GAE). Every learner starts from the same weights
and updates on the same 64-row minibatch (forward, loss, backward, global-norm
clip, Adam step). Variants are interleaved round-robin: each round times
``--updates`` consecutive updates of each variant, in a shuffled order; the
figure is the median over rounds of the per-update time. Ratio = PGU / PPO. Both wall-clock
and thread CPU time (``time.thread_time``; torch runs on this one thread) are reported: CPU
time is robust to other processes on a shared 2-core machine, wall time is what a user sees.

    python benchmarks/learner_overhead.py --env HalfCheetah-v5 --rounds 30

``--steps`` measures the ``step`` axis instead (issue 17): the ``ppo`` surrogate (form V,
``ppo_clip``) with ``step`` = ``first_order``, ``natural``, ``trust_region``, ``optimistic``, ``optimistic_sgd`` and ``optimistic_adam``
at their default parameters (10 CG iterations, damping 0.1, ≤ 10 line-search halvings); the ratio
is each over ``first_order``.

    python benchmarks/learner_overhead.py --steps --rounds 20
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import time

import gymnasium as gym
import torch
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

from pgu_rllib import PGUConfig

VARIANTS = [(form, scale) for form in "QVP" for scale in ("ppo_clip", "mla", "ml")]
SCALE_KEYS = {"ppo_clip": {"epsilon": 0.2}, "mla": {"alpha_o": 1.0, "alpha_r": 1.0}, "ml": {}}
STEPS = ("first_order", "natural", "trust_region", "optimistic", "optimistic_sgd", "optimistic_adam")


def _recipe(config, env_id):
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    return (config.environment(env_id).env_runners(num_env_runners=0).debugging(seed=0)
            .training(train_batch_size_per_learner=2048, minibatch_size=64, num_epochs=10, lr=3e-4,
                      clip_param=0.2, use_kl_loss=False, grad_clip=0.5, vf_clip_param=float("inf"))
            .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[64, 64], fcnet_activation="tanh",
                                                       free_log_std=env_id != "CartPole-v1")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="HalfCheetah-v5")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--updates", type=int, default=20)
    ap.add_argument("--steps", action="store_true", help="compare the step axis instead of forms and scales")
    args = ap.parse_args()
    torch.set_num_threads(1)
    env = gym.make(args.env)

    ppo_cfg = _recipe(PPOConfig(), args.env)
    learners = {"ppo (RLlib)": ppo_cfg.build_learner(env=env)}
    if args.steps:
        for step in STEPS:
            cfg = _recipe(PGUConfig(), args.env).training(form="V", scale="ppo_clip", epsilon=0.2, step=step)
            learners[f"pgu step={step}"] = cfg.build_learner(env=env)
        # issue 22: the hypergradient of the optimism, and GRPO's reference KL (one more forward pass)
        for name, extra in (("step=optimistic_sgd adaptive", {"step": "optimistic_sgd", "optimism_adaptive": True}),
                            ("first_order + ref KL", {"ref_kl_coeff": 0.04})):
            cfg = _recipe(PGUConfig(), args.env).training(form="V", scale="ppo_clip", epsilon=0.2, **extra)
            learners[f"pgu {name}"] = cfg.build_learner(env=env)
    else:
        for form, scale in VARIANTS:
            pgpb = {"delta_r": "q", "normalize_delta_r": False} if form == "P" else {}  # spec §3: P is PGPB
            cfg = _recipe(PGUConfig(), args.env).training(form=form, scale=scale, **SCALE_KEYS[scale], **pgpb)
            learners[f"pgu {form}/{scale}"] = cfg.build_learner(env=env)
    reference = learners["ppo (RLlib)"]
    weights = reference.get_state(components="rl_module")
    for learner in learners.values():
        learner.set_state(weights)

    runner = SingleAgentEnvRunner(config=ppo_cfg)
    runner.set_state(weights)
    episodes = runner.sample(num_timesteps=2048)
    full = reference._learner_connector(rl_module=reference.module, batch={}, episodes=episodes,
                                        shared_data={}, metrics=reference.metrics)
    minibatch = {mid: {k: v[:64] for k, v in cols.items()} for mid, cols in full.items()}

    times = {name: [] for name in learners}
    cpu = {name: [] for name in learners}
    for name, learner in learners.items():  # warm-up
        for _ in range(5):
            learner._uncompiled_update(minibatch)
    for _ in range(args.rounds):
        order = list(learners)
        random.shuffle(order)
        for name in order:
            learner = learners[name]
            t0, c0 = time.perf_counter(), time.thread_time()
            for _ in range(args.updates):
                learner._uncompiled_update(minibatch)
            times[name].append((time.perf_counter() - t0) / args.updates)
            cpu[name].append((time.thread_time() - c0) / args.updates)

    base_name = "pgu step=first_order" if args.steps else "ppo (RLlib)"
    base = statistics.median(times[base_name])
    base_cpu = statistics.median(cpu[base_name])
    print(f"# learner_overhead  env={args.env}  minibatch=64  rounds={args.rounds}x{args.updates} updates  "
          f"torch threads=1  torch {torch.__version__}  load average {os.getloadavg()[0]:.2f}  "
          f"ratios over: {base_name}")
    print(f"{'variant':<34} {'wall ms/update':>15} {'wall ratio':>11} {'cpu ms/update':>14} {'cpu ratio':>10}")
    worst = worst_cpu = 0.0
    for name in learners:
        med, med_cpu = statistics.median(times[name]), statistics.median(cpu[name])
        ratio, ratio_cpu = med / base, med_cpu / base_cpu
        if name not in (base_name, "ppo (RLlib)"):
            worst, worst_cpu = max(worst, ratio), max(worst_cpu, ratio_cpu)
        print(f"{name:<34} {1e3 * med:>15.3f} {ratio:>11.3f} {1e3 * med_cpu:>14.3f} {ratio_cpu:>10.3f}")
    if not args.steps:
        print(f"worst ratio: wall {worst:.3f}, cpu {worst_cpu:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
