"""The registry on SQLite: a fresh one, and one written by pgu-rllib 0.1 (schema 0001, before
Alembic: docs/results/evidence.db) which readers refuse without writing and ``pgu registry
upgrade`` migrates in place, keeping every row. PostgreSQL: tests/test_registry_postgres.py."""
import hashlib
import shutil

import optuna
import pytest

from pgu_rllib.service.registry import Registry, SearchStatus, head_revision
from test_registry_postgres import LEGACY, _check_upgraded


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_readers_refuse_an_old_schema_without_writing_and_upgrade_migrates_it(tmp_path, cli):
    pgu = cli
    db = tmp_path / "old.db"
    shutil.copy(LEGACY, db)
    url = f"sqlite:///{db}"
    before = _digest(db)
    for args in (["best", "--task", "hopper"], ["export", "--task", "hopper"], ["report", "--name", "x", "--out", "r"]):
        out = pgu(*args, "--registry", url, cwd=tmp_path)
        assert out.returncode == 2 and "has schema 0001" in out.stderr and "pgu registry upgrade" in out.stderr, out
        assert len(out.stderr.strip().splitlines()) == 1
    assert _digest(db) == before  # reading wrote nothing
    assert "schema 0001" in pgu("registry", "version", "--registry", url, cwd=tmp_path).stdout
    up = pgu("registry", "upgrade", "--registry", url, cwd=tmp_path)
    assert up.returncode == 0 and f"0001 -> {head_revision()}" in up.stdout, up.stderr
    _check_upgraded(Registry(url), upgrade=False)
    shown = pgu("best", "--task", "hopper", "--registry", url, cwd=tmp_path)
    assert shown.returncode == 0 and "no test scores" in shown.stdout
    studies = optuna.get_all_study_names(storage=url)  # Optuna's own tables were left alone
    assert len(studies) == 4 and optuna.load_study(study_name=studies[0], storage=url).trials


def test_fresh_registry_statuses_are_enums_and_json_round_trips(tmp_path):
    reg = Registry(f"sqlite:///{tmp_path}/sub/dir/r.db").connect()  # creates the folders
    assert reg.schema() == head_revision()
    row = reg.start_search(name="s", task="bandit", space="paper", space_yaml="", settings={"a": [1, 2]},
                           storage_path="", versions={}, git_commit=None, resume=False)
    assert reg.get_search("s").status is SearchStatus.RUNNING and reg.get_search("s").settings == {"a": [1, 2]}
    with pytest.raises(ValueError):
        reg.set_status("s", "finished")  # not a status
    with pytest.raises(ValueError):
        reg.record_trial(row.id, tune_trial_id="t", params={}, score=None, env_steps=0, iterations=0,
                         status="lost", node_id=None, curve=[])
    assert reg.trials(row.id) == []  # nothing half-written


def test_in_memory_registry_is_empty():
    assert Registry("sqlite://").connect().best("bandit") is None


def test_optuna_storage_waits_out_a_second_search_creating_its_tables(tmp_path):
    """Another process is creating Optuna's tables (its ``CREATE TABLE studies`` not yet committed) when
    this search opens the study storage: this search's own ``CREATE TABLE`` fails once, and the second try
    finds the tables made. Without the retry this raised: two searches started together on a new registry
    could end 2 s after Ray started (seen once, in tests/test_reliability.py's two-searches test)."""
    import sqlite3
    import threading
    import time

    from pgu_rllib.service.registry import optuna_storage

    made = tmp_path / "made.db"
    optuna_storage(f"sqlite:///{made}")
    with sqlite3.connect(made) as con:
        ddl = con.execute("select sql from sqlite_master where type = 'table' and name = 'studies'").fetchone()[0]
    db = tmp_path / "registry.db"
    other = sqlite3.connect(db, isolation_level=None)  # the other search, mid-way through creating the tables
    other.execute("BEGIN IMMEDIATE")
    other.execute(ddl)
    result = {}

    def open_storage():
        try:
            result["storage"] = optuna_storage(f"sqlite:///{db}")
        except Exception as err:  # noqa: BLE001 - the assertion below shows it
            result["error"] = err

    thread = threading.Thread(target=open_storage)
    thread.start()
    time.sleep(1.0)  # this search has read the schema (no table yet) and waits on the other's lock
    other.execute("COMMIT")
    other.close()
    thread.join(120)
    assert "error" not in result, repr(result.get("error"))
    study = optuna.create_study(study_name="after-the-race", storage=result["storage"])
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(optuna.load_study(study_name="after-the-race", storage=f"sqlite:///{db}").trials) == 2


def test_two_processes_creating_one_new_registry_at_once_get_one_whole_schema(tmp_path):
    """Two searches started together on a new registry both create its schema at the same moment. The
    migration runs under a lock (an EXCLUSIVE transaction on SQLite), so both succeed and the schema is the
    head revision with every table. Before, the second could fail on a table the first had just made, or
    read the half-made schema as the pre-Alembic revision 0001 and migrate it alongside the first."""
    import subprocess
    import sys
    import time

    import sqlalchemy as sa

    code = ("import sys, time\nfrom pgu_rllib.service.registry import Registry\n"
            "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\nRegistry(sys.argv[1]).connect()\n")
    made = Registry(f"sqlite:///{tmp_path}/made.db").connect()
    with made.engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    for i in range(4):
        url = f"sqlite:///{tmp_path}/registry{i}.db"
        at = time.time() + 4.0  # both processes have imported by then; they connect together
        procs = [subprocess.Popen([sys.executable, "-c", code, url, str(at)], stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], errors
        reg = Registry(url)
        assert reg.schema() == head_revision()
        with reg.engine.connect() as conn:
            assert set(sa.inspect(conn).get_table_names()) == tables
