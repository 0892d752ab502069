"""Print the search-evidence table (docs/search-results.md) from docs/results/evidence_*.json.

    python experiments/summarize_evidence.py
"""
import json
import pathlib

rows = []
for path in sorted(pathlib.Path("docs/results").glob("evidence_*_*.json")):
    text = path.read_text().strip()
    if not text:
        continue
    s = json.loads(text)
    if s.get("status") != "complete":
        continue
    best = s["best"]
    p = s["protocol"]
    params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["params"].items())
    rows.append((s["task"], s["space"], p["trials"], p["budget_env_steps"], p["top_k"], len(p["test_seeds"]),
                 best["tuning_score"], best["heldout_mean"], best["heldout_std"], best["heldout_median"],
                 ", ".join(f"{x:.4g}" for x in best["heldout_scores"]), params, s.get("wall_s", 0)))
print("| task | space | trials × env steps | top-k × held-out seeds | tuning score | held-out mean ± std "
      "| median | held-out scores | winner | wall |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {r[2]} × {r[3]:,} | {r[4]} × {r[5]} | {r[6]:.4g} | {r[7]:.4g} ± {r[8]:.3g} | "
          f"{r[9]:.4g} | {r[10]} | {r[11]} | {r[12] / 60:.0f} min |")
