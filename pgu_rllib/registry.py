"""The registry: searches, trials, held-out evaluations and the best configuration per
(task, space), in any SQLAlchemy database (default ``sqlite:///pgu_results/registry.db``).

Every write is one transaction, so a crash leaves whole rows or none. The Optuna study of
a search lives in the same database (Optuna's own tables), so optuna-dashboard opens it.

Example::

    >>> reg = Registry("sqlite://")          # in memory
    >>> reg.best("bandit") is None
    True
"""
from __future__ import annotations

import datetime as dt
import json
import pathlib

import sqlalchemy as sa
from sqlalchemy import orm

DEFAULT_URL = "sqlite:///pgu_results/registry.db"


class Base(orm.DeclarativeBase):
    pass


def _now():
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class SearchRow(Base):
    __tablename__ = "pgu_searches"
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    name: orm.Mapped[str] = orm.mapped_column(sa.String(200), unique=True)
    task: orm.Mapped[str] = orm.mapped_column(sa.String(64))
    space: orm.Mapped[str] = orm.mapped_column(sa.String(200))
    space_yaml: orm.Mapped[str] = orm.mapped_column(sa.Text)
    settings: orm.Mapped[str] = orm.mapped_column(sa.Text)  # JSON: trials, budget, seed, ...
    status: orm.Mapped[str] = orm.mapped_column(sa.String(32))  # running|complete|interrupted|failed
    storage_path: orm.Mapped[str] = orm.mapped_column(sa.Text)
    versions: orm.Mapped[str] = orm.mapped_column(sa.Text)
    git_commit: orm.Mapped[str | None] = orm.mapped_column(sa.String(64), nullable=True)
    created_at: orm.Mapped[dt.datetime] = orm.mapped_column(default=_now)
    updated_at: orm.Mapped[dt.datetime] = orm.mapped_column(default=_now, onupdate=_now)


class TrialRow(Base):
    __tablename__ = "pgu_trials"
    __table_args__ = (sa.UniqueConstraint("search_id", "tune_trial_id"),)
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    search_id: orm.Mapped[int] = orm.mapped_column(sa.ForeignKey("pgu_searches.id"))
    tune_trial_id: orm.Mapped[str] = orm.mapped_column(sa.String(64))
    params: orm.Mapped[str] = orm.mapped_column(sa.Text)  # JSON: the sampled keys
    score: orm.Mapped[float | None] = orm.mapped_column(sa.Float, nullable=True)
    env_steps: orm.Mapped[int] = orm.mapped_column(sa.Integer, default=0)
    iterations: orm.Mapped[int] = orm.mapped_column(sa.Integer, default=0)
    status: orm.Mapped[str] = orm.mapped_column(sa.String(32))  # complete|stopped_early|error
    node_id: orm.Mapped[str | None] = orm.mapped_column(sa.String(64), nullable=True)
    curve: orm.Mapped[str] = orm.mapped_column(sa.Text, default="[]")  # JSON [[env_steps, objective]]
    finished_at: orm.Mapped[dt.datetime] = orm.mapped_column(default=_now)


class EvaluationRow(Base):
    __tablename__ = "pgu_evaluations"
    __table_args__ = (sa.UniqueConstraint("search_id", "candidate", "seed"),)
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    search_id: orm.Mapped[int] = orm.mapped_column(sa.ForeignKey("pgu_searches.id"))
    candidate: orm.Mapped[int] = orm.mapped_column(sa.Integer)  # rank by tuning score, 0 = best
    params: orm.Mapped[str] = orm.mapped_column(sa.Text)
    seed: orm.Mapped[int] = orm.mapped_column(sa.Integer)
    score: orm.Mapped[float] = orm.mapped_column(sa.Float)
    node_id: orm.Mapped[str | None] = orm.mapped_column(sa.String(64), nullable=True)
    finished_at: orm.Mapped[dt.datetime] = orm.mapped_column(default=_now)


