"""Runs keyed by what they ran, one writer per search, stored policies, best rows like with like.

* ``pgu_trials`` gains ``config_hash`` (the resolved configuration, budget and protocol it ran)
  and ``metrics`` (both objectives at its end and the evaluation's env steps);
* ``pgu_evaluations`` gains ``config_hash``, ``policy_path`` (the stored final policy) and
  ``eval_env_steps``. A row is reused on resume only when its hash matches;
* ``pgu_searches`` gains a lease (``lease_holder``, ``lease_pid``, ``lease_host``,
  ``lease_heartbeat``): one writer per search;
* ``pgu_best`` gains ``protocol_key`` (budget, seed counts, evaluation protocol), and its unique
  key becomes (task, space, protocol_key): a row is replaced only by a like search.

Rows of 0002 get NULL hashes (never reused by a resume: they are re-run once) and a protocol key
computed from their stored protocol. The ``pgu_best`` table is rebuilt (create, copy, drop,
rename), the same way on SQLite and PostgreSQL; the other tables gain nullable columns. There is
no downgrade.

Revision ID: 0003
Revises: 0002
"""
import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def protocol_key(protocol: dict) -> str:
    """The same as ``pgu_rllib.service.registry.protocol_key`` at revision 0003 (kept here, frozen)."""
    like = {"budget": protocol.get("budget_env_steps"), "selection_seeds": len(protocol.get("selection_seeds") or []),
            "test_seeds": len(protocol.get("test_seeds") or []), "evaluation": protocol.get("evaluation")}
    return hashlib.sha256(json.dumps(like, sort_keys=True).encode()).hexdigest()[:16]


def _best(suffix: str) -> sa.Table:
    return sa.Table(
        f"pgu_best{suffix}", sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("space", sa.String(200), nullable=False),
        sa.Column("protocol_key", sa.String(64), nullable=False),
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
        sa.UniqueConstraint("task", "space", "protocol_key"),
    )


def upgrade() -> None:
    bind = op.get_bind()
    for name, column in (("lease_holder", sa.String(100)), ("lease_pid", sa.Integer), ("lease_host", sa.String(255)),
                         ("lease_heartbeat", sa.DateTime)):
        op.add_column("pgu_searches", sa.Column(name, column, nullable=True))
    op.add_column("pgu_trials", sa.Column("config_hash", sa.String(64), nullable=True))
    op.add_column("pgu_trials", sa.Column("metrics", sa.JSON, nullable=True))
    op.add_column("pgu_evaluations", sa.Column("config_hash", sa.String(64), nullable=True))
    op.add_column("pgu_evaluations", sa.Column("policy_path", sa.Text, nullable=True))
    op.add_column("pgu_evaluations", sa.Column("eval_env_steps", sa.Integer, nullable=True))

    new = _best("_v3")
    new.create(bind)
    old = sa.Table("pgu_best", sa.MetaData(), autoload_with=bind)
    rows = [dict(r._mapping) for r in bind.execute(sa.select(old))]
    for r in rows:
        protocol = r["protocol"] if isinstance(r["protocol"], dict) else json.loads(r["protocol"])
        r["protocol_key"] = protocol_key(protocol)
    if rows:
        bind.execute(new.insert(), rows)
    op.drop_table("pgu_best")
    op.rename_table("pgu_best_v3", "pgu_best")
    if bind.dialect.name == "postgresql":
        op.execute("SELECT setval(pg_get_serial_sequence('pgu_best', 'id'), COALESCE(MAX(id), 0) + 1, false) "
                   "FROM pgu_best")


def downgrade() -> None:
    raise NotImplementedError("schema 0003 has no downgrade: restore the backup taken before upgrading")
