"""Issue 21 §7 and issue 22 §1–2: exact fixed points behind the corrections to docs/reproduction.md.

* Rules with several stable fixed points: ``fixed_point`` from several starts θ₀ (Q/mla(1,1)/Â,
  Q/ml/Â, Q/mla_piecewise/Â); the sampled runs of §1 start at 0 and land where their seeds' noise takes
  them, so a run ending away from the θ₀ = 0 point can still end at a stable point.
* GRPO at the runs' group size G = 8 exactly (binomial over the group's rewards) against the G → ∞
  limit §3 reported, each without and with the β = 0.04 reference KL.
* DPO: its exact fixed point (at Δ_O = 0 its scale is f = Δ_R, so E[U] is the policy gradient's).

Writes ``docs/results/bandit_multistability.json``.

    python experiments/bandit_multistability.py
"""
from __future__ import annotations

import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
STARTS = [(0.0, 0.0), (-0.2, 1.1), (1.1, -0.2), (1.2, 1.2), (2.0, 2.0), (-1.0, -1.0)]


def main() -> None:
    from pgu_rllib.core.update_rule import UpdateRule
    from pgu_rllib.tasks.bandit_expected import fixed_point
    from pgu_rllib.tasks.training import build_config

    def point(fp):
        return {"theta": [round(t, 4) for t in fp["theta"]], "greedy": round(fp["greedy"], 4),
                "stable": fp["stable"], "converged": fp["converged"]}

    out = {"multistable": {}, "grpo": {}, "dpo": {}}
    for label, rule in (("Q/mla(1,1)/advantage", UpdateRule(form="Q", scale="mla", alpha_o=1.0, alpha_r=1.0)),
                        ("Q/ml/advantage", UpdateRule(form="Q", scale="ml")),
                        ("Q/mla_piecewise/advantage", UpdateRule(form="Q", scale="mla_piecewise"))):
        rule.parameterisation = "logit"
        found = {}
        for start in STARTS:
            fp = point(fixed_point(rule, theta0=start))
            found[str(start)] = fp
        out["multistable"][label] = found
    groups = {"env_config": {"n_actions": 8, "group_size": 8}}
    for preset in ("grpo_no_kl", "grpo"):
        rule = build_config("bandit", preset, groups, seed=0).update_rule()
        out["grpo"][preset] = {"G=8 (exact)": point(fixed_point(rule, group_size=8)),
                               "G→∞ (limit)": point(fixed_point(rule))}
    for preset in ("dpo", "ppo"):
        out["dpo"][preset] = point(fixed_point(build_config("bandit", preset, {}, seed=0).update_rule()))
    path = ROOT / "docs" / "results" / "bandit_multistability.json"
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