class BestRow(Base):
    __tablename__ = "pgu_best"
    __table_args__ = (sa.UniqueConstraint("task", "space"),)
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    task: orm.Mapped[str] = orm.mapped_column(sa.String(64))
    space: orm.Mapped[str] = orm.mapped_column(sa.String(200))
    search_name: orm.Mapped[str] = orm.mapped_column(sa.String(200))
    preset: orm.Mapped[str] = orm.mapped_column(sa.String(64))
    params: orm.Mapped[str] = orm.mapped_column(sa.Text)   # JSON: overrides on top of the preset
    config: orm.Mapped[str] = orm.mapped_column(sa.Text)   # JSON: the readable summary
    tuning_score: orm.Mapped[float] = orm.mapped_column(sa.Float)
    heldout_mean: orm.Mapped[float] = orm.mapped_column(sa.Float)
    heldout_std: orm.Mapped[float] = orm.mapped_column(sa.Float)
    heldout_median: orm.Mapped[float] = orm.mapped_column(sa.Float)
    heldout_scores: orm.Mapped[str] = orm.mapped_column(sa.Text)
    protocol: orm.Mapped[str] = orm.mapped_column(sa.Text)  # JSON: budget, eval, seeds
    versions: orm.Mapped[str] = orm.mapped_column(sa.Text)
    git_commit: orm.Mapped[str | None] = orm.mapped_column(sa.String(64), nullable=True)
    created_at: orm.Mapped[dt.datetime] = orm.mapped_column(default=_now)
    updated_at: orm.Mapped[dt.datetime] = orm.mapped_column(default=_now, onupdate=_now)

    def as_dict(self) -> dict:
        out = {c.name: getattr(self, c.name) for c in self.__table__.columns}
        for key in ("params", "config", "heldout_scores", "protocol", "versions"):
            out[key] = json.loads(out[key])
        for key in ("created_at", "updated_at"):
            out[key] = out[key].isoformat() + "Z"
        return out


def check_url(url: str) -> sa.engine.URL:
    """Parse ``url`` or raise a one-line ``ValueError``."""
    try:
        return sa.engine.make_url(url)
    except Exception:
        raise ValueError(f"registry URL {url!r} is malformed; expected an SQLAlchemy URL such as "
                         f"{DEFAULT_URL} or postgresql://user@host/db") from None


