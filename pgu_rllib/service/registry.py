"""The registry: searches, trials, selection and test evaluations, and the best configuration
per (task, space), in any SQLAlchemy database (default ``sqlite:///pgu_results/registry.db``).

Every write is one transaction, so a crash leaves whole rows or none. The Optuna study of a
search lives in the same database (Optuna's own tables), so optuna-dashboard opens it.

**Schema versions.** The schema is managed by Alembic (``pgu_rllib/migrations``; its version
table is ``pgu_alembic_version``, apart from Optuna's ``alembic_version``). A writer
(``connect()``) creates or upgrades it; a registry written before Alembic (the schema of
pgu-rllib ≤ 0.1, revision ``0001``) is recognised and upgraded in place. A reader refuses an
old registry with one line that says how to upgrade it (``pgu registry upgrade``), so reading
never writes.

Example::

    >>> reg = Registry("sqlite://").connect()          # in memory
    >>> reg.best("bandit") is None
    True
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import tempfile
import time

import sqlalchemy as sa
from sqlalchemy import orm

from pgu_rllib.service.tables import (BestRow, EvaluationRow, Phase, SearchRow, SearchStatus, TrialRow, TrialStatus,
                                      columns, now)
from pgu_rllib.service.urls import DEFAULT_URL, check_url, first_line, mask_password, url_secrets

VERSION_TABLE = "pgu_alembic_version"
SCHEMA_LOCK_KEY = 0x7067755F72656721  # PostgreSQL advisory lock of the schema migration ("pgu_reg!")
REGISTRY_ENV = "PGU_REGISTRY_URL"  # how a search's Tune callbacks find its registry (never pickled)
MIGRATIONS = pathlib.Path(__file__).resolve().parent / "migrations"


def _alembic_config(connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(None)).get_current_head()


def known_revisions() -> set[str]:
    """Every schema revision this pgu-rllib's migrations know."""
    from alembic.script import ScriptDirectory

    return {rev.revision for rev in ScriptDirectory.from_config(_alembic_config(None)).walk_revisions()}


