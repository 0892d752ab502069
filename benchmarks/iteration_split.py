"""Where a 16-env iteration's time goes: ``pgu train``'s sampler and learner, part by part, beside
the 16-env minimal PyTorch loop and SB3 PPO (issue 15's profile).

Protocol: HalfCheetah-v5, the ``ppo`` preset's MuJoCo recipe (16 envs x 128 steps = 2048 env
steps per iteration, minibatch 64, 10 epochs, 64-64 tanh), torch with one thread. For pgu, one
process builds the EnvRunner and the Learner that ``pgu train`` builds and runs ``--iters``
iterations of ``sample`` + ``update``, with wall-clock timers around the parts below (a timer costs
about a microsecond; the parts are measured inclusive and the rest is what is left):

* sampling: the vector env's ``step`` (gymnasium's ``SyncVectorEnv`` of 16 recipe envs), the
  policy's forward pass, the env-to-module connectors (observation filter, batching), the
  module-to-env connectors (action sampling, unsquashing), and the rest (RLlib's episode
  bookkeeping, callbacks, the sampling loop);
* update: the learner connector (GAE, batch building), cutting minibatches, the forward pass,
  the loss (PGU terms), ``backward``, the optimiser step (clip + fused Adam), and the rest
  (metrics, Python overhead).

The limit figure: the same 16-env vector env stepped alone with actions drawn beforehand (the
env-only rate), and a bare eager-torch PPO update of the same network and minibatches with no RLlib
and no metrics (the update-only rate, ``bare_update_ms``); their combined bound is one over the sum
of their times, and the last line gives pgu's fraction of it.

The minimal loop and SB3 run as fresh processes (``minimal_ppo.py``, ``sb3_ppo.py``) and report
their own sampling and GAE+update time per iteration. Rounds alternate the three; figures are
medians over rounds, in ms per 2048-step iteration.

    python benchmarks/iteration_split.py --rounds 3 --iters 8
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import statistics
import sys
import time

from trial_throughput import run_json  # benchmarks/ is this script's sys.path[0]

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _timed(acc: collections.Counter, name: str, owner, attr: str) -> None:
    fn = getattr(owner, attr)

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[name] += time.perf_counter() - t0

    setattr(owner, attr, wrapper)


def pgu_split(iters: int) -> dict:
    """ms per iteration of each part of a pgu iteration (sample + update)."""
    import gymnasium as gym
    import torch
    from ray.rllib.connectors.learner.learner_connector_pipeline import (
        LearnerConnectorPipeline,
    )

    from pgu_rllib.rllib import _env_runner, _fast_update
    from pgu_rllib.rllib.learner import PGUTorchLearner
    from pgu_rllib.tasks.training import build_config

    torch.set_num_threads(1)
    acc = collections.Counter()
    cfg = build_config("halfcheetah", "ppo", {}, seed=0, budget=10**7)
    runner = cfg.env_runner_cls(config=cfg)
    learner = cfg.build_learner(env=runner.env)
    module_cls = type(learner.module["default_policy"])
    for name, owner, attr in [
        ("sample: vector env step", gym.vector.SyncVectorEnv, "step"),
        ("sample: policy forward", _env_runner._EvalModeExploration, "__call__"),
        ("sample: env-to-module connectors", _env_runner.UntimedEnvToModulePipeline, "__call__"),
        ("sample: module-to-env connectors", _env_runner.UntimedModuleToEnvPipeline, "__call__"),
        ("update: learner connector (GAE, batch)", LearnerConnectorPipeline, "__call__"),
        ("update: cutting minibatches", _fast_update, "take_rows"),
        ("update: forward pass", module_cls, "_forward_train"),
        ("update: loss (PGU terms)", PGUTorchLearner, "compute_loss_for_module"),
        ("update: backward", torch.Tensor, "backward"),
        ("update: optimiser step (fused Adam)", _fast_update, "fused_adam_step"),
    ]:
        _timed(acc, name, owner, attr)
    runner.sample(num_timesteps=2048)  # warm-up
    acc.clear()
    total = collections.Counter()
    for _ in range(iters):
        t0 = time.perf_counter()
        episodes = runner.sample(num_timesteps=2048)
        t1 = time.perf_counter()
        learner.update(episodes=episodes, timesteps={"num_env_steps_sampled_lifetime": 2048},
                       num_epochs=cfg.num_epochs, minibatch_size=cfg.minibatch_size, shuffle_batch_per_epoch=True)
        runner.set_state({"rl_module": learner.module.get_state(inference_only=True)})
        t2 = time.perf_counter()
        total["sample"] += t1 - t0
        total["update"] += t2 - t1
    # the forward pass inside the loss is part of the loss's time; backward inside the update
    out = {k: 1e3 * v / iters for k, v in acc.items()}
    out["sample: rest (episodes, callbacks, loop)"] = 1e3 * total["sample"] / iters - sum(
        v for k, v in out.items() if k.startswith("sample:"))
    out["update: rest (metrics, Python)"] = 1e3 * total["update"] / iters - sum(
        v for k, v in out.items() if k.startswith("update:"))
    out["sample total"], out["update total"] = 1e3 * total["sample"] / iters, 1e3 * total["update"] / iters
    vector_env = cfg.env_runner_cls(config=cfg).env  # the same 16-env layout, stepped with drawn actions
    vector_env.reset(seed=0)
    actions = [vector_env.action_space.sample() for _ in range(128)]
    t0 = time.perf_counter()
    for action in actions:
        vector_env.step(action)
    out["limit: raw vector env step"] = 1e3 * (time.perf_counter() - t0)
    out["limit: bare torch update"] = bare_update_ms()
    runner.stop()
    return out


def bare_update_ms(minibatches: int = 320) -> float:
    """The update-only limit with eager torch: ``minibatches`` steps of a bare 64-64 tanh actor-critic
    (HalfCheetah's 17 → 6), PPO's clipped loss + value loss on 64 rows, ``backward``, global-norm clip
    and fused Adam, with no RLlib and no metrics; ms per 2048-step iteration (10 epochs × 32)."""
    import torch

    torch.set_num_threads(1)

    def mlp(out):
        return torch.nn.Sequential(torch.nn.Linear(17, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(),
                                   torch.nn.Linear(64, out))

    actor, critic, log_std = mlp(6), mlp(1), torch.nn.Parameter(torch.zeros(6))
    params = [*actor.parameters(), *critic.parameters(), log_std]
    opt = torch.optim.Adam(params, lr=3e-4, fused=True)
    obs, act, old_logp, adv, ret = (torch.randn(2048, 17), torch.randn(2048, 6), torch.randn(2048),
                                    torch.randn(2048), torch.randn(2048))

    def step(idx):
        dist = torch.distributions.Normal(actor(obs[idx]), log_std.exp())
        ratio = (dist.log_prob(act[idx]).sum(-1) - old_logp[idx]).exp()
        pg = -torch.min(ratio * adv[idx], ratio.clamp(0.8, 1.2) * adv[idx]).mean()
        loss = pg + 0.5 * ((critic(obs[idx]).squeeze(-1) - ret[idx]) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.5, foreach=True)
        opt.step()

    for i in range(20):
        step(torch.randint(0, 2048, (64,)))
    idxs = [torch.randint(0, 2048, (64,)) for _ in range(minibatches)]
    t0 = time.perf_counter()
    for idx in idxs:
        step(idx)
    return 1e3 * (time.perf_counter() - t0) * 320 / minibatches


def run_split(name: str, cmd: list[str]) -> dict:
    """ms per iteration of each part, from one fresh process of ``cmd`` (its last stdout line is JSON)."""
    row = run_json(cmd)
    if name == "pgu":
        return {k: v for k, v in row.items() if k != "process_wall_s"}
    return {"sample total": 1e3 * row["sample_s_per_iter"], "update total": 1e3 * row["gae_and_update_s_per_iter"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=8)
    args = ap.parse_args()
    steps = str(2048 * (args.iters + 1))
    minimal = [sys.executable, "benchmarks/minimal_ppo.py", "--env", "HalfCheetah-v5", "--env-steps", steps,
               "--num-envs", "16"]
    sb3 = [sys.executable, "benchmarks/sb3_ppo.py", "--env", "HalfCheetah-v5", "--env-steps", steps, "--num-envs", "16"]
    here = [sys.executable, __file__, "--pgu-only", "--iters", str(args.iters)]
    rows = {"pgu": [], "minimal 16 envs": [], "sb3 16 envs": []}
    for r in range(args.rounds):
        for name, cmd in [("pgu", here), ("minimal 16 envs", minimal), ("sb3 16 envs", sb3)][::1 if r % 2 == 0 else -1]:
            rows[name].append(run_split(name, cmd))
            print(f"[round {r}] {name}: sample {rows[name][-1]['sample total']:.0f} ms, "
                  f"update {rows[name][-1]['update total']:.0f} ms", file=sys.stderr, flush=True)
    med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in rows.items()}
    print(f"# iteration_split  HalfCheetah-v5  2048 env steps/iteration  rounds={args.rounds}  iters={args.iters}  "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'part (ms per iteration)':<44}{'pgu':>8}{'minimal16':>11}{'sb3-16':>9}")
    for key in med["pgu"]:
        if key.endswith("total") or key.startswith("limit"):
            continue
        print(f"{key:<44}{med['pgu'][key]:>8.1f}")
    for key in ("sample total", "update total"):
        print(f"{key:<44}" + "".join(f"{med[n][key]:>{w}.1f}" for n, w in
                                     (("pgu", 8), ("minimal 16 envs", 11), ("sb3 16 envs", 9))))
    print(f"{'iteration':<44}" + "".join(f"{med[n]['sample total'] + med[n]['update total']:>{w}.1f}" for n, w in
                                         (("pgu", 8), ("minimal 16 envs", 11), ("sb3 16 envs", 9))))
    env_ms, upd_ms = med["pgu"]["limit: raw vector env step"], med["pgu"]["limit: bare torch update"]
    pgu_ms = med["pgu"]["sample total"] + med["pgu"]["update total"]
    print(f"limit: env-only {2048e3 / env_ms:.0f} env steps/s ({env_ms:.1f} ms), update-only (bare torch) "
          f"{2048e3 / upd_ms:.0f} env steps/s ({upd_ms:.1f} ms), combined bound {2048e3 / (env_ms + upd_ms):.0f} env "
          f"steps/s; pgu's sample + update {2048e3 / pgu_ms:.0f} env steps/s = {(env_ms + upd_ms) / pgu_ms:.2f} of the bound")


if __name__ == "__main__":
    if "--pgu-only" in sys.argv:
        iters = int(sys.argv[sys.argv.index("--iters") + 1])
        print(json.dumps(pgu_split(iters)))
    else:
        main()
