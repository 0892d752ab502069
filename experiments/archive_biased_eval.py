"""Issue 21 §6: keep the Hopper evidence scored by the old, biased evaluator as a record.

Before the one evaluator (``core/policy.py``), selection and test scores came from RLlib's
``algo.evaluate()`` on the training env runner: a stochastic policy, unseeded episodes, the
observation filter still updating, and the first 10 episodes to *finish* out of 16 envs. This script
renames those searches and their Optuna studies to ``<name>-biased-eval`` in ``docs/results/mujoco.db``
(after upgrading it to the current schema), so the re-scored arms can run under the original names and
both stay in one registry. Their best rows are withdrawn (deleted from ``pgu_best``): they were chosen on
the biased selection score, and ``pgu best``, ``pgu export`` and ``pgu train --from-best`` serve best rows;
the record is the searches' trial and evaluation rows, which stay. A second run changes nothing.
The same for any registry and searches (the CartPole column of ``docs/reproduction.md`` §3):

    python experiments/archive_biased_eval.py
    python experiments/archive_biased_eval.py --registry sqlite:///docs/results/steps.db \\
        steps-cartpole-ppo steps-cartpole-pgpb steps-cartpole-npg steps-cartpole-trpo \\
        steps-cartpole-trpo-first-run steps-cartpole-optimistic_pg
"""
from __future__ import annotations

import argparse

import sqlalchemy as sa

from pgu_rllib.service.registry import Registry

REGISTRY = "sqlite:///docs/results/mujoco.db"
NAMES = ("hopper-ppo_knobs-s0", "hopper-full-s0", "hopper-ppo-preset-s0", "hopper-rlzoo-pgu-s0")
SUFFIX = "-biased-eval"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--registry", default=REGISTRY)
    ap.add_argument("names", nargs="*", default=list(NAMES), help="the searches to rename (default: Hopper's)")
    args = ap.parse_args()
    reg = Registry(args.registry).connect()  # upgrade to the current schema first
    with reg.engine.begin() as conn:
        has_studies = sa.inspect(conn).has_table("studies")  # `pgu evaluate` registries have no Optuna study
        for name in args.names:
            new = name + SUFFIX
            conn.execute(sa.text("DELETE FROM pgu_best WHERE search_name = :new"), {"new": new})
            if conn.execute(sa.text("SELECT 1 FROM pgu_searches WHERE name = :new"), {"new": new}).first():
                print(f"{name}: archived already as {new} (a search named {name} now is a re-scored one)")
                continue
            conn.execute(sa.text("DELETE FROM pgu_best WHERE search_name = :old"), {"old": name})
            conn.execute(sa.text("UPDATE pgu_searches SET name = :new WHERE name = :old"), {"new": new, "old": name})
            if has_studies:
                conn.execute(sa.text("UPDATE studies SET study_name = :new WHERE study_name = :old"),
                             {"new": new, "old": name})
        rows = conn.execute(sa.text("SELECT name FROM pgu_searches ORDER BY id")).fetchall()
        best = conn.execute(sa.text("SELECT search_name FROM pgu_best ORDER BY id")).fetchall()
    print("searches:", ", ".join(r[0] for r in rows))
    print("best rows of:", ", ".join(r[0] for r in best) or "none")


if __name__ == "__main__":
    main()
