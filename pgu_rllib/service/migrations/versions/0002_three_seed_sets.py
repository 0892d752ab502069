"""Three disjoint seed sets, JSON columns, per-phase timings and curves.

* ``pgu_evaluations`` gains ``phase`` (``selection`` | ``test``), ``curve`` and ``wall_s``; its
  unique key becomes (search, phase, candidate, seed). Rows of 0001 were "held-out" runs that
  chose the winner, so they become ``selection`` rows.
* ``pgu_best`` replaces ``heldout_*`` by ``selection_*`` and ``test_*``. A 0001 best row's
  held-out scores chose its winner, so they move to ``selection_*``; its ``test_*`` stay NULL
  (it has no scores that were never used for a choice), and its protocol says so.
* Text columns holding JSON become JSON columns; ``pgu_searches`` gains ``timings``.

Each table is rebuilt (create the new one, copy, drop, rename), the same way on SQLite and
PostgreSQL. There is no downgrade.

Revision ID: 0002
Revises: 0001
"""
import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

NOTE = ("migrated from schema 0001: these held-out seeds chose the winner and also scored it; "
        "there are no test scores")


def _tables(suffix: str) -> list[sa.Table]:
    md = sa.MetaData()
    searches = sa.Table(
        f"pgu_searches{suffix}", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("space", sa.String(200), nullable=False),
        sa.Column("space_yaml", sa.Text, nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("storage_path", sa.Text, nullable=False),
        sa.Column("versions", sa.JSON, nullable=False),
        sa.Column("git_commit", sa.String(64), nullable=True),
        sa.Column("timings", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    trials = sa.Table(
        f"pgu_trials{suffix}", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("search_id", sa.Integer, sa.ForeignKey(f"pgu_searches{suffix}.id"), nullable=False),
        sa.Column("tune_trial_id", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("env_steps", sa.Integer, nullable=False),
        sa.Column("iterations", sa.Integer, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=True),
        sa.Column("curve", sa.JSON, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("search_id", "tune_trial_id"),
    )
    evaluations = sa.Table(
        f"pgu_evaluations{suffix}", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("search_id", sa.Integer, sa.ForeignKey(f"pgu_searches{suffix}.id"), nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("candidate", sa.Integer, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("node_id", sa.String(64), nullable=True),
        sa.Column("curve", sa.JSON, nullable=False),
        sa.Column("wall_s", sa.Float, nullable=True),
        sa.Column("finished_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("search_id", "phase", "candidate", "seed"),
    )
    best = sa.Table(
        f"pgu_best{suffix}", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("space", sa.String(200), nullable=False),
        sa.Column("search_name", sa.String(200), nullable=False),
        sa.Column("preset", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("tuning_score", sa.Float, nullable=False),
        sa.Column("selection_mean", sa.Float, nullable=False),
        sa.Column("selection_scores", sa.JSON, nullable=False),
        sa.Column("selection_seeds", sa.JSON, nullable=False),
        *[sa.Column(f"test_{k}", sa.Float, nullable=True) for k in ("mean", "std", "median", "iqm")],
        *[sa.Column(f"test_{k}", sa.JSON, nullable=True) for k in ("ci95", "scores", "seeds")],
        sa.Column("protocol", sa.JSON, nullable=False),
        sa.Column("versions", sa.JSON, nullable=False),
        sa.Column("git_commit", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("task", "space"),
    )
    return [searches, trials, evaluations, best]


def _searches(r):
    return {**r, "settings": json.loads(r["settings"]), "versions": json.loads(r["versions"]), "timings": {}}


def _trials(r):
    return {**r, "params": json.loads(r["params"]), "curve": json.loads(r["curve"])}


def _evaluations(r):
    return {**r, "phase": "selection", "params": json.loads(r["params"]), "curve": [], "wall_s": None}


def _best(r):
    protocol = json.loads(r["protocol"])
    seeds = protocol.pop("test_seeds", [])
    protocol.update(selection_seeds=seeds, selection=NOTE)
    out = {k: v for k, v in r.items() if not k.startswith("heldout_")}
    return {**out, "params": json.loads(r["params"]), "config": json.loads(r["config"]),
            "versions": json.loads(r["versions"]), "protocol": protocol,
            "selection_mean": r["heldout_mean"], "selection_scores": json.loads(r["heldout_scores"]),
            "selection_seeds": seeds, "test_mean": None, "test_std": None, "test_median": None,
            "test_iqm": None, "test_ci95": None, "test_scores": None, "test_seeds": None}


def upgrade() -> None:
    bind = op.get_bind()
    new = _tables("_v2")
    for table in new:
        table.create(bind)
    for table, convert in zip(new, (_searches, _trials, _evaluations, _best)):
        old = sa.Table(table.name.removesuffix("_v2"), sa.MetaData(), autoload_with=bind)  # typed rows
        rows = [dict(r._mapping) for r in bind.execute(sa.select(old))]
        if rows:
            bind.execute(table.insert(), [convert(r) for r in rows])
    for table in reversed(new):
        op.drop_table(table.name.removesuffix("_v2"))
    for table in new:
        name = table.name.removesuffix("_v2")
        op.rename_table(table.name, name)
        if bind.dialect.name == "postgresql":  # copied ids: move the id sequence past them
            op.execute(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), COALESCE(MAX(id), 0) + 1, false) "
                       f"FROM {name}")


def downgrade() -> None:
    raise NotImplementedError("schema 0002 has no downgrade: restore the backup taken before upgrading")
