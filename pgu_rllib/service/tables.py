"""The registry's tables (SQLAlchemy models) and the enums of their status columns. Every reader turns a row
into a dict of its columns (``columns``), so a new column shows up in every reader by itself; a new column
needs this file and a migration (``migrations/versions``), nothing else (docs/architecture.md)."""
from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy import orm


class SearchStatus(str, enum.Enum):
    RUNNING = "running"
    COMPLETE = "complete"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


class TrialStatus(str, enum.Enum):
    COMPLETE = "complete"  # ran the full budget
    STOPPED_EARLY = "stopped_early"  # stopped by the scheduler (ASHA)
    ERROR = "error"


class Phase(str, enum.Enum):
    SELECTION = "selection"  # top-k re-trained on the selection seeds; the winner is chosen here
    TEST = "test"  # the winner re-trained on the test seeds; reported, never used for a choice


def _enum(cls):
    return sa.Enum(cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e],
                   validate_strings=True, create_constraint=False)


class Base(orm.DeclarativeBase):
    type_annotation_map = {dict: sa.JSON, list: sa.JSON}


def now():
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class SearchRow(Base):
    __tablename__ = "pgu_searches"
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    name: orm.Mapped[str] = orm.mapped_column(sa.String(200), unique=True)
    task: orm.Mapped[str] = orm.mapped_column(sa.String(64))
    space: orm.Mapped[str] = orm.mapped_column(sa.String(200))
    space_yaml: orm.Mapped[str] = orm.mapped_column(sa.Text)
    settings: orm.Mapped[dict]  # trials, budget, seed, ...
    status: orm.Mapped[SearchStatus] = orm.mapped_column(_enum(SearchStatus))
    storage_path: orm.Mapped[str] = orm.mapped_column(sa.Text)
    versions: orm.Mapped[dict]
    git_commit: orm.Mapped[str | None] = orm.mapped_column(sa.String(64), nullable=True)
    timings: orm.Mapped[dict] = orm.mapped_column(default=dict)  # phase -> {wall_s, env_steps, eval_env_steps}
    # the lease of the one process writing this search (holder, pid, host, heartbeat); NULL when none
    lease_holder: orm.Mapped[str | None] = orm.mapped_column(sa.String(100), nullable=True)
    lease_pid: orm.Mapped[int | None] = orm.mapped_column(sa.Integer, nullable=True)
    lease_host: orm.Mapped[str | None] = orm.mapped_column(sa.String(255), nullable=True)
    lease_heartbeat: orm.Mapped[dt.datetime | None] = orm.mapped_column(nullable=True)
    created_at: orm.Mapped[dt.datetime] = orm.mapped_column(default=now)
    updated_at: orm.Mapped[dt.datetime] = orm.mapped_column(default=now, onupdate=now)


class TrialRow(Base):
    __tablename__ = "pgu_trials"
    __table_args__ = (sa.UniqueConstraint("search_id", "tune_trial_id"),)
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    search_id: orm.Mapped[int] = orm.mapped_column(sa.ForeignKey("pgu_searches.id"))
    tune_trial_id: orm.Mapped[str] = orm.mapped_column(sa.String(64))
    params: orm.Mapped[dict]  # the sampled keys
    score: orm.Mapped[float | None] = orm.mapped_column(sa.Float, nullable=True)
    env_steps: orm.Mapped[int] = orm.mapped_column(sa.Integer, default=0)
    iterations: orm.Mapped[int] = orm.mapped_column(sa.Integer, default=0)
    status: orm.Mapped[TrialStatus] = orm.mapped_column(_enum(TrialStatus))
    node_id: orm.Mapped[str | None] = orm.mapped_column(sa.String(64), nullable=True)
    curve: orm.Mapped[list] = orm.mapped_column(default=list)  # [[env_steps, objective], ...]
    config_hash: orm.Mapped[str | None] = orm.mapped_column(sa.String(64), nullable=True)
    metrics: orm.Mapped[dict | None] = orm.mapped_column(nullable=True)  # both objectives at its end, eval env steps
    finished_at: orm.Mapped[dt.datetime] = orm.mapped_column(default=now)


