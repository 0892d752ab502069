"""Faults and concurrency with real processes (issue 14): kill -9 of a trial worker, every trial
failing, two searches on one SQLite registry with readers polling, the listeners of a local search
(``ss``), a resource request the machine cannot serve, and extending a finished search. Ctrl-C,
SIGTERM and kill -9 of the driver (tuning and selection phases): tests/test_search.py. A planted
password: tests/test_registry_postgres.py. ``cluster/local.sh`` beside a decoy: tests/test_cluster_job.py."""
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from pgu_rllib.service.registry import Registry

pytestmark = pytest.mark.slow

# One trial at a time (why: tests/conftest.py): concurrency here is two searches side by side
SEARCH = ["search", "--task", "bandit", "--space", "paper", "--max-concurrent", "1", "--top-k", "2",
          "--selection-seeds", "2", "--test-seeds", "2"]


def pgu(*args, cwd, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "pgu_rllib.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def start(*args, cwd, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "pgu_rllib.cli", *args], cwd=cwd, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def rows(db: pathlib.Path, sql: str) -> list:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=30) as con:
            return con.execute(sql).fetchall()
    except sqlite3.OperationalError:  # the tables are not there yet
        return []


def count(db: pathlib.Path, table: str) -> int:
    found = rows(db, f"select count(*) from {table}")
    return found[0][0] if found else 0


def wait_for(predicate, proc, timeout=400):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if predicate():
            return True
        time.sleep(0.5)
    return predicate()


def descendants(pid: int) -> set[int]:
    out, frontier = {pid}, [pid]
    while frontier:
        children = subprocess.run(["pgrep", "-P", str(frontier.pop())], capture_output=True, text=True).stdout.split()
        for c in map(int, children):
            if c not in out:
                out.add(c)
                frontier.append(c)
    return out


def kill_tree(proc):
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started, no clean-up
    proc.wait()


def test_a_killed_trial_worker_is_retried_and_not_recorded_as_an_error(tmp_path):
    # One trial: the one whose worker is killed (a second trial would only repeat a normal one)
    args = [*SEARCH, "--trials", "1", "--env-steps", "8192", "--seed", "5", "--name", "worker", "--top-k", "1",
            "--selection-seeds", "1", "--test-seeds", "1"]
    proc = start(*args, cwd=tmp_path)

    def trial_workers():
        ps = subprocess.run(["ps", "-o", "pid=,args=", "-p", ",".join(map(str, descendants(proc.pid)))],
                            capture_output=True, text=True).stdout
        return [int(line.split()[0]) for line in ps.splitlines() if "ray::PGU" in line]

    assert wait_for(lambda: bool(trial_workers()), proc, timeout=200)
    time.sleep(2)  # mid-trial (a trial of 8192 bandit steps runs for tens of seconds on 2 cores)
    victim = trial_workers()[0]
    os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    db = tmp_path / "pgu_results" / "registry.db"
    statuses = [r[0] for r in rows(db, "select status from pgu_trials")]
    assert statuses == ["complete"], statuses
    assert "errored" not in err or "error " not in " ".join(line for line in err.splitlines() if "[pgu" in line)


def test_a_search_whose_every_trial_fails_ends_with_one_line(tmp_path):
    # Valid as a configuration, fails when the trial builds its env (a bandit needs ≥ 2 actions).
    (tmp_path / "broken.yaml").write_text("params:\n  env_config: {fixed: {n_actions: 1}}\n")
    out = pgu("search", "--task", "bandit", "--space", "broken.yaml", "--trials", "1", "--env-steps", "512",
              cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("pgu: error:")]
    assert len(errors) == 1 and "every trial failed" in errors[0]
    assert "Traceback (most recent call last)" not in out.stderr.split("pgu: error:")[-1]
    reg = Registry(f"sqlite:///{tmp_path}/pgu_results/registry.db")
    assert reg.get_search("bandit-broken-s0").status.value == "failed" and reg.best("bandit") is None
    # an error of the trial's own code is not retried (a killed worker is: the test above): one attempt
    (error_file,) = (tmp_path / "pgu_results" / "tune" / "bandit-broken-s0").glob("*/error.txt")
    failures = [line for line in error_file.read_text().splitlines() if line.startswith("Failure # ")]
    assert len(failures) == 1 and failures[0].startswith("Failure # 1 "), failures
    assert out.stderr.count("ValueError: n_actions=1 is out of range") == 1, out.stderr[-3000:]


def test_two_searches_and_a_reader_share_one_sqlite_registry(tmp_path):
    small = ["--top-k", "1", "--selection-seeds", "1", "--test-seeds", "1"]  # both write every table
    a = start(*SEARCH, "--trials", "3", "--env-steps", "1024", *small, "--name", "a", cwd=tmp_path)
    b = start(*SEARCH, "--trials", "3", "--env-steps", "1024", *small, "--name", "b", "--seed", "1", cwd=tmp_path)
    reads = []
    while a.poll() is None or b.poll() is None:
        r = pgu("best", "--task", "bandit", "--json", cwd=tmp_path, timeout=120)
        reads.append((r.returncode, r.stderr))
        time.sleep(3)  # a read is a process start (~1 CPU-s): polling faster only slows the two searches
    for proc in (a, b):
        out, err = proc.communicate()
        assert proc.returncode == 0, err[-3000:]
    assert len(reads) >= 3
    assert all(code in (0, 1) and "locked" not in err and "Traceback" not in err for code, err in reads)
    db = tmp_path / "pgu_results" / "registry.db"
    assert sorted(rows(db, "select s.name, count(t.id) from pgu_searches s join pgu_trials t "
                           "on t.search_id = s.id group by s.name")) == [("a", 3), ("b", 3)]


def _listeners(pids: set[int]) -> list[str]:
    ss = subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True).stdout
    return [line.split()[3] for line in ss.splitlines() if any(f"pid={p}," in line for p in pids)]


def test_a_local_search_listens_on_loopback_only(tmp_path):
    proc = start(*SEARCH, "--trials", "2", "--env-steps", "8192", "--name", "ss", "--max-concurrent", "2", cwd=tmp_path)
    try:
        seen = []
        wait_for(lambda: seen.extend(_listeners(descendants(proc.pid))) or len(set(seen)) >= 6, proc, timeout=200)
    finally:
        kill_tree(proc)
    seen = set(seen)
    assert len(seen) >= 6, seen  # GCS, raylet, workers, agents, the driver
    off = [addr for addr in seen if not addr.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:", "[::1]:"))]
    assert off == [], off


def test_a_gpu_request_on_a_machine_without_one_is_refused_before_anything_is_written(tmp_path):
    out = pgu(*SEARCH, "--trials", "2", "--gpus-per-trial", "1", cwd=tmp_path, timeout=300)
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "--gpus-per-trial=1.0 asks for more than the cluster has" in errors[0], out.stderr
    assert not (tmp_path / "pgu_results").exists()
