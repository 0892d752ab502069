"""Tables and plots of docs/mujoco-results.md from the evidence registry and RL Zoo's result files (issue 27).

Arms, all trained at the same budget B and scored by the same evaluator on the same test seeds
(2,000,000 …; 10 deterministic episodes on env seeds 10000+i, normalisation frozen, raw returns):

* ``family``, ``ppo_knobs``, ``drift``: the winners of ``pgu search --space full|ppo_knobs|drift`` at equal
  ``--tuning-env-steps``;
* ``ppo preset``, ``dpo preset``: the presets (``pgu evaluate --preset``);
* ``RL Zoo settings in pgu``: rl-zoo3's tuned entry translated to pgu keys;
* ``RL Zoo``: stable-baselines3 + rl-zoo3 itself (``experiments/rlzoo.py``);
* ``transfer: Hopper family``, ``transfer: Hopper ppo_knobs`` (HalfCheetah, Walker2d): the Hopper winners,
  unchanged.

Statistics are rliable's (Agarwal et al. 2021): per task, IQM and mean with 95% stratified-bootstrap
CIs, the probability that the family arm improves on each other arm, learning curves; across tasks,
the same on normalised scores, (score − random) / (RL Zoo − random) with random the uniform-random
policy's mean return over the evaluator's 10 episodes and RL Zoo the mean of RL Zoo's own test runs at
the same budget, and performance profiles.

    python experiments/mujoco_report.py --registry sqlite:///docs/results/mujoco.db --out docs/results/mujoco
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import warnings

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENVS = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5", "walker2d": "Walker2d-v5"}
REPS = 20_000
FAMILY = "family"


def _rng() -> np.random.RandomState:
    """A fixed bootstrap seed: the report's CIs are the same on every run of the same rows. rliable's
    StratifiedBootstrap draws its indices from numpy's global generator, the rest from ``random_state``."""
    np.random.seed(0)
    return np.random.RandomState(0)


def search_arms(task: str) -> list[tuple[str, str]]:
    arms = [(FAMILY, f"{task}-full-s0"), ("ppo_knobs", f"{task}-ppo_knobs-s0"), ("drift", f"{task}-drift-s0"),
            ("ppo preset", f"{task}-ppo-preset-s0"), ("dpo preset", f"{task}-dpo-preset-s0"),
            ("RL Zoo settings in pgu", f"{task}-rlzoo-pgu-s0")]
    if task != "hopper":
        arms += [("transfer: Hopper family", f"{task}-transfer-hopper-full-s0"),
                 ("transfer: Hopper ppo_knobs", f"{task}-transfer-hopper-ppo_knobs-s0")]
    return arms


def arms(task: str, registry: str, out: pathlib.Path) -> dict:
    """{arm: {"seeds", "scores", "curves", "params", "search", "timings", "status", "policies"}}: the arms
    whose test phase is complete."""
    from pgu_rllib.service.registry import Registry

    reg = Registry(registry)
    found = {}
    for label, name in search_arms(task):
        row = reg.get_search(name) if reg.search_exists(name) else None
        if row is None or row.status.value != "complete":
            continue
        test = sorted(reg.evaluations(row.id, "test"), key=lambda e: e["seed"])
        if label in (FAMILY, "ppo_knobs", "drift"):  # the winner's rows: the hash of the stored best
            best = next(r for r in reg.best_rows(task) if r["search_name"] == name)
            test = [e for e in test if e["params"] == best["params"]]
        found[label] = {"seeds": [e["seed"] for e in test], "scores": [e["score"] for e in test],
                        "curves": [e["curve"] for e in test], "params": test[0]["params"], "search": name,
                        "timings": row.timings, "policies": [e["policy_path"] for e in test]}
    zoo = sorted(out.glob(f"rlzoo_{ENVS[task]}_seed*.json"))
    if zoo:
        recs = sorted((json.loads(p.read_text()) for p in zoo), key=lambda r: r["seed"])
        phases = out / f"{task}_phases.json"
        wall = json.loads(phases.read_text()).get("rlzoo", {}).get("wall_s") if phases.exists() else None
        found["RL Zoo"] = {"seeds": [r["seed"] for r in recs], "scores": [r["score"] for r in recs],
                           "curves": [_rolling(r["curve"]) for r in recs], "params": recs[0]["hyperparams"],
                           "timings": {"test": {"wall_s": wall or sum(r["wall_s"] for r in recs),
                                                "env_steps": sum(r["env_steps"] for r in recs),
                                                "eval_env_steps": None}}}
    return found


