"""Tables and plots of docs/mujoco-results.md from the evidence registry and RL Zoo's result files.

Arms, all trained at the same budget and scored the same way on the same five test seeds
(2,000,000 … 2,000,004; deterministic policy, 10 episodes after training, raw returns):

* ``family``: the winner of ``pgu search --space full``;
* ``ppo_knobs``: the winner of ``pgu search --space ppo_knobs``;
* ``ppo preset``: ``pgu evaluate --preset ppo`` (the task's recipe);
* ``RL Zoo settings in pgu``: ``pgu evaluate`` with RL Zoo's tuned settings translated;
* ``RL Zoo``: stable-baselines3 + rl-zoo3 with those settings (experiments/rlzoo.py).

Statistics are rliable's (Agarwal et al. 2021): IQM with 95% stratified-bootstrap CIs, the
probability that the family arm improves on each other arm, and a performance profile.

    python experiments/mujoco_report.py --task hopper --registry sqlite:///docs/results/mujoco.db
"""
from __future__ import annotations

import argparse
import json
import pathlib
import warnings

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENVS = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5"}
REPS = 20_000


def arms(task: str, registry: str, out: pathlib.Path) -> dict:
    """{arm: {"seeds": [...], "scores": [...], "curves": [[(steps, value)...] per seed], "config": ...}}"""
    from pgu_rllib.service.registry import Registry

    reg = Registry(registry)
    found = {}
    for label, name in (("family", f"{task}-full-s0"), ("ppo_knobs", f"{task}-ppo_knobs-s0"),
                        ("ppo preset", f"{task}-ppo-preset-s0"), ("RL Zoo settings in pgu", f"{task}-rlzoo-pgu-s0")):
        row = reg.get_search(name)
        if row is None:
            continue
        test = sorted(reg.evaluations(row.id, "test"), key=lambda e: e["seed"])
        if not test:
            continue
        found[label] = {"seeds": [e["seed"] for e in test], "scores": [e["score"] for e in test],
                        "curves": [e["curve"] for e in test], "params": test[0]["params"],
                        "search": name, "timings": row.timings, "status": row.status.value}
    zoo = sorted(out.glob(f"rlzoo_{ENVS[task]}_seed*.json"))
    if zoo:
        recs = sorted((json.loads(p.read_text()) for p in zoo), key=lambda r: r["seed"])
        # the phase's wall time (runs 2 at a time, like the other arms' test phases) where the runner
        # recorded it; else the runs' summed training time
        phases = out / f"{task}_phases.json"
        wall = json.loads(phases.read_text()).get("rlzoo", {}).get("wall_s") if phases.exists() else None
        found["RL Zoo"] = {"seeds": [r["seed"] for r in recs], "scores": [r["score"] for r in recs],
                           "curves": [_rolling(r["curve"]) for r in recs], "params": recs[0]["hyperparams"],
                           "timings": {"test": {"wall_s": wall or sum(r["wall_s"] for r in recs),
                                                "env_steps": sum(r["env_steps"] for r in recs)}}}
    return found


def _rolling(curve, window=10):
    """RL Zoo's per-episode returns as pgu's objective: the mean of the last 10 episodes, per episode end."""
    out = []
    for i in range(len(curve)):
        recent = [c[1] for c in curve[max(0, i - window + 1):i + 1]]
        out.append([curve[i][0], float(np.mean(recent))])
    return out


def statistics(found: dict) -> dict:
    from rliable import library as rly
    from rliable import metrics

    scores = {arm: np.array(d["scores"], dtype=float)[:, None] for arm, d in found.items()}  # (runs, 1 task)
    def aggregate(x):
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x), metrics.aggregate_median(x)])
    point, ci = rly.get_interval_estimates(scores, aggregate, reps=REPS)
    out = {arm: {"iqm": float(point[arm][0]), "iqm_ci": [float(ci[arm][0, 0]), float(ci[arm][1, 0])],
                 "mean": float(np.mean(found[arm]["scores"])), "median": float(np.median(found[arm]["scores"])),
                 "std": float(np.std(found[arm]["scores"], ddof=1)), "mean_ci": [float(ci[arm][0, 1]), float(ci[arm][1, 1])]}
           for arm in scores}
    if "family" in scores:
        pairs = {f"family,{arm}": (scores["family"], scores[arm]) for arm in scores if arm != "family"}
        if pairs:
            p, p_ci = rly.get_interval_estimates(pairs, metrics.probability_of_improvement, reps=REPS)
            for key in pairs:
                lo, hi = np.ravel(p_ci[key])
                out[key.split(",", 1)[1]]["p_family_better"] = [float(np.ravel(p[key])[0]), float(lo), float(hi)]
    return out