def _revision(connection) -> str | None:
    """The schema revision, ``"0001"`` for a pre-Alembic registry, None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    current = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()
    if current is None and sa.inspect(connection).has_table("pgu_searches"):
        return "0001"
    return current


class Registry:
    """A handle on the registry database. ``connect()`` creates or upgrades its schema."""

    def __init__(self, url: str = DEFAULT_URL):
        self.url = url
        parsed = check_url(url)
        self._sqlite_path = parsed.database if parsed.get_backend_name() == "sqlite" else None
        try:
            self.engine = sa.create_engine(parsed, future=True, pool_pre_ping=True, **engine_kwargs(url))
        except Exception as err:  # unknown dialect, missing driver
            raise ValueError(f"registry URL {self.safe_url!r} cannot be used: {type(err).__name__}: "
                             f"{first_line(err, url_secrets(url))}") from None
        self.Session = orm.sessionmaker(self.engine, expire_on_commit=False)

    def _unreachable(self, err) -> ValueError:
        return ValueError(f"registry {self.safe_url} is unreachable: "
                          f"{first_line(getattr(err, 'orig', err), url_secrets(self.url))}")

    def connect(self) -> "Registry":
        """Create the directory (SQLite) and create or upgrade the schema to the current revision.

        One process migrates at a time: the revision is read again and the migration runs inside
        ``_schema_transaction`` (SQLite: one EXCLUSIVE transaction, in which its DDL is atomic;
        PostgreSQL: a transaction-scoped advisory lock). Two searches that start at once on a new
        registry therefore never interleave their migrations: the second finds the schema made
        (``tests/test_registry.py``)."""
        from alembic import command

        current = self.check_not_newer()
        if self._sqlite_path and self._sqlite_path != ":memory:":
            pathlib.Path(self._sqlite_path).parent.mkdir(parents=True, exist_ok=True)
        try:
            if current == head_revision():  # the common case, without the lock
                return self
            with self._schema_transaction() as conn:
                current = _revision(conn)
                if current == head_revision():
                    return self
                cfg = _alembic_config(conn)
                if current == "0001" and not _has_version_table(conn):
                    command.stamp(cfg, "0001")
                command.upgrade(cfg, "head")
        except sa.exc.SQLAlchemyError as err:
            raise self._unreachable(err) from None
        return self

    @contextlib.contextmanager
    def _schema_transaction(self):
        """A connection in a transaction that holds the schema lock until it commits."""
        with self.engine.connect() as conn:
            if self.engine.dialect.name == "sqlite":
                dbapi = conn.connection.dbapi_connection
                implicit = dbapi.isolation_level
                dbapi.isolation_level = None  # pysqlite's implicit BEGIN off: ours takes the write lock first
                try:
                    conn.exec_driver_sql("BEGIN EXCLUSIVE")  # waits out another migrator (the busy timeout)
                    try:
                        yield conn
                    except BaseException:
                        conn.rollback()
                        raise
                    conn.commit()
                finally:
                    dbapi.isolation_level = implicit
            else:
                with conn.begin():
                    if self.engine.dialect.name == "postgresql":
                        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})")
                    yield conn

    def check_reachable(self, write: bool = True) -> None:
        """Open and close one connection without writing anything; for SQLite, check that the file
        (or the folders it needs) can be created, or, for a reader (``write=False``), read."""
        if self._sqlite_path and self._sqlite_path != ":memory:":
            path = pathlib.Path(self._sqlite_path)
            if path.exists():
                mode, what = (os.R_OK | os.W_OK, "writable") if write else (os.R_OK, "readable")
                if not (path.is_file() and os.access(path, mode)):
                    raise ValueError(f"registry {self.safe_url} is unreachable: {path} is not a {what} file")
                return
            if not write:
                return
            ancestor = path.parent
            while not ancestor.exists():
                ancestor = ancestor.parent
            try:  # a probe folder, removed at once (os.access says yes to root even on /proc)
                if ancestor != path.parent or not os.access(ancestor, os.W_OK):
                    os.rmdir(tempfile.mkdtemp(prefix=".pgu-probe-", dir=ancestor))
            except OSError:
                raise ValueError(f"registry {self.safe_url} is unreachable: {path.parent} cannot be created") from None
            return
        try:
            with self.engine.connect():
                pass
        except sa.exc.SQLAlchemyError as err:
            raise self._unreachable(err) from None

    def schema(self) -> str | None:
        """The schema revision of the database (None when it holds no pgu tables)."""
        if self._sqlite_path and self._sqlite_path != ":memory:" and not pathlib.Path(self._sqlite_path).exists():
            return None
        try:
            with self.engine.connect() as conn:
                return _revision(conn)
        except sa.exc.SQLAlchemyError as err:
            raise self._unreachable(err) from None

    @property
    def in_memory(self) -> bool:
        return self._sqlite_path in (None, "", ":memory:") and self.url.startswith("sqlite")

    def check_not_newer(self) -> str | None:
        """``ValueError`` when a newer pgu-rllib wrote the database (a revision this one does not know);
        else the schema revision it read (``schema()``)."""
        current = self.schema()
        if current is not None and current not in known_revisions():
            raise ValueError(f"registry {self.safe_url} was written by a newer pgu-rllib (schema revision {current}); "
                             f"upgrade pgu-rllib to read or write it")
        return current

    def check_current(self) -> bool:
        """For readers: False when the database holds no pgu tables; ``ValueError`` (with the upgrade
        command) when it was written by an older schema."""
        current = self.check_not_newer()
        if current is None:
            return False
        if current != head_revision():
            raise ValueError(f"registry {self.safe_url} has schema {current}; this pgu-rllib reads {head_revision()}: "
                             f"upgrade it with `pgu registry upgrade --registry URL` (back it up first)")
        return True

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden (for logs and messages)."""
        return mask_password(self.url, url_secrets(self.url))

    # -- searches ---------------------------------------------------------------------------
    def search_exists(self, name: str) -> bool:
        """Whether a search ``name`` is stored, on any schema revision, without writing."""
        if self.schema() is None:
            return False
        try:
            with self.engine.connect() as conn:
                return conn.execute(sa.text("SELECT 1 FROM pgu_searches WHERE name = :n"), {"n": name}).first() is not None
        except sa.exc.SQLAlchemyError as err:
            raise self._unreachable(err) from None

    def get_search(self, name: str) -> SearchRow | None:
        with self.Session() as s:
            return s.scalar(sa.select(SearchRow).where(SearchRow.name == name))

    def start_search(self, *, name, task, space, space_yaml, settings, storage_path, versions, git_commit,
                     resume: bool, lease: tuple | None = None) -> SearchRow:
        """Create search ``name`` (or, with ``resume``, mark it running with ``settings``), taking its
        lease ``(holder, pid, host)`` in the same transaction: ``SearchLocked`` when a live process holds it."""
        from pgu_rllib.core.errors import SearchLocked

        holder, pid, host = lease or (None, None, None)
        with self.Session.begin() as s:
            row = s.scalar(sa.select(SearchRow).where(SearchRow.name == name).with_for_update())
            if row is None:
                row = SearchRow(name=name, task=task, space=space, space_yaml=space_yaml, settings=settings,
                                status=SearchStatus.RUNNING, storage_path=storage_path, versions=versions,
                                git_commit=git_commit, timings={})
                s.add(row)
            elif not resume:
                raise ValueError(f"search {name!r} already exists")
            else:
                if holder and row.lease_holder and row.lease_holder != holder and not _lease_expired(row, host):
                    raise SearchLocked(name, _holder(row))
                row.status = SearchStatus.RUNNING
                row.settings = settings
            if holder:
                row.lease_holder, row.lease_pid, row.lease_host, row.lease_heartbeat = holder, pid, host, now()
            s.flush()
            return row

    # -- the lease: one writer per search ------------------------------------------------------
    def acquire_lease(self, name: str, holder: str, pid: int, host: str) -> str | None:
        """Take the lease of search ``name`` for (holder, pid, host), in one transaction. Returns None,
        or a description of the live holder that keeps it. A lease is free when it has no holder, when
        its heartbeat is older than ``LEASE_TTL_S``, or when its holder was a process of this host that
        no longer runs (after ``kill -9``, a resume can start at once)."""
        with self.Session.begin() as s:
            row = s.scalar(sa.select(SearchRow).where(SearchRow.name == name).with_for_update())
            if row is None:
                raise KeyError(name)
            if row.lease_holder and row.lease_holder != holder and not _lease_expired(row, host):
                return _holder(row)
            row.lease_holder, row.lease_pid, row.lease_host, row.lease_heartbeat = holder, pid, host, now()
            return None

    def heartbeat(self, name: str, holder: str) -> bool:
        """Renew the lease; False when another process took it over (ours had expired)."""
        with self.Session.begin() as s:
            done = s.execute(sa.update(SearchRow).where(SearchRow.name == name, SearchRow.lease_holder == holder)
                             .values(lease_heartbeat=now()))
            return done.rowcount == 1

    def release_lease(self, name: str, holder: str) -> None:
        with self.Session.begin() as s:
            s.execute(sa.update(SearchRow).where(SearchRow.name == name, SearchRow.lease_holder == holder)
                      .values(lease_holder=None, lease_pid=None, lease_host=None, lease_heartbeat=None))

    def set_status(self, name: str, status: SearchStatus) -> None:
        with self.Session.begin() as s:
            s.execute(sa.update(SearchRow).where(SearchRow.name == name)
                      .values(status=SearchStatus(status), updated_at=now()))

    def add_timing(self, name: str, phase: str, *, wall_s: float, env_steps: int, eval_env_steps: int = 0) -> None:
        """Add one phase's wall time, training env steps and evaluation env steps to the search's totals
        (resumes and interrupted attempts add up)."""
        with self.Session.begin() as s:
            row = s.scalar(sa.select(SearchRow).where(SearchRow.name == name).with_for_update())
            timings = dict(row.timings or {})
            old = {"wall_s": 0.0, "env_steps": 0, "eval_env_steps": 0, **timings.get(phase, {})}
            timings[phase] = {"wall_s": old["wall_s"] + wall_s, "env_steps": old["env_steps"] + int(env_steps),
                              "eval_env_steps": old["eval_env_steps"] + int(eval_env_steps)}
            row.timings = timings

    # -- trials -----------------------------------------------------------------------------
    def record_trial(self, search_id: int, **fields) -> None:
        """Insert or replace the row of one finished Tune trial."""
        fields["status"] = TrialStatus(fields["status"])
        with self.Session.begin() as s:
            row = s.scalar(sa.select(TrialRow).where(TrialRow.search_id == search_id,
                                                      TrialRow.tune_trial_id == fields["tune_trial_id"]))
            if row is None:
                s.add(TrialRow(search_id=search_id, **fields))
            else:
                for k, v in fields.items():
                    setattr(row, k, v)

    def trial_ids(self, search_id: int) -> set[str]:
        """The Tune trial ids of the search's trial rows, one per row (unique per search), without loading their
        curves: what counts trials."""
        with self.Session() as s:
            return set(s.scalars(sa.select(TrialRow.tune_trial_id).where(TrialRow.search_id == search_id)).all())

    def trials(self, search_id: int) -> list[dict]:
        with self.Session() as s:
            rows = s.scalars(sa.select(TrialRow).where(TrialRow.search_id == search_id)
                             .order_by(TrialRow.id)).all()
            return [{**columns(r, skip=("id", "search_id", "finished_at")), "metrics": r.metrics or {}} for r in rows]

    # -- selection and test evaluations, the best row ------------------------------------------
    def record_evaluation(self, search_id: int, phase: Phase, row: dict) -> None:
        """Insert (or replace) one finished selection or test run, in its own transaction."""
        phase = Phase(phase)
        with self.Session.begin() as s:
            s.execute(sa.delete(EvaluationRow).where(
                EvaluationRow.search_id == search_id, EvaluationRow.phase == phase,
                EvaluationRow.candidate == row["candidate"], EvaluationRow.seed == row["seed"]))
            known = {c.name for c in EvaluationRow.__table__.columns} - {"id", "search_id", "phase", "finished_at"}
            s.add(EvaluationRow(search_id=search_id, phase=phase, **{k: v for k, v in row.items() if k in known}))

    def evaluations(self, search_id: int, phase: Phase | None = None) -> list[dict]:
        with self.Session() as s:
            q = sa.select(EvaluationRow).where(EvaluationRow.search_id == search_id)
            if phase is not None:
                q = q.where(EvaluationRow.phase == Phase(phase))
            return [columns(r, skip=("id", "search_id", "finished_at"))
                    for r in s.scalars(q.order_by(EvaluationRow.id)).all()]

    def put_best(self, **fields) -> None:
        """Upsert the best row of (task, space, protocol key) in one transaction."""
        fields["protocol_key"] = protocol_key(fields["protocol"])
        with self.Session.begin() as s:
            row = s.scalar(sa.select(BestRow).where(BestRow.task == fields["task"], BestRow.space == fields["space"],
                                                    BestRow.protocol_key == fields["protocol_key"]))
            if row is None:
                s.add(BestRow(**fields))
            else:
                for k, v in fields.items():
                    setattr(row, k, v)
                row.updated_at = now()

    def best(self, task: str, space: str | None = None, key: str | None = None) -> dict | None:
        """The best row for (task, space, protocol ``key``); without ``space`` or ``key``, the row with
        the highest *selection* mean among those (test scores are never used to choose)."""
        rows = self.best_rows(task, space, key)
        return max(rows, key=lambda r: r["selection_mean"]) if rows else None

    def best_rows(self, task: str, space: str | None = None, key: str | None = None) -> list[dict]:
        with self.Session() as s:
            q = sa.select(BestRow).where(BestRow.task == task)
            if space is not None:
                q = q.where(BestRow.space == space)
            if key is not None:
                q = q.where(BestRow.protocol_key == key)
            return [r.as_dict() for r in s.scalars(q.order_by(BestRow.space, BestRow.id)).all()]


