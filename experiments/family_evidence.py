"""Issue 22 §5: the new members of the family at equal env-step budgets, on the same five test seeds
(2,000,000 … 2,000,004) with the one evaluator, on the bandit (20k env steps, exact score) and
CartPole (50k env steps, 10 evaluation episodes):

* ``dpo`` (Lu et al.'s drift, α = 2, β = 0.6) against ``ppo`` and ``mla`` (α_o = α_r = 1);
* ``grpo`` (β = 0.04 reference KL, π_ref the initial policy) against ``grpo_no_kl`` (bandit only: GRPO
  needs several actions per state, the bandit samples groups of 8);
* optimistic gradient descent (``step=optimistic_sgd``, one step per batch as A2C) with a fixed c = 1
  against the adaptive c (hypergradient, β_c = 1, starting at 1).

``run`` stores every arm's runs in ``docs/results/family.db`` (resumable); ``table`` prints the test
scores with the bandit's exact fixed point of each rule beside them (``tasks/bandit_expected``) and
writes them to ``docs/results/family.json`` (the database is not committed).

``search`` is the fair comparison of the two optimistic arms: the a2c preset's learning rate was tuned
for Adam, so each arm's plain SGD learning rate is searched (``experiments/spaces/osgd_*.yaml``, lr
log-uniform in [0.001, 30]) with the same protocol for both arms: on the bandit 12 tuning trials (TPE,
ASHA), top 3 × 3 selection seeds; on CartPole 6 trials, top 2 × 2; the winner on the same 5 test seeds as
above (``--seed 0``). ``table`` adds those winners.

    python experiments/family_evidence.py run && python experiments/family_evidence.py search && \
        python experiments/family_evidence.py table
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
REGISTRY = "sqlite:///docs/results/family.db"
BUDGETS = {"bandit": 20_000, "cartpole": 50_000}
GROUPS = {"env_config": {"n_actions": 8, "group_size": 8}}
OSGD = {"step": "optimistic_sgd", "optimism": 1.0}
ARMS = {  # name -> (preset, overrides, tasks)
    "ppo": ("ppo", {}, ("bandit", "cartpole")),
    "mla": ("mla", {}, ("bandit", "cartpole")),
    "dpo": ("dpo", {}, ("bandit", "cartpole")),
    "grpo": ("grpo", GROUPS, ("bandit",)),
    "grpo_no_kl": ("grpo_no_kl", GROUPS, ("bandit",)),
    "osgd_fixed": ("a2c", OSGD, ("bandit", "cartpole")),
    "osgd_adaptive": ("a2c", {**OSGD, "optimism_adaptive": True, "optimism_lr": 1.0}, ("bandit", "cartpole")),
}


def _name(task, arm):
    return f"family-{task}-{arm}"


def _registry():
    from pgu_rllib.service.registry import Registry

    return Registry(REGISTRY.replace("sqlite:///", f"sqlite:///{ROOT}/"))


def run() -> None:
    reg = _registry()
    for task, budget in BUDGETS.items():
        for arm, (preset, overrides, tasks) in ARMS.items():
            if task not in tasks:
                continue
            name = _name(task, arm)
            status = reg.get_search(name).status.value if reg.schema() and reg.search_exists(name) else None
            if status == "complete":
                continue
            sets = [f"--set={k}={json.dumps(v)}" for k, v in overrides.items()]
            cmd = [sys.executable, "-m", "pgu_rllib.cli", "evaluate", "--task", task, "--preset", preset,
                   "--env-steps", str(budget), "--test-seeds", "5", "--seed", "0", "--max-concurrent", "2",
                   "--registry", REGISTRY, "--storage-path", "pgu_results/family", "--name", name, *sets,
                   *(["--resume"] if status else [])]
            print("[family]", " ".join(cmd), flush=True)
            subprocess.run(cmd, cwd=ROOT, check=True)


SEARCHED = {"osgd_fixed": "experiments/spaces/osgd_fixed.yaml", "osgd_adaptive": "experiments/spaces/osgd_adaptive.yaml"}
SEARCH_PROTOCOL = {"bandit": (12, 3, 3), "cartpole": (6, 2, 2)}  # tuning trials, top k, selection seeds


def _search_name(task, arm):
    return f"family-{task}-{arm}-searched-lr"


def search(tasks=("bandit",)) -> None:
    reg = _registry()
    for task in tasks:
        for arm, space in SEARCHED.items():
            name = _search_name(task, arm)
            status = reg.get_search(name).status.value if reg.schema() and reg.search_exists(name) else None
            if status == "complete":
                continue
            cmd = [sys.executable, "-m", "pgu_rllib.cli", "search", "--task", task, "--space", space,
                   "--trials", str(SEARCH_PROTOCOL[task][0]), "--env-steps", str(BUDGETS[task]), "--seed", "0",
                   "--top-k", str(SEARCH_PROTOCOL[task][1]), "--selection-seeds", str(SEARCH_PROTOCOL[task][2]),
                   "--test-seeds", "5", "--max-concurrent", "2",
                   "--registry", REGISTRY, "--storage-path", "pgu_results/family", "--name", name,
                   *(["--resume"] if status else [])]
            print("[family]", " ".join(cmd), flush=True)
            subprocess.run(cmd, cwd=ROOT, check=True)


def searched_table(reg, stored: dict) -> None:
    from pgu_rllib.core.stats import summarize

    print("\n| arm (SGD lr searched) | task | winner's lr | selection mean | test mean ± std (IQM) |\n|---|---|---|---|---|")
    for arm in SEARCHED:
        for task in BUDGETS:
            name = _search_name(task, arm)
            if not (reg.schema() and reg.search_exists(name)):
                continue
            row = reg.get_search(name)
            best = next((b for b in reg.best_rows(task) if b["search_name"] == name), None)
            if best is None:
                continue
            s = summarize(best["test_scores"])
            fmt = ".4f" if task == "bandit" else ".1f"
            stored.setdefault(f"{arm}_searched_lr", {})[task] = {
                "search": name, "budget": row.settings["env_steps"], "trials": row.settings["trials"],
                "lr": best["params"]["lr"], "selection_mean": best["selection_mean"],
                "test_seeds": best["test_seeds"], "scores": best["test_scores"], "mean": s["mean"], "std": s["std"],
                "iqm": s["iqm"]}
            print(f"| {arm} | {task} | {best['params']['lr']:.4g} | {best['selection_mean']:{fmt}} | "
                  f"{s['mean']:{fmt}} ± {s['std']:{fmt}} ({s['iqm']:{fmt}}) |")


def table() -> None:
    from pgu_rllib.core.stats import summarize
    from pgu_rllib.tasks.bandit_expected import fixed_point
    from pgu_rllib.tasks.training import build_config

    reg = _registry()
    stored = {}
    print("| arm | bandit: exact fixed point θ, greedy value | bandit: test mean ± std (IQM), 20k steps "
          "| CartPole: test mean ± std (IQM), 50k steps |\n|---|---|---|---|")
    for arm, (preset, overrides, tasks) in ARMS.items():
        rule = build_config("bandit", preset, overrides, seed=0).update_rule()
        fp = fixed_point(rule, group_size=8 if rule.delta_r == "group" else None)  # the runs' groups of 8
        cells = [f"({fp['theta'][0]:.3f}, {fp['theta'][1]:.3f}), {fp['greedy']:.4f}"]
        stored[arm] = {"preset": preset, "overrides": overrides, "bandit_fixed_point": [float(x) for x in fp["theta"]],
                       "bandit_fixed_point_greedy": float(fp["greedy"])}
        for task in BUDGETS:
            name = _name(task, arm)
            row = reg.get_search(name) if reg.search_exists(name) else None
            scores = [e["score"] for e in reg.evaluations(row.id, "test")] if row else []
            if not scores:
                cells.append("— (needs groups)" if task not in tasks else "not run")
                continue
            s = summarize(scores)
            stored[arm][task] = {"budget": BUDGETS[task], "test_seeds": [e["seed"] for e in reg.evaluations(row.id, "test")],
                                 "scores": scores, "mean": s["mean"], "std": s["std"], "iqm": s["iqm"]}
            fmt = ".4f" if task == "bandit" else ".1f"
            cells.append(f"{s['mean']:{fmt}} ± {s['std']:{fmt}} ({s['iqm']:{fmt}})")
        print(f"| {arm} | " + " | ".join(cells) + " |")
    searched_table(reg, stored)
    (ROOT / "docs/results/family.json").write_text(json.dumps(stored, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["run", "search", "table"])
    ap.add_argument("--tasks", nargs="+", default=["bandit"], choices=list(BUDGETS), help="for search")
    args = ap.parse_args()
    if args.what == "search":
        search(tuple(args.tasks))
    else:
        {"run": run, "table": table}[args.what]()


if __name__ == "__main__":
    main()