def plots(found: dict, stats: dict, task: str, budget: int, prefix: pathlib.Path) -> list[pathlib.Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rliable import library as rly
    from rliable import plot_utils

    paths = []
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    grid = np.linspace(0, budget, 61)
    for arm, d in found.items():
        ys = []
        for curve in d["curves"]:
            if curve:
                xs, vs = np.array(curve, dtype=float).T
                ys.append(np.interp(grid, xs, vs, left=np.nan))
        ys = np.array(ys)
        with warnings.catch_warnings():  # steps before any seed's first episode: all-NaN columns
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(ys, 0)
            se = np.nanstd(ys, 0) / np.sqrt(np.sum(~np.isnan(ys), 0).clip(1))
        ax.plot(grid, mean, label=arm)
        ax.fill_between(grid, mean - se, mean + se, alpha=0.2)
    ax.set_xlabel("env steps")
    ax.set_ylabel("return (mean of the last 10 training episodes)")
    ax.set_title(f"{ENVS[task]}: learning curves on the 5 test seeds (± 1 s.e.)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(prefix.with_name(prefix.name + "_curves.png"))
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)

    scores = {arm: np.array(d["scores"], dtype=float)[:, None] for arm, d in found.items()}
    top = max(max(d["scores"]) for d in found.values())
    thresholds = np.linspace(0, top * 1.05, 80)
    dists, cis = rly.create_performance_profile(scores, thresholds, reps=2000)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {arm: cycle[i % len(cycle)] for i, arm in enumerate(scores)}
    plot_utils.plot_performance_profiles(dists, thresholds, performance_profile_cis=cis, colors=colors, ax=ax,
                                         xlabel=r"test return $\tau$", labelsize="medium")
    # one handle per arm (a bare ax.legend(labels) would pair labels with the CI bands as well)
    ax.legend([matplotlib.lines.Line2D([0], [0], color=colors[arm]) for arm in scores], list(scores), fontsize=8)
    ax.set_title(f"{ENVS[task]}: performance profile (fraction of test runs above τ; 95% CI)")
    fig.tight_layout()
    paths.append(prefix.with_name(prefix.name + "_profile.png"))
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)
    return paths


def markdown(found: dict, stats: dict) -> str:
    lines = ["| arm | test mean | median | IQM [95% CI] | std | P(family > arm) [95% CI] | test returns (seeds 2,000,000 … 2,000,004) |",
             "|---|---|---|---|---|---|---|"]
    for arm, d in found.items():
        s = stats[arm]
        p = s.get("p_family_better")
        p_txt = "—" if p is None else f"{p[0]:.2f} [{p[1]:.2f}, {p[2]:.2f}]"
        lines.append(f"| {arm} | {s['mean']:.0f} | {s['median']:.0f} | {s['iqm']:.0f} [{s['iqm_ci'][0]:.0f}, "
                     f"{s['iqm_ci'][1]:.0f}] | {s['std']:.0f} | {p_txt} | {', '.join(f'{x:.0f}' for x in d['scores'])} |")
    lines += ["", "| arm | phase | wall time | env steps |", "|---|---|---|---|"]
    for arm, d in found.items():
        for phase, t in (d.get("timings") or {}).items():
            lines.append(f"| {arm} | {phase} | {t['wall_s'] / 3600:.2f} h | {t['env_steps']:,} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="hopper", choices=sorted(ENVS))
    ap.add_argument("--registry", default="sqlite:///docs/results/mujoco.db")
    ap.add_argument("--out", default="docs/results/mujoco")
    ap.add_argument("--budget", type=int, default=300_000)
    args = ap.parse_args()
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    found = arms(args.task, args.registry, out)
    if not found:
        raise SystemExit("no arm has test scores yet")
    stats = statistics(found)
    pngs = plots(found, stats, args.task, args.budget, ROOT / "docs" / f"mujoco_{args.task}")
    summary = {"task": args.task, "arms": {a: {**{k: v for k, v in d.items() if k != "curves"}, **stats[a]}
                                           for a, d in found.items()}}
    (out / f"{args.task}_summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(markdown(found, stats))
    print("\nplots:", ", ".join(str(p.relative_to(ROOT)) for p in pngs))


if __name__ == "__main__":
    main()
