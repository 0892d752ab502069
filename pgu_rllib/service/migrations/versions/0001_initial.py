"""The schema of pgu-rllib 0.1 before Alembic: JSON kept as text, statuses as strings, one
"held-out" evaluation set that both chose the winner and scored it.

Revision ID: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pgu_searches",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("space", sa.String(200), nullable=False),
        sa.Column("space_yaml", sa.Text, nullable=False),
        sa.Column("settings", sa.Text, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("storage_path", sa.Text, nullable=False),
        sa.Column("versions", sa.Text, nullable=False),
        sa.Column("git_commit", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "pgu_trials",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("search_id", sa.Integer, sa.ForeignKey("pgu_searches.id"), nullable=False),
        sa.Column("tune_trial_id", sa.String(64), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("env_steps", sa.Integer, nullable=False),
        sa.Column("iterations", sa.Integer, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=True),
        sa.Column("curve", sa.Text, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("search_id", "tune_trial_id"),
    )
    op.create_table(
        "pgu_evaluations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("search_id", sa.Integer, sa.ForeignKey("pgu_searches.id"), nullable=False),
        sa.Column("candidate", sa.Integer, nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("node_id", sa.String(64), nullable=True),
        sa.Column("finished_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("search_id", "candidate", "seed"),
    )
    op.create_table(
        "pgu_best",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("space", sa.String(200), nullable=False),
        sa.Column("search_name", sa.String(200), nullable=False),
        sa.Column("preset", sa.String(64), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("tuning_score", sa.Float, nullable=False),
        sa.Column("heldout_mean", sa.Float, nullable=False),
        sa.Column("heldout_std", sa.Float, nullable=False),
        sa.Column("heldout_median", sa.Float, nullable=False),
        sa.Column("heldout_scores", sa.Text, nullable=False),
        sa.Column("protocol", sa.Text, nullable=False),
        sa.Column("versions", sa.Text, nullable=False),
        sa.Column("git_commit", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("task", "space"),
    )


def downgrade() -> None:
    for table in ("pgu_best", "pgu_evaluations", "pgu_trials", "pgu_searches"):
        op.drop_table(table)