def _rolling(curve, window=10):
    """RL Zoo's per-episode returns as pgu's training curve: the mean of the last 10 episodes."""
    out = []
    for i in range(len(curve)):
        recent = [c[1] for c in curve[max(0, i - window + 1):i + 1]]
        out.append([curve[i][0], float(np.mean(recent))])
    return out


def random_score(task: str, episodes: int = 10) -> float:
    """The uniform-random policy under the evaluator's protocol: episode i from env seed 10000+i, the action
    space seeded with i too, raw returns (the 0 of the normalisation)."""
    import gymnasium as gym

    env = gym.make(ENVS[task])
    total = []
    for i in range(episodes):
        env.reset(seed=10_000 + i)
        env.action_space.seed(i)
        done, ret = False, 0.0
        while not done:
            _, r, term, trunc, _ = env.step(env.action_space.sample())
            ret, done = ret + float(r), term or trunc
        total.append(ret)
    return float(np.mean(total))


# P(a > b) beside P(family > arm): is DPO better than PPO here, and does pgu reproduce RL Zoo with its settings?
PAIRS = (("dpo preset", "ppo preset"), ("RL Zoo settings in pgu", "RL Zoo"))


def p_improvement(scores: dict, a: str, b: str) -> list[float] | None:
    """rliable's P(a > b) with its 95% bootstrap CI, or None when an arm is missing."""
    from rliable import library as rly
    from rliable import metrics

    if a not in scores or b not in scores or scores[a].shape[1] != scores[b].shape[1]:
        return None
    p, ci = rly.get_interval_estimates({"pair": (scores[a], scores[b])}, metrics.probability_of_improvement,
                                       reps=REPS, random_state=_rng())
    return [float(np.ravel(p["pair"])[0]), *map(float, np.ravel(ci["pair"]))]


def pair_probabilities(scores: dict) -> dict:
    return {f"{a} > {b}": p for a, b in PAIRS if (p := p_improvement(scores, a, b)) is not None}


def _p_lines(found: dict) -> str:
    return "".join(f"P({k}) = {p[0]:.2f} [95% CI {p[1]:.2f}, {p[2]:.2f}]; " for k, p in found.items()).rstrip("; ") + (
        " (rliable's probability of improvement).\n\n" if found else "")


def statistics(scores: dict) -> dict:
    """Per-arm IQM/mean with 95% stratified-bootstrap CIs over runs (× tasks), and P(family > arm)."""
    from rliable import library as rly
    from rliable import metrics

    def aggregate(x):
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)])

    point, ci = rly.get_interval_estimates(scores, aggregate, reps=REPS, random_state=_rng())
    out = {arm: {"iqm": float(point[arm][0]), "iqm_ci": [float(ci[arm][0, 0]), float(ci[arm][1, 0])],
                 "mean": float(point[arm][1]), "mean_ci": [float(ci[arm][0, 1]), float(ci[arm][1, 1])]}
           for arm in scores}
    if FAMILY in scores:
        pairs = {f"{FAMILY},{arm}": (scores[FAMILY], scores[arm]) for arm in scores
                 if arm != FAMILY and scores[arm].shape[1] == scores[FAMILY].shape[1]}
        if pairs:
            p, p_ci = rly.get_interval_estimates(pairs, metrics.probability_of_improvement, reps=REPS,
                                                 random_state=_rng())
            for key in pairs:
                lo, hi = np.ravel(p_ci[key])
                out[key.split(",", 1)[1]]["p_family_better"] = [float(np.ravel(p[key])[0]), float(lo), float(hi)]
    return out