LEASE_TTL_S = 60  # a lease whose heartbeat (every LEASE_HEARTBEAT_S) is older than this is free
LEASE_HEARTBEAT_S = 10


def _holder(row) -> str:
    beat = row.lease_heartbeat.isoformat(timespec="seconds") + "Z" if row.lease_heartbeat else "never"
    return f"pid {row.lease_pid} on {row.lease_host} (last heartbeat {beat})"


def _lease_expired(row, host: str) -> bool:
    if row.lease_heartbeat is None or (now() - row.lease_heartbeat).total_seconds() > LEASE_TTL_S:
        return True
    if row.lease_host == host and row.lease_pid:
        try:
            os.kill(row.lease_pid, 0)
        except ProcessLookupError:
            return True  # its process is gone (kill -9): the lease died with it
        except PermissionError:
            return False
    return False


def protocol_key(protocol: dict) -> str:
    """What makes two best rows comparable: the budget, the selection and test seed counts and the
    evaluation protocol (16 hex digits). A best row is replaced only by a search with the same key."""
    like = {"budget": protocol.get("budget_env_steps"), "selection_seeds": len(protocol.get("selection_seeds") or []),
            "test_seeds": len(protocol.get("test_seeds") or []), "evaluation": protocol.get("evaluation")}
    return hashlib.sha256(json.dumps(like, sort_keys=True).encode()).hexdigest()[:16]


