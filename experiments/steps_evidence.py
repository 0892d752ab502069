"""Issue 17: the new presets (npg, trpo, grpo, optimistic_pg) against ppo and pgpb, at equal
env-step budgets on the same five test seeds (2,000,000 … 2,000,004), on the bandit and CartPole.

* ``run``: ``pgu evaluate`` of each preset on each task (bandit 20k env steps, CartPole 50k), into
  ``docs/results/steps.db``; resumable (a complete evaluation is skipped). GRPO needs several actions
  per state: on the bandit it samples groups of 8 (``env_config: {group_size: 8}``); CartPole cannot.
* ``table``: the test scores (mean ± std, IQM) beside the bandit's exact fixed point of each rule
  (``tasks/bandit_expected``; a natural, trust-region or optimistic step has the same fixed points as
  its gradient, since F is positive definite: F⁻¹E[U] = 0 ⇔ E[U] = 0).

    python experiments/steps_evidence.py run && python experiments/steps_evidence.py table
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
REGISTRY = "sqlite:///docs/results/steps.db"
PRESETS = ("ppo", "pgpb", "npg", "trpo", "grpo", "optimistic_pg")
BUDGETS = {"bandit": 20_000, "cartpole": 50_000}
EXTRA = {("bandit", "grpo"): {"env_config": {"n_actions": 8, "group_size": 8}}}


def _name(task, preset):
    return f"steps-{task}-{preset}"


def run() -> None:
    from pgu_rllib.service.registry import Registry

    reg = Registry(REGISTRY.replace("sqlite:///", f"sqlite:///{ROOT}/"))
    for task, budget in BUDGETS.items():
        for preset in PRESETS:
            if task == "cartpole" and preset == "grpo":
                continue  # refused: CartPole samples one action per state
            name = _name(task, preset)
            status = reg.get_search(name).status.value if reg.schema() and reg.search_exists(name) else None
            if status == "complete":
                continue
            sets = [f"--set={k}={json.dumps(v)}" for k, v in EXTRA.get((task, preset), {}).items()]
            cmd = [sys.executable, "-m", "pgu_rllib.cli", "evaluate", "--task", task, "--preset", preset,
                   "--env-steps", str(budget), "--test-seeds", "5", "--seed", "0", "--max-concurrent", "2",
                   "--registry", REGISTRY, "--storage-path", "pgu_results/steps", "--name", name, *sets,
                   *(["--resume"] if status else [])]
            print("[steps]", " ".join(cmd), flush=True)
            subprocess.run(cmd, cwd=ROOT, check=True)


def table() -> None:
    import numpy as np

    from pgu_rllib.core.stats import summarize
    from pgu_rllib.service.registry import Registry
    from pgu_rllib.tasks.bandit_expected import fixed_point
    from pgu_rllib.tasks.training import build_config

    reg = Registry(REGISTRY.replace("sqlite:///", f"sqlite:///{ROOT}/"))
    print("| preset | bandit: exact fixed point θ, its greedy value | bandit: test mean ± std (IQM), 20k steps "
          "| CartPole: test mean ± std (IQM), 50k steps |\n|---|---|---|---|")
    for preset in PRESETS:
        rule = build_config("bandit", preset, EXTRA.get(("bandit", preset), {}), seed=0).update_rule()
        fp = fixed_point(rule)
        cells = [f"({fp['theta'][0]:.2f}, {fp['theta'][1]:.2f}), {fp['greedy']:.4f}"]
        for task in BUDGETS:
            row = reg.get_search(_name(task, preset)) if reg.search_exists(_name(task, preset)) else None
            scores = [e["score"] for e in reg.evaluations(row.id, "test")] if row else []
            if not scores:
                cells.append("refused (one action per state)" if preset == "grpo" else "—")
                continue
            s = summarize(scores)
            fmt = ".4f" if task == "bandit" else ".1f"
            cells.append(f"{s['mean']:{fmt}} ± {s['std']:{fmt}} ({s['iqm']:{fmt}})")
        print(f"| {preset} | " + " | ".join(cells) + " |")
    print(f"\noptimal greedy value on the bandit: {fixed_point.__globals__['greedy_value'](np.array([1.0, 1.0])):.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["run", "table"])
    {"run": run, "table": table}[ap.parse_args().what]()


if __name__ == "__main__":
    main()
