"""Run a fixed list of configurations of one task as Tune trials (2 at a time on a laptop) and
return each run's per-iteration curves. Shared by the bandit and Four Rooms experiments."""
from __future__ import annotations

import json
import time


def run_grid(task: str, points: list[dict], *, budget: int, metrics: tuple[str, ...], concurrent: int = 2,
             name: str = "grid") -> tuple[list[dict], float]:
    """Train every point (config keys plus ``label`` and ``seed``) for ``budget`` env steps; return
    ``[{label, seed, error, env_steps, <metric>: [...]}, ...]`` (metrics are ``result["pgu"]`` keys;
    list values such as θ are kept as lists) and the wall time."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from pgu_rllib.rllib.ray_session import ensure_ray
    from pgu_rllib.rllib.algorithm import PGU
    from pgu_rllib.tasks.training import build_config

    keys = sorted({k for p in points for k in p if k not in ("label", "seed")})
    base = build_config(task, "ppo", {k: points[0][k] for k in keys if k in points[0]}, seed=0, budget=budget).to_dict()
    base["pgu_label"] = ""  # points_to_evaluate may only name keys the param space has
    pts = [{**{k: v for k, v in p.items() if k != "label"}, "pgu_label": p["label"]} for p in points]
    ensure_ray()
    t0 = time.time()
    grid = tune.Tuner(PGU, param_space=base,
                      tune_config=tune.TuneConfig(search_alg=BasicVariantGenerator(points_to_evaluate=pts),
                                                  num_samples=len(pts), max_concurrent_trials=concurrent),
                      run_config=tune.RunConfig(name=f"{name}-{int(t0)}", storage_path="/tmp/pgu_experiments",
                                                stop={"num_env_steps_sampled_lifetime": budget}, verbose=1)).fit()
    runs = []
    for result in grid:
        df = result.metrics_dataframe
        run = {"label": result.config["pgu_label"], "seed": result.config["seed"],
               "error": None if result.error is None else str(result.error).splitlines()[0],
               "env_steps": df["num_env_steps_sampled_lifetime"].astype(int).tolist() if df is not None else []}
        for m in metrics:
            col = df[f"pgu/{m}"].tolist() if df is not None and f"pgu/{m}" in df else []
            run[m] = [json.loads(v) if isinstance(v, str) else (None if v != v else v) for v in col]
        runs.append(run)
    return runs, time.time() - t0