def per_task(found: dict) -> dict:
    scores = {arm: np.array(d["scores"], dtype=float)[:, None] for arm, d in found.items() if len(d["scores"]) > 1}
    stats = statistics(scores)
    stats["pairs"] = pair_probabilities(scores)
    for arm, d in found.items():
        x = np.array(d["scores"], dtype=float)
        stats.setdefault(arm, {}).update(mean=float(x.mean()), median=float(np.median(x)),
                                         std=float(x.std(ddof=1)) if len(x) > 1 else None)
    return stats


def curves_plot(found: dict, task: str, budget: int, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    grid = np.linspace(0, budget, 61)
    for arm, d in found.items():
        ys = []
        for curve in d["curves"]:
            if curve:
                xs, vs = np.array(curve, dtype=float).T
                ys.append(np.interp(grid, xs, vs, left=np.nan))
        if not ys:
            continue
        ys = np.array(ys)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(ys, 0)
            se = np.nanstd(ys, 0) / np.sqrt(np.sum(~np.isnan(ys), 0).clip(1))
        ax.plot(grid, mean, label=arm)
        ax.fill_between(grid, mean - se, mean + se, alpha=0.15)
    ax.set_xlabel("env steps")
    ax.set_ylabel("training return (mean of the last 10 episodes)")
    ax.set_title(f"{ENVS[task]}: learning curves on the test seeds (± 1 s.e.)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def profile_plot(normalised: dict, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rliable import library as rly
    from rliable import plot_utils

    thresholds = np.linspace(-0.25, max(2.0, max(float(np.max(v)) for v in normalised.values())), 81)
    _rng()  # its bootstrap draws from numpy's global generator (it takes no random_state)
    dists, cis = rly.create_performance_profile(normalised, thresholds, reps=2000)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {arm: cycle[i % len(cycle)] for i, arm in enumerate(normalised)}
    plot_utils.plot_performance_profiles(dists, thresholds, performance_profile_cis=cis, colors=colors, ax=ax,
                                         xlabel=r"normalised test score $\tau$ (random 0, RL Zoo 1)",
                                         labelsize="medium")
    ax.legend([matplotlib.lines.Line2D([0], [0], color=colors[a]) for a in normalised], list(normalised), fontsize=7)
    ax.set_title("All tasks: fraction of test runs above τ (95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _ci(s: dict, key: str) -> str:
    lo, hi = s[f"{key}_ci"]
    return f"{_num(s[key])} [{_num(lo)}, {_num(hi)}]"


def task_table(task: str, found: dict, stats: dict) -> str:
    n = max(len(d["scores"]) for d in found.values())
    lines = [f"| arm | test mean | median | IQM [95% CI] | std | P(family > arm) [95% CI] | test returns ({n} seeds) |",
             "|---|---|---|---|---|---|---|"]
    for arm, d in found.items():
        s = stats.get(arm, {})
        p = s.get("p_family_better")
        p_txt = "—" if p is None else f"{p[0]:.2f} [{p[1]:.2f}, {p[2]:.2f}]"
        iqm = _ci(s, "iqm") if "iqm_ci" in s else "n/a"
        std = "n/a" if s.get("std") is None else f"{s['std']:.0f}"
        lines.append(f"| {arm} | {_num(s['mean'])} | {_num(s['median'])} | {iqm} | {std} | {p_txt} | "
                     f"{', '.join(_num(x) for x in d['scores'])} |")
    return "\n".join(lines)


def phase_table(all_found: dict) -> str:
    lines = ["| task | arm | phase | wall time | training env steps | evaluation env steps |", "|---|---|---|---|---|---|"]
    totals = [0.0, 0, 0]
    for task, found in all_found.items():
        for arm, d in found.items():
            for phase, t in (d.get("timings") or {}).items():
                ev = t.get("eval_env_steps")
                lines.append(f"| {task} | {arm} | {phase} | {t['wall_s'] / 3600:.2f} h | {t['env_steps']:,} | "
                             f"{'—' if ev is None else f'{ev:,}'} |")
                totals[0] += t["wall_s"]
                totals[1] += t["env_steps"]
                totals[2] += ev or 0
    lines.append(f"| all | all | all | {totals[0] / 3600:.1f} h | {totals[1]:,} | {totals[2]:,} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--registry", default="sqlite:///docs/results/mujoco.db")
    ap.add_argument("--out", default="docs/results/mujoco")
    ap.add_argument("--budget", type=int, default=300_000)
    args = ap.parse_args()
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    all_found, all_stats, normalised, summary = {}, {}, {}, {"tasks": {}}
    text = []
    for task in ENVS:
        found = arms(task, args.registry, out)
        if not found:
            continue
        all_found[task] = found
        stats = all_stats[task] = per_task(found)
        curves_plot(found, task, args.budget, ROOT / "docs" / f"mujoco_{task}_curves.png")
        text.append(f"### {ENVS[task]}\n\n{task_table(task, found, stats)}\n\n{_p_lines(stats['pairs'])}"
                    f"![{task} curves](mujoco_{task}_curves.png)\n")
        policies = out / "policies" / task
        for arm, d in found.items():
            for seed, path in zip(d["seeds"], d.get("policies") or []):
                if path and pathlib.Path(path).exists():
                    dest = policies / arm.replace(" ", "_").replace(":", "") / f"seed{seed}.npz"
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(path, dest)
        if "RL Zoo" in found:
            low, high = random_score(task), float(np.mean(found["RL Zoo"]["scores"]))
            summary["tasks"][task] = {"random": low, "rlzoo_mean": high}
            for arm, d in found.items():
                normalised.setdefault(arm, {})[task] = [(x - low) / (high - low) for x in d["scores"]]
        summary["tasks"].setdefault(task, {})["arms"] = {a: {k: v for k, v in d.items() if k != "curves"}
                                                       for a, d in found.items()}
        summary["tasks"][task]["stats"] = stats
    complete = [t for t in all_found if t in summary["tasks"] and "rlzoo_mean" in summary["tasks"][t]]
    aggregate = {}
    if len(complete) >= 1:
        arms_all = [a for a in normalised if all(t in normalised[a] for t in complete)]
        n = min(len(normalised[a][t]) for a in arms_all for t in complete)
        matrix = {a: np.array([[normalised[a][t][i] for t in complete] for i in range(n)]) for a in arms_all}
        aggregate = statistics(matrix)
        profile_plot(matrix, ROOT / "docs" / "mujoco_profile.png")
        lines = [f"Tasks: {', '.join(ENVS[t] for t in complete)}; {n} test seeds each; normalised score = "
                 f"(score − random) / (RL Zoo − random).", "",
                 "| arm | IQM [95% CI] | mean [95% CI] | P(family > arm) [95% CI] |", "|---|---|---|---|"]
        for arm in arms_all:
            s, p = aggregate[arm], aggregate[arm].get("p_family_better")
            lines.append(f"| {arm} | {_ci(s, 'iqm')} | {_ci(s, 'mean')} | "
                         f"{'—' if p is None else f'{p[0]:.2f} [{p[1]:.2f}, {p[2]:.2f}]'} |")
        aggregate["pairs"] = pair_probabilities(matrix)
        text.insert(0, "### All tasks (normalised)\n\n" + "\n".join(lines) + "\n\n" + _p_lines(aggregate["pairs"])
                    + "![profile](mujoco_profile.png)\n")
    summary["aggregate"] = aggregate
    text.append("### Wall time and env steps per phase (summed from the registry rows)\n\n" + phase_table(all_found))
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    (out / "tables.md").write_text("\n".join(text) + "\n")
    fill_page(ROOT / "docs" / "mujoco-results.md", "\n".join(text))
    print("\n".join(text))


BEGIN, END = "<!-- mujoco_report: begin -->", "<!-- mujoco_report: end -->"


def fill_page(page: pathlib.Path, tables: str) -> None:
    """Put the tables between the page's two markers (the prose around them is written by hand)."""
    if not page.exists() or BEGIN not in (text := page.read_text()):
        return
    head, rest = text.split(BEGIN, 1)
    page.write_text(f"{head}{BEGIN}\n(written by `experiments/mujoco_report.py` from `docs/results/mujoco.db`)\n\n"
                    f"{tables}\n{END}{rest.split(END, 1)[1]}")


if __name__ == "__main__":
    main()