SQLITE_BUSY_TIMEOUT_S = 60


def engine_kwargs(url: str) -> dict:
    """SQLite: wait up to a minute for another writer's transaction (two searches, or a reader,
    on one file) instead of failing with "database is locked". Used for Optuna's engine too."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    return {}


OPTUNA_STORAGE_TRIES = 3


def optuna_storage(url: str):
    """Optuna's RDB storage of a search, on the registry's database. Optuna's INFO lines ("A new study
    created ...", "Using an existing study ...") are silenced: the search's plan line names the study.
    (Optuna configures its logger on first use, which undoes a level set before: ``set_verbosity``.)

    Two searches that start at once on a new database both create Optuna's tables. Optuna creates them
    one statement at a time, outside a transaction, so the second creator's ``CREATE TABLE`` (or its
    version row) fails once the first has made it ("already exists", or SQLite's "database is locked"
    where the two writers' locks deadlock). Creation is tried again, up to ``OPTUNA_STORAGE_TRIES``
    times: a second try finds the tables made (``tests/test_registry.py``)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for attempt in range(1, OPTUNA_STORAGE_TRIES + 1):
        try:
            return optuna.storages.RDBStorage(url=url, engine_kwargs=engine_kwargs(url))
        except (sa.exc.OperationalError, sa.exc.IntegrityError, optuna.exceptions.StorageInternalError):
            if attempt == OPTUNA_STORAGE_TRIES:
                raise
            time.sleep(0.5 * attempt)


def _has_version_table(connection) -> bool:
    return sa.inspect(connection).has_table(VERSION_TABLE)


