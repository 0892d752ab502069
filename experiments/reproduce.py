"""Issue 3 reproduction: learning curves of the PGU family on the talk's tasks.

* bandit: every form (Q, V, P) x {sq, ml, sil, mla(1,0), mla(1,1), ppo_clip}; metric: the exact
  expected reward of the greedy policy (4096 fixed contexts) against env steps;
* four-rooms: forms V and P x {sq, ml, mla(1,1), ppo_clip}; metric: the exact greedy success rate
  from every start cell.

Protocol: the task's recipe (``pgu tasks``), ``delta_r="q"`` (the talk's Δ_R = R̂ − q_θ(s,a),
logit reading; τ = 1 on the bandit, 0.2 on Four Rooms, see ``COMMON``), seeds 0..S-1,
every run a Tune trial on a local Ray (2 at a time).
Curves go to ``docs/results/reproduction_<task>.json``; ``experiments/plot_reproduction.py``
draws them.

    python experiments/reproduce.py --task bandit --seeds 5 --env-steps 6144
    python experiments/reproduce.py --task four-rooms --seeds 5 --env-steps 200000
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time

SCALES = {"sq": {}, "ml": {}, "sil": {}, "mla(1,0)": {"alpha_o": 1.0, "alpha_r": 0.0},
          "mla(1,1)": {"alpha_o": 1.0, "alpha_r": 1.0}, "ppo_clip": {"epsilon": 0.2}}
GRID = {"bandit": (["Q", "V", "P"], ["sq", "ml", "sil", "mla(1,0)", "mla(1,1)", "ppo_clip"], "greedy_expected_reward"),
        "four-rooms": (["V", "P"], ["sq", "ml", "mla(1,1)", "ppo_clip"], "greedy_success")}
# Per-task update-rule keys shared by every point. Four Rooms: τ = 0.2, because at the talk's
# τ = 1 the logits q/τ of returns in [0, 1] stay near-uniform (success ≤ 0.06 after 100k steps).
COMMON = {"bandit": {"delta_r": "q"}, "four-rooms": {"delta_r": "q", "tau": 0.2}}


def points(task: str, seeds: int) -> list[dict]:
    forms, scales, _ = GRID[task]
    out = []
    for form in forms:
        for label in scales:
            scale = label.split("(")[0]
            for seed in range(seeds):
                out.append({"form": form, "scale": scale, **SCALES[label], "seed": seed, **COMMON[task],
                            "pgu_label": f"{form}/{label}"})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=list(GRID), default="bandit")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--env-steps", type=int, default=None)
    ap.add_argument("--concurrent", type=int, default=2)
    ap.add_argument("--out", default="docs/results")
    args = ap.parse_args()

    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from pgu_rllib.rllib.ray_session import ensure_ray
    from pgu_rllib.rllib.algorithm import PGU
    from pgu_rllib.tasks import get_task
    from pgu_rllib.tasks.training import build_config

    budget = args.env_steps or get_task(args.task).budget
    base = build_config(args.task, "ppo", COMMON[args.task], seed=0, budget=budget).to_dict()
    base["pgu_label"] = ""  # points_to_evaluate may only name keys the param space has
    pts = points(args.task, args.seeds)
    ensure_ray()
    t0 = time.time()
    tuner = tune.Tuner(
        PGU, param_space=base,
        tune_config=tune.TuneConfig(search_alg=BasicVariantGenerator(points_to_evaluate=pts),
                                    num_samples=len(pts), max_concurrent_trials=args.concurrent),
        run_config=tune.RunConfig(name=f"reproduce-{args.task}-{int(t0)}", storage_path="/tmp/pgu_reproduce",
                                  stop={"num_env_steps_sampled_lifetime": budget}, verbose=1))
    grid = tuner.fit()
    metric = GRID[args.task][2]
    runs = []
    for result in grid:
        df = result.metrics_dataframe
        runs.append({"label": result.config["pgu_label"], "seed": result.config["seed"],
                     "error": None if result.error is None else str(result.error).splitlines()[0],
                     "env_steps": df["num_env_steps_sampled_lifetime"].astype(int).tolist() if df is not None else [],
                     metric: df[f"pgu/{metric}"].astype(float).tolist() if df is not None else [],
                     # the sampling policy's own score: mean return of its last 10 episodes
                     "episode_return_mean": df["pgu/episode_return_mean"].astype(float).tolist()
                     if df is not None and "pgu/episode_return_mean" in df else [],
                     "optimal": float(df["pgu/optimal_expected_reward"].iloc[-1])
                     if df is not None and "pgu/optimal_expected_reward" in df else None})
    out = pathlib.Path(args.out) / f"reproduction_{args.task}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    protocol = {"task": args.task, "budget_env_steps": budget, "seeds": list(range(args.seeds)), "metric": metric,
                **COMMON[args.task], "recipe": {k.lstrip("_"): base.get(k) for k in (
                    "lr", "gamma", "lambda", "_train_batch_size_per_learner", "minibatch_size", "num_epochs",
                    "num_envs_per_env_runner", "env_config")},
                "wall_s": round(time.time() - t0, 1)}
    out.write_text(json.dumps({"protocol": protocol, "runs": runs}, indent=1))
    print(f"wrote {out} ({len(runs)} runs, {protocol['wall_s']} s)")


if __name__ == "__main__":
    main()