class Registry:
    """A handle on the registry database. ``connect()`` checks it is reachable."""

    def __init__(self, url: str = DEFAULT_URL):
        self.url = url
        parsed = check_url(url)
        self._sqlite_path = parsed.database if parsed.get_backend_name() == "sqlite" else None
        try:
            self.engine = sa.create_engine(parsed, future=True, pool_pre_ping=True)
        except Exception as err:  # unknown dialect, missing driver
            raise ValueError(f"registry URL {url!r} cannot be used: {type(err).__name__}: "
                             f"{str(err).splitlines()[0]}") from None
        self.Session = orm.sessionmaker(self.engine, expire_on_commit=False)

    def connect(self) -> "Registry":
        """Create the directory (SQLite) and tables; raise ``ValueError`` if unreachable."""
        if self._sqlite_path and self._sqlite_path != ":memory:":
            parent = pathlib.Path(self._sqlite_path).parent
            if not parent.exists():
                parent.mkdir(parents=True, exist_ok=True)
        try:
            Base.metadata.create_all(self.engine)
        except sa.exc.SQLAlchemyError as err:
            raise ValueError(f"registry {self.safe_url} is unreachable: "
                             f"{str(err.orig if hasattr(err, 'orig') else err).splitlines()[0]}") from None
        return self

    def check_reachable(self) -> None:
        """Open and close one connection without writing anything."""
        if self._sqlite_path and self._sqlite_path != ":memory:":
            parent = pathlib.Path(self._sqlite_path).parent
            if parent.exists() and not parent.is_dir():
                raise ValueError(f"registry {self.safe_url} is unreachable: {parent} is not a directory")
            return
        try:
            with self.engine.connect():
                pass
        except sa.exc.SQLAlchemyError as err:
            raise ValueError(f"registry {self.safe_url} is unreachable: "
                             f"{str(getattr(err, 'orig', err)).splitlines()[0]}") from None

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden (for logs)."""
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    # -- searches ---------------------------------------------------------------------------
    def get_search(self, name: str) -> SearchRow | None:
        with self.Session() as s:
            return s.scalar(sa.select(SearchRow).where(SearchRow.name == name))

    def start_search(self, *, name, task, space, space_yaml, settings, storage_path, versions, git_commit,
                     resume: bool) -> SearchRow:
        with self.Session.begin() as s:
            row = s.scalar(sa.select(SearchRow).where(SearchRow.name == name))
            if row is None:
                row = SearchRow(name=name, task=task, space=space, space_yaml=space_yaml,
                                settings=json.dumps(settings), status="running", storage_path=storage_path,
                                versions=json.dumps(versions), git_commit=git_commit)
                s.add(row)
            elif not resume:
                raise ValueError(f"search {name!r} already exists; pass --resume to continue it or a new --name")
            else:
                row.status = "running"
            s.flush()
            return row

    def set_status(self, name: str, status: str) -> None:
        with self.Session.begin() as s:
            s.execute(sa.update(SearchRow).where(SearchRow.name == name).values(status=status, updated_at=_now()))

    # -- trials -----------------------------------------------------------------------------
    def record_trial(self, search_id: int, **fields) -> None:
        """Insert or replace the row of one finished Tune trial."""
        fields = {k: (json.dumps(v) if k in ("params", "curve") else v) for k, v in fields.items()}
        with self.Session.begin() as s:
            row = s.scalar(sa.select(TrialRow).where(TrialRow.search_id == search_id,
                                                      TrialRow.tune_trial_id == fields["tune_trial_id"]))
            if row is None:
                s.add(TrialRow(search_id=search_id, **fields))
            else:
                for k, v in fields.items():
                    setattr(row, k, v)

    def trials(self, search_id: int) -> list[dict]:
        with self.Session() as s:
            rows = s.scalars(sa.select(TrialRow).where(TrialRow.search_id == search_id)
                             .order_by(TrialRow.id)).all()
            return [{"tune_trial_id": r.tune_trial_id, "params": json.loads(r.params), "score": r.score,
                     "env_steps": r.env_steps, "iterations": r.iterations, "status": r.status,
                     "node_id": r.node_id, "curve": json.loads(r.curve)} for r in rows]

    # -- held-out evaluations and the best row ------------------------------------------------
    def record_evaluations(self, search_id: int, rows: list[dict]) -> None:
        with self.Session.begin() as s:
            for r in rows:
                s.execute(sa.delete(EvaluationRow).where(EvaluationRow.search_id == search_id,
                                                         EvaluationRow.candidate == r["candidate"],
                                                         EvaluationRow.seed == r["seed"]))
                s.add(EvaluationRow(search_id=search_id, candidate=r["candidate"], params=json.dumps(r["params"]),
                                    seed=r["seed"], score=r["score"], node_id=r.get("node_id")))

    def evaluations(self, search_id: int) -> list[dict]:
        with self.Session() as s:
            rows = s.scalars(sa.select(EvaluationRow).where(EvaluationRow.search_id == search_id)).all()
            return [{"candidate": r.candidate, "params": json.loads(r.params), "seed": r.seed,
                     "score": r.score, "node_id": r.node_id} for r in rows]

    def put_best(self, **fields) -> None:
        """Upsert the best row of (task, space) in one transaction."""
        for key in ("params", "config", "heldout_scores", "protocol", "versions"):
            fields[key] = json.dumps(fields[key])
        with self.Session.begin() as s:
            row = s.scalar(sa.select(BestRow).where(BestRow.task == fields["task"], BestRow.space == fields["space"]))
            if row is None:
                s.add(BestRow(**fields))
            else:
                for k, v in fields.items():
                    setattr(row, k, v)
                row.updated_at = _now()

    def best(self, task: str, space: str | None = None) -> dict | None:
        """The best row for (task, space); without ``space`` the highest held-out mean of the task."""
        rows = self.best_rows(task, space)
        return max(rows, key=lambda r: r["heldout_mean"]) if rows else None

    def best_rows(self, task: str, space: str | None = None) -> list[dict]:
        with self.Session() as s:
            q = sa.select(BestRow).where(BestRow.task == task)
            if space is not None:
                q = q.where(BestRow.space == space)
            return [r.as_dict() for r in s.scalars(q.order_by(BestRow.space)).all()]
