"""``report``: one HTML page with PNG plots for a search, from the registry alone.

Plots: learning curves of the top trials; α_o × α_r coloured by score; score by form ×
scale; Optuna's parameter importances (fANOVA); selection scores of the top-k (winner marked) and the
winner's test scores; a population search's schedules of its mutable keys, the winner's lineage marked.

Example::

    >>> from pgu_rllib.report import report
    >>> page = report("bandit-paper-s0", "report/")          # doctest: +SKIP
"""
from __future__ import annotations

import html
import json
import pathlib
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pgu_rllib.service.registry import DEFAULT_URL, Registry  # noqa: E402

FIGSIZE = (6.4, 4.2)


def _finish(fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _message(ax, text):
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, wrap=True)
    ax.set_axis_off()


def plot_curves(trials, path, top=6):
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ranked = sorted([t for t in trials if t["curve"] and t["score"] is not None], key=lambda t: -t["score"])[:top]
    for t in ranked:
        steps, values = zip(*t["curve"])
        label = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in t["params"].items() if k != "seed")
        ax.plot(steps, values, marker=".", label=label[:60])
    if ranked:
        ax.set_xlabel("env steps")
        ax.set_ylabel("objective")
        ax.set_title(f"learning curves of the top {len(ranked)} trials")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    else:
        _message(ax, "no trial reported a curve")
    _finish(fig, path)


def plot_alphas(trials, path):
    fig, ax = plt.subplots(figsize=FIGSIZE)
    pts = [(t["params"]["alpha_o"], t["params"]["alpha_r"], t["score"]) for t in trials
           if "alpha_o" in t["params"] and "alpha_r" in t["params"] and t["score"] is not None]
    if pts:
        xs, ys, cs = zip(*pts)
        sc = ax.scatter(xs, ys, c=cs, cmap="viridis", s=60, edgecolors="k")
        fig.colorbar(sc, ax=ax, label="score")
        ax.set_xlabel("α_o")
        ax.set_ylabel("α_r")
        ax.set_title("mla trials: α_o × α_r, coloured by score")
        ax.grid(alpha=0.3)
    else:
        _message(ax, "no trial sampled α_o and α_r (scale mla)")
    _finish(fig, path)


def plot_form_scale(trials, path, defaults):
    fig, ax = plt.subplots(figsize=FIGSIZE)
    cells: dict = {}
    for t in trials:
        if t["score"] is None:
            continue
        form = t["params"].get("form", defaults.get("form"))
        scale = t["params"].get("scale", defaults.get("scale"))
        cells.setdefault((form, scale), []).append(t["score"])
    forms = sorted({f for f, _ in cells}, key=lambda f: "QVP".find(f))
    scales = sorted({s for _, s in cells})
    if cells:
        import numpy as np

        grid = np.full((len(forms), len(scales)), np.nan)
        for (f, s), v in cells.items():
            grid[forms.index(f), scales.index(s)] = statistics.mean(v)
        im = ax.imshow(grid, cmap="viridis", aspect="auto")
        fig.colorbar(im, ax=ax, label="mean score")
        ax.set_xticks(range(len(scales)), scales, rotation=20)
        ax.set_yticks(range(len(forms)), [f"form {f}" for f in forms])
        for (f, s), v in cells.items():
            ax.text(scales.index(s), forms.index(f), f"{statistics.mean(v):.3g}\n(n={len(v)})",
                    ha="center", va="center", color="w", fontsize=8)
        ax.set_title("score by form × scale")
    else:
        _message(ax, "no scored trial")
    _finish(fig, path)


def plot_schedules(trials, winner_params, path, budget):
    """A population search's schedules (the mutable keys over env steps), the winner's lineage in red."""
    scheduled = [t for t in trials if t["params"].get("pgu_schedule")]
    keys = sorted({k for t in scheduled for _, values in t["params"]["pgu_schedule"] for k in values})
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(FIGSIZE[0] * max(1, len(keys)) / 1.5, FIGSIZE[1]),
                             squeeze=False)
    if not keys:
        _message(axes[0][0], "no schedule: this search did not use --scheduler pbt|pb2")
    for ax, key in zip(axes[0], keys):
        for t in scheduled:
            points = [(s, v[key]) for s, v in t["params"]["pgu_schedule"] if key in v]
            xs = [p[0] for p in points] + [budget]
            ys = [p[1] for p in points] + [points[-1][1]]
            win = winner_params is not None and t["params"].get("pgu_schedule") == winner_params.get("pgu_schedule")
            ax.step(xs, ys, where="post", color="tab:red" if win else "tab:gray", lw=2.5 if win else 1,
                    alpha=1 if win else 0.6, zorder=3 if win else 2)
        ax.set_xlabel("env steps")
        ax.set_ylabel(key)
        ax.set_yscale("log" if key == "lr" else "linear")
        ax.grid(alpha=0.3)
    axes[0][0].set_title("schedules of the population (winner's lineage red)")
    _finish(fig, path)


def plot_importances(storage_url, study_name, path):
    import optuna

    fig, ax = plt.subplots(figsize=FIGSIZE)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage_url)
        importances = optuna.importance.get_param_importances(study)
        names = list(importances)[::-1]
        ax.barh(names, [importances[n] for n in names], color="tab:blue")
        ax.set_xlabel("importance (fANOVA)")
        ax.set_title("Optuna parameter importances")
    except Exception as err:  # too few trials, one-valued params
        _message(ax, f"importances unavailable: {str(err).splitlines()[0][:90]}")
    _finish(fig, path)


