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
