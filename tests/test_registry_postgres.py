"""The registry against a second SQLAlchemy dialect: a real PostgreSQL server (Debian's
package), started by this test on a free loopback port in a temporary directory, and stopped
after it. Optuna's RDB storage shares the same database."""
import datetime
import os
import pathlib
import shutil
import subprocess

import optuna
import pytest

from pgu_rllib.rllib.accel.guard import free_port
from pgu_rllib.service.registry import Registry, head_revision

LEGACY = pathlib.Path(__file__).resolve().parent.parent / "docs" / "results" / "evidence.db"  # schema 0001

pytestmark = pytest.mark.postgres



def _pg_bin(name: str) -> str:
    for candidate in [shutil.which(name), *sorted(__import__("glob").glob(f"/usr/lib/postgresql/*/bin/{name}"))]:
        if candidate:
            return candidate
    raise FileNotFoundError(f"{name} not found: .ci/run installs Debian's postgresql package")


@pytest.fixture(scope="module")
def postgres_url():
    import pathlib
    import tempfile

    root = pathlib.Path(tempfile.mkdtemp(prefix="pgu-pg-"))  # pytest's tmp dirs are 0700: postgres can't enter
    data = root / "data"
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # postgres refuses root
    if as_user:
        shutil.chown(root, "postgres")
    port = free_port()
    subprocess.run([*as_user, _pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "pgu"], check=True,
                   capture_output=True)
    subprocess.run([*as_user, _pg_bin("pg_ctl"), "-D", str(data), "-w", "-l", str(data.parent / "log"),
                    "-o", f"-p {port} -h 127.0.0.1 -k {data.parent}", "start"], check=True, capture_output=True)
    try:
        subprocess.run([_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "pgu", "registry"],
                       check=True, capture_output=True)
        yield f"postgresql+psycopg://pgu@127.0.0.1:{port}/registry"
    finally:
        subprocess.run([*as_user, _pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_registry_round_trip_on_postgresql(postgres_url):
    reg = Registry(postgres_url).connect()
    assert reg.engine.dialect.name == "postgresql" and reg.schema() == head_revision()
    row = reg.start_search(name="pg-search", task="bandit", space="paper", space_yaml="params: {}",
                           settings={"trials": 2}, storage_path="/shared/tune", versions={"ray": "2.60.0"},
                           git_commit=None, resume=False)
    reg.record_trial(row.id, tune_trial_id="t1", params={"form": "V", "seed": 1}, score=0.7, env_steps=1024,
                     iterations=4, status="complete", node_id="n1", curve=[[256, 0.5], [1024, 0.7]])
    reg.record_trial(row.id, tune_trial_id="t1", params={"form": "V", "seed": 1}, score=0.71, env_steps=1024,
                     iterations=4, status="complete", node_id="n1", curve=[])  # upsert, not a second row
    reg.record_evaluation(row.id, "selection", {"candidate": 0, "seed": 1_000_000, "params": {"form": "V"},
                                                "score": 0.74, "curve": [[1024, 0.74]]})
    reg.record_evaluation(row.id, "test", {"candidate": 0, "seed": 2_000_000, "params": {"form": "V"}, "score": 0.73})
    reg.put_best(task="bandit", space="paper", search_name="pg-search", preset="ppo", params={"form": "V"},
                 config={"form": "V"}, tuning_score=0.71, selection_mean=0.74, selection_scores=[0.74],
                 selection_seeds=[1_000_000], test_mean=0.73, test_std=0.0, test_median=0.73, test_iqm=0.73,
                 test_ci95=[0.73, 0.73], test_scores=[0.73], test_seeds=[2_000_000], protocol={"budget": 1024},
                 versions={"ray": "2.60.0"}, git_commit="abc")
    reg.set_status("pg-search", "complete")
    reg.add_timing("pg-search", "test", wall_s=1.5, env_steps=1024)

    fresh = Registry(postgres_url).connect()  # a second connection reads what the first wrote
    trials = fresh.trials(fresh.get_search("pg-search").id)
    assert len(trials) == 1 and trials[0]["score"] == 0.71 and trials[0]["node_id"] == "n1"
    assert fresh.get_search("pg-search").status.value == "complete"
    assert fresh.get_search("pg-search").timings == {"test": {"wall_s": 1.5, "env_steps": 1024, "eval_env_steps": 0}}
    best = fresh.best("bandit", "paper")
    assert best["test_scores"] == [0.73] and best["selection_seeds"] == [1_000_000] and best["git_commit"] == "abc"
    assert [e["phase"] for e in fresh.evaluations(row.id)] == ["selection", "test"]
    assert fresh.evaluations(row.id, "selection")[0]["curve"] == [[1024, 0.74]]

    with pytest.raises(ValueError, match="already exists"):
        fresh.start_search(name="pg-search", task="bandit", space="paper", space_yaml="", settings={},
                           storage_path="", versions={}, git_commit=None, resume=False)


def test_a_registry_of_schema_0001_is_upgraded_on_postgresql(postgres_url):
    """The rows of a registry written by pgu-rllib 0.1 (docs/results/evidence.db), put in a
    PostgreSQL database at schema 0001, then upgraded by Alembic."""
    import sqlalchemy as sa
    from alembic import command

    from pgu_rllib.service.registry import _alembic_config

    url = postgres_url.rsplit("/", 1)[0] + "/legacy"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("CREATE DATABASE legacy"))
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0001")
    source = sa.create_engine(f"sqlite:///{LEGACY}")
    with source.connect() as src, engine.begin() as dst:
        for name in ("pgu_searches", "pgu_trials", "pgu_evaluations", "pgu_best"):
            table = sa.Table(name, sa.MetaData(), autoload_with=dst)
            rows = [dict(r._mapping) for r in src.execute(sa.text(f"SELECT * FROM {name}"))]
            for r in rows:
                for key in ("created_at", "updated_at", "finished_at"):
                    if key in r:
                        r[key] = datetime.datetime.fromisoformat(r[key])
            dst.execute(table.insert(), rows)
        dst.execute(sa.text("SELECT setval(pg_get_serial_sequence('pgu_searches', 'id'), 100)"))
    _check_upgraded(Registry(url))


def _check_upgraded(reg, upgrade=True):
    if upgrade:
        with pytest.raises(ValueError, match="has schema 0001; .* `pgu registry upgrade"):
            reg.check_current()
        reg.connect()
    assert reg.schema() == head_revision()
    rows = {r["space"]: r for r in reg.best_rows("hopper")}
    assert rows["mla"]["selection_mean"] == pytest.approx(302.6713262675589)  # the old held-out mean chose it
    assert rows["mla"]["selection_seeds"] == [1_000_000, 1_000_001] and rows["mla"]["test_mean"] is None
    assert "no test scores" in rows["mla"]["protocol"]["selection"]
    search = reg.get_search("hopper-mla-s0") or reg.get_search(reg.best("hopper", "mla")["search_name"])
    assert search.status.value == "complete" and isinstance(search.settings, dict)
    assert len(reg.trials(search.id)) == 4 and {e["phase"] for e in reg.evaluations(search.id)} == {"selection"}
    new = reg.start_search(name="after-upgrade", task="bandit", space="paper", space_yaml="", settings={},
                           storage_path="", versions={}, git_commit=None, resume=False)
    assert new.id > search.id  # ids continue past the copied rows


def test_optuna_study_shares_the_postgresql_database(postgres_url):
    storage = optuna.storages.RDBStorage(url=postgres_url)
    study = optuna.create_study(study_name="pg-study", storage=storage, direction="maximize", load_if_exists=True)
    study.optimize(lambda t: -(t.suggest_float("x", -1, 1) ** 2), n_trials=3)
    again = optuna.load_study(study_name="pg-study", storage=postgres_url)
    assert [t.state.name for t in again.trials] == ["COMPLETE"] * 3
    assert Registry(postgres_url).connect().best("bandit", "nosuch") is None  # our tables beside Optuna's


@pytest.mark.slow
def test_a_registry_password_reaches_no_file_log_or_message(postgres_url, tmp_path):
    """A search with a password in its registry URL: the password is in no file of Tune's storage,
    of the Ray session it started, of stdout or stderr; the files written are not world-readable."""
    import re
    import subprocess
    import sys

    secret = "plantedSecret4913"
    url = postgres_url.replace("pgu@", f"pgu:{secret}@")  # trust auth: any password is accepted
    out = subprocess.run([sys.executable, "-m", "pgu_rllib.cli", "search", "--task", "bandit", "--space", "paper",
                          "--trials", "1", "--env-steps", "512", "--max-concurrent", "2", "--top-k", "1",
                          "--selection-seeds", "1", "--test-seeds", "1", "--registry", url, "--storage-path",
                          str(tmp_path / "tune"), "--json"], capture_output=True, text=True, timeout=600,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert secret not in out.stdout + out.stderr and "pgu:***@" in out.stderr
    sessions = set(re.findall(r"(/tmp/ray/session_[0-9_\-]+)", out.stderr))
    assert sessions, "the run's Ray session folder is named in its output"
    scanned = 0
    for root in [tmp_path / "tune", *map(pathlib.Path, sessions)]:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                scanned += 1
                assert secret.encode() not in path.read_bytes(), path
                if root == tmp_path / "tune":
                    assert path.stat().st_mode & 0o004 == 0, path  # not world-readable
    assert scanned > 20
    # the module's other tests share this database: find this search's own row
    assert Registry(url).get_search("bandit-paper-s0").status.value == "complete"


def test_two_processes_one_lease_on_postgresql(postgres_url):
    from test_lease import check_two_processes

    check_two_processes(postgres_url)