class EvaluationRow(Base):
    __tablename__ = "pgu_evaluations"
    __table_args__ = (sa.UniqueConstraint("search_id", "phase", "candidate", "seed"),)
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    search_id: orm.Mapped[int] = orm.mapped_column(sa.ForeignKey("pgu_searches.id"))
    phase: orm.Mapped[Phase] = orm.mapped_column(_enum(Phase))
    candidate: orm.Mapped[int] = orm.mapped_column(sa.Integer)  # rank by tuning score, 0 = best
    params: orm.Mapped[dict]
    seed: orm.Mapped[int] = orm.mapped_column(sa.Integer)
    score: orm.Mapped[float] = orm.mapped_column(sa.Float)
    node_id: orm.Mapped[str | None] = orm.mapped_column(sa.String(64), nullable=True)
    curve: orm.Mapped[list] = orm.mapped_column(default=list)  # [[env_steps, objective], ...]
    wall_s: orm.Mapped[float | None] = orm.mapped_column(sa.Float, nullable=True)
    # what it ran: the hash of its resolved configuration, budget and evaluation protocol (reuse needs a match)
    config_hash: orm.Mapped[str | None] = orm.mapped_column(sa.String(64), nullable=True)
    policy_path: orm.Mapped[str | None] = orm.mapped_column(sa.Text, nullable=True)  # the stored final policy
    eval_env_steps: orm.Mapped[int | None] = orm.mapped_column(sa.Integer, nullable=True)
    finished_at: orm.Mapped[dt.datetime] = orm.mapped_column(default=now)


class BestRow(Base):
    __tablename__ = "pgu_best"
    __table_args__ = (sa.UniqueConstraint("task", "space", "protocol_key"),)
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    task: orm.Mapped[str] = orm.mapped_column(sa.String(64))
    space: orm.Mapped[str] = orm.mapped_column(sa.String(200))
    protocol_key: orm.Mapped[str] = orm.mapped_column(sa.String(64))  # budget, seed counts, evaluation: like with like
    search_name: orm.Mapped[str] = orm.mapped_column(sa.String(200))
    preset: orm.Mapped[str] = orm.mapped_column(sa.String(64))
    params: orm.Mapped[dict]  # overrides on top of the preset
    config: orm.Mapped[dict]  # the readable summary
    tuning_score: orm.Mapped[float] = orm.mapped_column(sa.Float)
    selection_mean: orm.Mapped[float] = orm.mapped_column(sa.Float)
    selection_scores: orm.Mapped[list]
    selection_seeds: orm.Mapped[list]
    # NULL for rows migrated from the old schema, which had no test seeds.
    test_mean: orm.Mapped[float | None] = orm.mapped_column(sa.Float, nullable=True)
    test_std: orm.Mapped[float | None] = orm.mapped_column(sa.Float, nullable=True)
    test_median: orm.Mapped[float | None] = orm.mapped_column(sa.Float, nullable=True)
    test_iqm: orm.Mapped[float | None] = orm.mapped_column(sa.Float, nullable=True)
    test_ci95: orm.Mapped[list | None] = orm.mapped_column(nullable=True)
    test_scores: orm.Mapped[list | None] = orm.mapped_column(nullable=True)
    test_seeds: orm.Mapped[list | None] = orm.mapped_column(nullable=True)
    protocol: orm.Mapped[dict]  # budget, evaluation, seed sets, selection rule
    versions: orm.Mapped[dict]
    git_commit: orm.Mapped[str | None] = orm.mapped_column(sa.String(64), nullable=True)
    created_at: orm.Mapped[dt.datetime] = orm.mapped_column(default=now)
    updated_at: orm.Mapped[dt.datetime] = orm.mapped_column(default=now, onupdate=now)

    def as_dict(self) -> dict:
        out = {c.name: getattr(self, c.name) for c in self.__table__.columns}
        for key in ("created_at", "updated_at"):
            out[key] = out[key].isoformat() + "Z"
        return out


def columns(row, skip=()) -> dict:
    """A row as a dict of its columns (enums as their values): a new column shows up in every reader."""
    out = {}
    for column in row.__table__.columns:
        if column.name not in skip:
            value = getattr(row, column.name)
            out[column.name] = value.value if isinstance(value, enum.Enum) else value
    return out
