"""Population throughput (issue 26): env steps/s of K members trained in one process, side by side with
one trial and with the env-only rate of the same K×n envs.

Arms, in one run, torch on one thread (so every figure is per core):

* ``population K``: ``PopulationTrainer`` (``pgu_rllib/tasks/population.py``) with K members of the recipe
  below; members differ in lr and cycle through the scales ``ppo_clip``, ``mla`` and ``dpo`` (so every
  scale is computed for every member, as in a search). One warm-up iteration, then ``--iters`` timed ones;
* ``env only K``: the same K×n plain envs, stepped with actions drawn beforehand, in the same Python loop
  with the same resets (no normalisation, no network): the rate no trainer of these envs can pass;
* ``one trial``: ``pgu train --task T --preset ppo --json`` (a real RLlib trial, its own process;
  ``env_steps_per_s`` counts training iterations only), SB3 on the same recipe (``benchmarks/sb3_ppo.py``)
  when the ``baselines`` extra is installed, and, on MuJoCo, ``benchmarks/minimal_ppo.py --num-envs 16``.

Recipes: HalfCheetah-v5 and Hopper-v5 as the MuJoCo recipe (16 envs × 128 steps per member, minibatch 64,
10 epochs, observation and reward normalisation); CartPole-v1 as its recipe (8 envs × 64 steps, minibatch
64, 10 epochs, no normalisation). Rounds alternate the order of the arms.

    python benchmarks/population.py --env HalfCheetah-v5 --ks 1 2 4 8 16 --iters 2 --rounds 2
    python benchmarks/population.py --env Hopper-v5 --ks 1 2 4 8 --iters 2 --rounds 2
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
RECIPES = {  # env id -> (PopulationSpec keywords, pgu task name)
    "HalfCheetah-v5": (dict(num_envs=16, rollout=128, minibatch=64, epochs=10, normalize=True), "halfcheetah"),
    "Hopper-v5": (dict(num_envs=16, rollout=128, minibatch=64, epochs=10, normalize=True), "hopper"),
    "CartPole-v1": (dict(num_envs=8, rollout=64, minibatch=64, epochs=10, normalize=False), "cartpole"),
}


def members(k: int):
    from pgu_rllib.core.population import Member
    from pgu_rllib.core.update_rule import UpdateRule

    rules = [UpdateRule(scale="ppo_clip"), UpdateRule(scale="mla", alpha_o=1.0, alpha_r=0.5),
             UpdateRule(scale="dpo")]
    return [Member(rules[i % 3], lr=3e-4 * (1 + i % 4), grad_clip=0.5, vf_loss_coeff=0.5) for i in range(k)]


def population_rate(env_id: str, k: int, iters: int) -> dict:
    from pgu_rllib.tasks.population import PopulationSpec, PopulationTrainer

    spec = PopulationSpec(env_id, **RECIPES[env_id][0])
    trainer = PopulationTrainer(spec, members(k), seeds=list(range(k)))
    budget = spec.num_envs * spec.rollout * (iters + 1)
    trainer.iterate(budget)  # warm-up: first calls, allocations
    trainer.timing = {"sample_s": 0.0, "update_s": 0.0}
    steps0, t0 = trainer.env_steps, time.perf_counter()
    for _ in range(iters):
        trainer.iterate(budget)
    wall = time.perf_counter() - t0
    steps = trainer.env_steps - steps0
    return {"env_steps_per_s": steps / wall, "sample_s": trainer.timing["sample_s"] / iters,
            "update_s": trainer.timing["update_s"] / iters}


def env_only_rate(env_id: str, k: int, iters: int) -> float:
    """K×n plain envs, actions drawn beforehand, the trainer's step-and-reset loop."""
    from pgu_rllib.tasks.population import PopulationSpec, make_env

    spec = PopulationSpec(env_id, **RECIPES[env_id][0])
    envs = [make_env(env_id) for _ in range(k * spec.num_envs)]
    for i, env in enumerate(envs):
        env.reset(seed=i)
        env.action_space.seed(i)
    steps = spec.rollout * (iters + 1)
    actions = [[env.action_space.sample() for env in envs] for _ in range(steps)]
    t0 = None
    for t in range(steps):
        if t == spec.rollout:  # the first rollout is the warm-up, as for the population
            t0 = time.perf_counter()
        for env, a in zip(envs, actions[t]):
            obs, r, term, trunc, info = env.step(a)
            torch.as_tensor(obs, dtype=torch.float32)
            if term or trunc:
                env.reset()
    return len(envs) * spec.rollout * iters / (time.perf_counter() - t0)


