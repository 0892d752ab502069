"""Four Rooms, fair to every arm (issue 11): each form gets the same small recipe-tuning budget on
tuning seeds, and is reported on other seeds.

* ``tune``: for each form Q, V, P (Δ_R = R̂ − q, scale sq), every recipe of ``RECIPES``
  (τ × Adam lr, the two knobs the talk leaves open) on tuning seeds 100 and 101 for 100k env
  steps. Each form keeps the recipe with the highest mean area under its greedy-success curve.
* ``run``: each form with its own recipe × scales {sq, ml, mla(1,1), ppo_clip} on the reported
  seeds 0..4 for 200k env steps. Nothing is chosen on these runs.
* ``table`` / ``plot``: docs/reproduction.md §2 and docs/reproduction_four-rooms.png.

Metric: the exact success rate of the greedy policy from every start cell (the task's
objective), and beside it the sampling policy's success (its last-10-episode return, 0 or 1 each).

    python experiments/four_rooms.py tune && python experiments/four_rooms.py run
    python experiments/four_rooms.py table && python experiments/four_rooms.py plot
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "results" / "four_rooms.json"
FORMS = ("Q", "V", "P")
RECIPES = [{"tau": tau, "lr": lr} for tau in (0.1, 0.2, 0.5) for lr in (0.01, 0.03, 0.1)]
SCALES = {"sq": {}, "ml": {}, "mla(1,1)": {"alpha_o": 1.0, "alpha_r": 1.0}, "ppo_clip": {"epsilon": 0.2}}
TUNING_SEEDS, REPORTED_SEEDS = (100, 101), (0, 1, 2, 3, 4)
TUNE_STEPS, RUN_STEPS = 100_000, 200_000
METRICS = ("greedy_success", "episode_return_mean")


def _load() -> dict:
    return json.loads(OUT.read_text()) if OUT.exists() else {}


def _save(data: dict) -> None:
    OUT.write_text(json.dumps(data, indent=1))


def _area(run: dict) -> float:
    return float(np.mean(run["greedy_success"])) if run["greedy_success"] else float("nan")


def tune() -> None:
    from grid import run_grid

    points = [{"label": f"{form}/sq/tau={r['tau']},lr={r['lr']}", "form": form, "scale": "sq", "delta_r": "q",
               **r, "seed": seed} for form in FORMS for r in RECIPES for seed in TUNING_SEEDS]
    runs, wall = run_grid("four-rooms", points, budget=TUNE_STEPS, metrics=METRICS, name="four-rooms-tune")
    chosen = {}
    for form in FORMS:
        scores = {}
        for r in RECIPES:
            label = f"{form}/sq/tau={r['tau']},lr={r['lr']}"
            scores[label] = float(np.mean([_area(x) for x in runs if x["label"] == label and not x["error"]]))
        best = max(scores, key=scores.get)
        chosen[form] = {**next(r for r in RECIPES if f"tau={r['tau']},lr={r['lr']}" in best), "tuning_area": scores[best]}
    data = _load()
    data["tune"] = {"protocol": {"seeds": list(TUNING_SEEDS), "budget_env_steps": TUNE_STEPS, "scale": "sq",
                                 "delta_r": "q", "recipes": RECIPES, "score": "mean area under the greedy-success "
                                 "curve over the tuning seeds", "wall_s": round(wall, 1)},
                    "runs": runs, "chosen": chosen}
    _save(data)
    print(json.dumps(chosen, indent=1))


def run() -> None:
    from grid import run_grid

    data = _load()
    chosen = data["tune"]["chosen"]
    points = [{"label": f"{form}/{label}", "form": form, "scale": label.split("(")[0], "delta_r": "q",
               "tau": chosen[form]["tau"], "lr": chosen[form]["lr"], **params, "seed": seed}
              for form in FORMS for label, params in SCALES.items() for seed in REPORTED_SEEDS]
    runs, wall = run_grid("four-rooms", points, budget=RUN_STEPS, metrics=METRICS, name="four-rooms-run")
    data["run"] = {"protocol": {"seeds": list(REPORTED_SEEDS), "budget_env_steps": RUN_STEPS, "delta_r": "q",
                                "recipes": {f: {k: chosen[f][k] for k in ("tau", "lr")} for f in FORMS},
                                "wall_s": round(wall, 1)}, "runs": runs}
    _save(data)
    print(f"wrote {OUT} ({len(runs)} runs, {wall:.0f} s)")


def _by_label(runs):
    out = {}
    for r in runs:
        if not r["error"] and r["greedy_success"]:
            out.setdefault(r["label"], []).append(r)
    return out


def table() -> None:
    data = _load()
    chosen = data["tune"]["chosen"]
    print("| form | recipe chosen on tuning seeds 100, 101 (τ, lr) | its tuning area |\n|---|---|---|")
    for form in FORMS:
        print(f"| {form} | τ {chosen[form]['tau']}, lr {chosen[form]['lr']} | {chosen[form]['tuning_area']:.3f} |")
    print()
    from pgu_rllib.core.stats import summarize

    print("| update | area under the greedy curve: mean, IQM [95% CI] | final greedy success (mean ± std) | "
          "per-seed final | seeds ≥ 0.98 at the end | sampling policy's success, last 20 iterations |\n"
          "|---|---|---|---|---|---|")
    rows = []
    for label, runs in _by_label(data["run"]["runs"]).items():
        runs = sorted(runs, key=lambda r: r["seed"])
        final = [float(np.mean(r["greedy_success"][-5:])) for r in runs]
        areas = summarize([_area(r) for r in runs])
        sampling = [np.mean([v for v in r["episode_return_mean"][-20:] if v is not None]) for r in runs]
        lo, hi = areas["ci95"]
        rows.append((areas["mean"], f"| {label} | {areas['mean']:.3f}, {areas['iqm']:.3f} [{lo:.2f}, {hi:.2f}] | "
                                    f"{np.mean(final):.3f} ± {np.std(final, ddof=1):.3f} | "
                                    f"{', '.join(f'{f:.2f}' for f in final)} | {sum(f >= 0.98 for f in final)} of "
                                    f"{len(final)} | {np.mean(sampling):.2f} ± {np.std(sampling, ddof=1):.2f} |"))
    for _, line in sorted(rows, reverse=True):
        print(line)


def plot() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = _load()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True)
    for ax, form in zip(axes, FORMS):
        for label, runs in sorted(_by_label(data["run"]["runs"]).items()):
            if not label.startswith(form + "/"):
                continue
            n = min(len(r["greedy_success"]) for r in runs)
            steps = np.array(runs[0]["env_steps"][:n])
            values = np.array([r["greedy_success"][:n] for r in runs])
            mean, se = values.mean(0), values.std(0, ddof=1) / np.sqrt(len(runs))
            ax.plot(steps, mean, label=label)
            ax.fill_between(steps, mean - se, mean + se, alpha=0.2)
        recipe = data["run"]["protocol"]["recipes"][form]
        ax.set_title(f"form {form} (τ {recipe['tau']}, lr {recipe['lr']}; 5 seeds, ± 1 s.e.)")
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("greedy success rate")
    fig.tight_layout()
    path = ROOT / "docs" / "reproduction_four-rooms.png"
    fig.savefig(path, dpi=90)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["tune", "run", "table", "plot"])
    {"tune": tune, "run": run, "table": table, "plot": plot}[ap.parse_args().what]()


if __name__ == "__main__":
    main()
