"""The registry against a second SQLAlchemy dialect: a real PostgreSQL server (Debian's
package), started by this test on a free loopback port in a temporary directory, and stopped
after it. Optuna's RDB storage shares the same database."""
import os
import shutil
import socket
import subprocess

import optuna
import pytest

from pgu_rllib.registry import Registry


def _pg_bin(name: str) -> str:
    for candidate in [shutil.which(name), *sorted(__import__("glob").glob(f"/usr/lib/postgresql/*/bin/{name}"))]:
        if candidate:
            return candidate
    raise FileNotFoundError(f"{name} not found: .ci/run installs Debian's postgresql package")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    import pathlib
    import tempfile

    root = pathlib.Path(tempfile.mkdtemp(prefix="pgu-pg-"))  # pytest's tmp dirs are 0700: postgres can't enter
    data = root / "data"
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # postgres refuses root
    if as_user:
        shutil.chown(root, "postgres")
    port = _free_port()
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
    assert reg.engine.dialect.name == "postgresql"
    row = reg.start_search(name="pg-search", task="bandit", space="paper", space_yaml="params: {}",
                           settings={"trials": 2}, storage_path="/shared/tune", versions={"ray": "2.60.0"},
                           git_commit=None, resume=False)
    reg.record_trial(row.id, tune_trial_id="t1", params={"form": "V", "seed": 1}, score=0.7, env_steps=1024,
                     iterations=4, status="complete", node_id="n1", curve=[[256, 0.5], [1024, 0.7]])
    reg.record_trial(row.id, tune_trial_id="t1", params={"form": "V", "seed": 1}, score=0.71, env_steps=1024,
                     iterations=4, status="complete", node_id="n1", curve=[])  # upsert, not a second row
    reg.record_evaluations(row.id, [{"candidate": 0, "seed": 1_000_000, "params": {"form": "V"}, "score": 0.74}])
    reg.put_best(task="bandit", space="paper", search_name="pg-search", preset="ppo", params={"form": "V"},
                 config={"form": "V"}, tuning_score=0.71, heldout_mean=0.74, heldout_std=0.0, heldout_median=0.74,
                 heldout_scores=[0.74], protocol={"test_seeds": [1_000_000]}, versions={"ray": "2.60.0"},
                 git_commit="abc")
    reg.set_status("pg-search", "complete")

    fresh = Registry(postgres_url).connect()  # a second connection reads what the first wrote
    trials = fresh.trials(fresh.get_search("pg-search").id)
    assert len(trials) == 1 and trials[0]["score"] == 0.71 and trials[0]["node_id"] == "n1"
    assert fresh.get_search("pg-search").status == "complete"
    best = fresh.best("bandit", "paper")
    assert best["heldout_scores"] == [0.74] and best["git_commit"] == "abc"
    assert fresh.evaluations(row.id)[0]["score"] == 0.74

    with pytest.raises(ValueError, match="already exists"):
        fresh.start_search(name="pg-search", task="bandit", space="paper", space_yaml="", settings={},
                           storage_path="", versions={}, git_commit=None, resume=False)


def test_optuna_study_shares_the_postgresql_database(postgres_url):
    storage = optuna.storages.RDBStorage(url=postgres_url)
    study = optuna.create_study(study_name="pg-study", storage=storage, direction="maximize", load_if_exists=True)
    study.optimize(lambda t: -(t.suggest_float("x", -1, 1) ** 2), n_trials=3)
    again = optuna.load_study(study_name="pg-study", storage=postgres_url)
    assert [t.state.name for t in again.trials] == ["COMPLETE"] * 3
    assert Registry(postgres_url).connect().best("bandit", "nosuch") is None  # our tables beside Optuna's
