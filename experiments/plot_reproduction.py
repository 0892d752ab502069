"""Plot ``docs/results/reproduction_<task>.json`` (from ``reproduce.py``) and print a table.

Each curve is the mean over seeds of the task metric against env steps, with a band of
± one standard error. The table gives, per update: the final value (mean ± std over seeds);
the area under the mean curve (its mean over all iterations: speed and level together); and
the first env-step count where the mean curve reaches 98% of the optimum (bandit: the optimal
policy's expected reward; Four Rooms: success 1.0).

    python experiments/plot_reproduction.py --task bandit
"""
from __future__ import annotations

import argparse
import json
import pathlib
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def curves(data: dict) -> dict:
    metric = data["protocol"]["metric"]
    by_label: dict[str, list] = {}
    for run in data["runs"]:
        if run["error"] or not run[metric]:
            continue
        by_label.setdefault(run["label"], []).append((run["env_steps"], run[metric]))
    out = {}
    for label, runs in by_label.items():
        n = min(len(r[1]) for r in runs)
        steps = np.array(runs[0][0][:n])
        values = np.array([r[1][:n] for r in runs])
        out[label] = (steps, values)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="bandit")
    ap.add_argument("--results", default="docs/results")
    args = ap.parse_args()
    path = pathlib.Path(args.results) / f"reproduction_{args.task}.json"
    data = json.loads(path.read_text())
    metric = data["protocol"]["metric"]
    cs = curves(data)
    forms = sorted({label.split("/")[0] for label in cs}, key="QVP".index)
    fig, axes = plt.subplots(1, len(forms), figsize=(5 * len(forms), 4), sharey=True)
    axes = np.atleast_1d(axes)
    optimal = next((r["optimal"] for r in data["runs"] if r.get("optimal")), None)
    for ax, form in zip(axes, forms):
        for label, (steps, values) in sorted(cs.items()):
            if not label.startswith(form + "/"):
                continue
            mean = values.mean(0)
            se = values.std(0, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0 * mean
            ax.plot(steps, mean, label=label.split("/")[1])
            ax.fill_between(steps, mean - se, mean + se, alpha=0.2)
        if optimal:
            ax.axhline(optimal, color="k", ls=":", lw=1, label="optimal")
        ax.set_title(f"form {form}")
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(metric.replace("_", " "))
    axes[-1].legend(fontsize=8, loc="lower right")
    n_seeds = len(data["protocol"]["seeds"])
    fig.suptitle(f"{args.task}: {metric.replace('_', ' ')} (mean ± s.e. over {n_seeds} seeds, Δ_R = R̂ − q_θ)")
    fig.tight_layout()
    png = pathlib.Path("docs") / f"reproduction_{args.task}.png"
    fig.savefig(png, dpi=110)
    print(f"wrote {png}")

    finals = {label: values[:, -1] for label, (steps, values) in cs.items()}
    target = 0.98 * (optimal if optimal else 1.0)
    sampling = _final_sampling_returns(data)
    extra = " final return of the sampling policy (last 10 episodes) | seeds ≥ target at the end |" \
        if sampling else ""
    print(f"| update | final {metric} (mean ± std, {n_seeds} seeds) | area under mean curve | "
          f"env steps to {target:.4g} (98% of optimum) |{extra}")
    print("|---|---|---|---|" + ("---|---|" if sampling else ""))
    for label in sorted(finals, key=lambda k: -finals[k].mean()):
        steps, values = cs[label]
        mean = values.mean(0)
        hit = np.nonzero(mean >= target)[0]
        reach = f"{int(steps[hit[0]]):,}" if len(hit) else "not reached"
        sd = statistics.stdev(finals[label]) if len(finals[label]) > 1 else 0.0
        row = f"| {label} | {finals[label].mean():.4f} ± {sd:.4f} | {mean.mean():.4f} | {reach} |"
        if sampling:
            ret = sampling.get(label, [])
            row += f" {statistics.mean(ret):.2f} |" if ret else " – |"
            row += f" {int((finals[label] >= target).sum())} of {len(finals[label])} |"
        print(row)


def _final_sampling_returns(data: dict) -> dict:
    """Per update, each seed's last ``episode_return_mean`` (absent in older result files)."""
    out: dict[str, list] = {}
    for run in data["runs"]:
        values = [v for v in run.get("episode_return_mean") or [] if v == v]  # drop NaN
        if values and not run["error"]:
            out.setdefault(run["label"], []).append(values[-1])
    return out


if __name__ == "__main__":
    main()