def run_json(cmd: list[str]) -> dict:
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def one_trial_arms(env_id: str, env_steps: int) -> dict[str, list[str]]:
    task = RECIPES[env_id][1]
    arms = {"pgu train (one trial)": [str(pathlib.Path(sys.executable).parent / "pgu"), "train", "--task", task,
                                      "--preset", "ppo", "--env-steps", str(env_steps), "--json"]}
    spec = RECIPES[env_id][0]
    if env_id != "CartPole-v1":
        arms["minimal loop 16 envs"] = [sys.executable, "benchmarks/minimal_ppo.py", "--env", env_id,
                                        "--env-steps", str(env_steps), "--num-envs", "16"]
    try:
        import stable_baselines3  # noqa: F401

        arms[f"sb3 {spec['num_envs']} envs"] = [
            sys.executable, "benchmarks/sb3_ppo.py", "--env", env_id, "--env-steps", str(env_steps),
            "--num-envs", str(spec["num_envs"]), "--batch", str(spec["num_envs"] * spec["rollout"]),
            *([] if spec["normalize"] else ["--no-normalize"])]
    except ImportError:
        print("# stable-baselines3 not installed: no SB3 arm (pip install -e '.[baselines]')", file=sys.stderr)
    return arms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="HalfCheetah-v5", choices=sorted(RECIPES))
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--iters", type=int, default=2, help="timed iterations per population arm")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--trial-env-steps", type=int, default=10240, help="budget of each one-trial run")
    args = ap.parse_args()
    torch.set_num_threads(1)
    pop: dict[int, list[dict]] = {k: [] for k in args.ks}
    env_only: dict[int, list[float]] = {k: [] for k in args.ks}
    trials = one_trial_arms(args.env, args.trial_env_steps)
    trial_rates: dict[str, list[float]] = {name: [] for name in trials}
    for r in range(args.rounds):
        ks = args.ks if r % 2 == 0 else args.ks[::-1]
        for name, cmd in (trials.items() if r % 2 == 0 else list(trials.items())[::-1]):
            trial_rates[name].append(run_json(cmd)["env_steps_per_s"])
            print(f"[round {r}] {name:<22} {trial_rates[name][-1]:8.0f} env steps/s", file=sys.stderr, flush=True)
        for k in ks:
            pop[k].append(population_rate(args.env, k, args.iters))
            env_only[k].append(env_only_rate(args.env, k, args.iters))
            print(f"[round {r}] population K={k:<3} {pop[k][-1]['env_steps_per_s']:8.0f} env steps/s  "
                  f"env only {env_only[k][-1]:8.0f}", file=sys.stderr, flush=True)
    med = statistics.median
    one = med(trial_rates["pgu train (one trial)"])
    spec = RECIPES[args.env][0]
    print(f"# population  env={args.env}  {spec['num_envs']} envs x {spec['rollout']} steps per member, minibatch "
          f"{spec['minibatch']}, {spec['epochs']} epochs  iters={args.iters}  rounds={args.rounds}  torch threads=1  "
          f"torch {torch.__version__}  load average {os.getloadavg()[0]:.2f}")
    print(f"{'arm':<24}{'env steps/s':>12}{'x one trial':>12}{'/ env only':>11}{'sample s/it':>12}{'update s/it':>12}")
    for name, rates in trial_rates.items():
        print(f"{name:<24}{med(rates):>12.0f}{med(rates) / one:>12.2f}")
    for k in args.ks:
        rate = med(p["env_steps_per_s"] for p in pop[k])
        print(f"{'population K=' + str(k):<24}{rate:>12.0f}{rate / one:>12.2f}{rate / med(env_only[k]):>11.2f}"
              f"{med(p['sample_s'] for p in pop[k]):>12.3f}{med(p['update_s'] for p in pop[k]):>12.3f}")
    for k in args.ks:
        print(f"{'env only K=' + str(k) + ' x n':<24}{med(env_only[k]):>12.0f}{med(env_only[k]) / one:>12.2f}")
    print("per round, population K / one trial: " + "; ".join(
        f"K={k}: " + " ".join(f"{p['env_steps_per_s'] / t:.2f}" for p, t in
                              zip(pop[k], trial_rates["pgu train (one trial)"])) for k in args.ks))
    print(json.dumps({"env": args.env, "one_trial": one, "population": {k: med(p["env_steps_per_s"] for p in pop[k])
                                                                        for k in args.ks},
                      "env_only": {k: med(env_only[k]) for k in args.ks}}))


if __name__ == "__main__":
    main()