def plot_evaluations(evaluations, winner_params, path):
    """Selection scores of the top-k (bar = mean; the winner in red) and the winner's test scores."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    groups: dict = {}
    for e in evaluations:
        key = (e["phase"], e["candidate"])
        groups.setdefault(key, {"params": e["params"], "scores": []})["scores"].append(e["score"])
    order = sorted(groups, key=lambda k: (k[0] != "selection", k[1]))
    if order:
        for i, key in enumerate(order):
            d = groups[key]
            color = "tab:blue" if key[0] == "test" else "tab:red" if d["params"] == winner_params else "tab:gray"
            ax.scatter([i] * len(d["scores"]), d["scores"], color=color, zorder=3)
            ax.hlines(statistics.mean(d["scores"]), i - 0.25, i + 0.25, color="k")
        ax.set_xticks(range(len(order)), [f"{phase}\n#{cand}" for phase, cand in order])
        ax.set_ylabel("score")
        ax.set_title("selection seeds of the top-k (winner red); its test seeds (blue)")
        ax.grid(alpha=0.3)
    else:
        _message(ax, "no selection or test run yet")
    _finish(fig, path)


def _score(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def report(name: str, out: str | pathlib.Path, registry: str = DEFAULT_URL) -> pathlib.Path:
    """Write ``out/index.html`` and its PNGs for search ``name``; return the page's path."""
    from pgu_rllib.service.provenance import absolute_sqlite
    from pgu_rllib.service.readers import open_existing

    reg = open_existing(registry)
    row = reg.get_search(name) if reg else None
    if row is None:
        raise ValueError(f"no search named {name!r} in {Registry(registry).safe_url}")
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    trials = reg.trials(row.id)
    evaluations = reg.evaluations(row.id)
    best = reg.best(row.task, row.space)
    winner = best["params"] if best and best["search_name"] == name else None
    settings = row.settings
    from pgu_rllib.core.presets import PRESETS

    defaults = PRESETS.get(settings.get("base_preset", "ppo"), {})
    plots = {
        "curves.png": ("Learning curves", lambda p: plot_curves(trials, p)),
        "alphas.png": ("α_o × α_r", lambda p: plot_alphas(trials, p)),
        "form_scale.png": ("Score by form × scale", lambda p: plot_form_scale(trials, p, defaults)),
        "importances.png": ("Parameter importances", lambda p: plot_importances(absolute_sqlite(reg.url), name, p)),
        "evaluations.png": ("Selection and test seeds", lambda p: plot_evaluations(evaluations, winner, p)),
        "schedules.png": ("Schedules (PBT/PB2)", lambda p: plot_schedules(trials, winner, p, settings["env_steps"])),
    }
    for filename, (_, draw) in plots.items():
        draw(out / filename)

    esc = html.escape
    best_html = _best_html(best) if best and winner is not None else \
        "<p>No best configuration stored by this search yet.</p>"
    trial_rows = "".join(
        f"<tr><td>{esc(t['tune_trial_id'])}</td><td>{_score(t['score'])}</td>"
        f"<td>{t['env_steps']:,}</td><td>{esc(t['status'])}</td>"
        f"<td>{esc(json.dumps({k: v for k, v in t['params'].items() if k != 'pgu_schedule'}))}</td></tr>"
        for t in sorted(trials, key=lambda t: -(t["score"] if t["score"] is not None else -1e300)))
    figures = "".join(f'<figure><img src="{f}" alt="{esc(title)}"><figcaption>{esc(title)}</figcaption></figure>'
                      for f, (title, _) in plots.items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pgu-rllib report: {esc(name)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}}
figure{{display:inline-block;margin:.5em;vertical-align:top}} img{{max-width:640px;border:1px solid #ddd}}
table{{border-collapse:collapse;font-size:.9em}} td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left}}</style>
</head><body>
<h1>Search {esc(name)}</h1>
<p>task <b>{esc(row.task)}</b>, space <b>{esc(row.space)}</b>, status {esc(row.status.value)};
{settings.get('trials', 0)} trials × {settings['env_steps']:,} env steps; registry {esc(reg.safe_url)}</p>
<h2>Best configuration</h2>{best_html}
<h2>Plots</h2>{figures}
<h2>Trials</h2><table><tr><th>trial</th><th>score</th><th>env steps</th><th>status</th><th>params</th></tr>{trial_rows}</table>
</body></html>
"""
    index = out / "index.html"
    index.write_text(page)
    return index


def _best_html(best: dict) -> str:
    """The winner's test scores, how it was chosen, and its configuration, as HTML."""
    esc = html.escape
    rows = "".join(f"<tr><td>{esc(str(k))}</td><td>{esc(f'{v:.4g}' if isinstance(v, float) else str(v))}</td></tr>"
                   for k, v in best["config"].items())
    test = ("no test scores (migrated from schema 0001)" if best["test_mean"] is None else
            f"<b>test {best['test_mean']:.4g} ± {_score(best['test_std'])}</b> (median {best['test_median']:.4g}, "
            f"IQM {best['test_iqm']:.4g}, 95% CI {esc(str([round(c, 4) for c in best['test_ci95'] or []]))}; "
            f"seeds {esc(str(best['test_seeds']))}; scores {esc(', '.join(f'{s:.4g}' for s in best['test_scores']))})")
    return (f"<p>{test}. Chosen by its selection mean {best['selection_mean']:.4g} on seeds "
            f"{esc(str(best['selection_seeds']))}; tuning score {best['tuning_score']:.4g}.</p>"
            f"<table>{rows}</table>")
