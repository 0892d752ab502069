"""One writer per search (issue 24): a lease row in the registry, held by a live process, refused to a
second one with a message naming the holder, and free again as soon as its holder is killed (kill -9).
Two real processes, on SQLite here and on PostgreSQL in test_registry_postgres.py."""
import pathlib
import signal
import subprocess
import sys

import pytest

from pgu_rllib.core.errors import SearchLocked
from pgu_rllib.service.lease import Lease
from pgu_rllib.service.registry import Registry

HOLDER = pathlib.Path(__file__).resolve().parent / "lease_holder.py"


def new_search(url: str, name: str = "s") -> Registry:
    reg = Registry(url).connect()
    reg.start_search(name=name, task="bandit", space="paper", space_yaml="", settings={}, storage_path=".",
                     versions={}, git_commit=None, resume=False)
    return reg


def holder(url: str, name: str = "s") -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(HOLDER), url, name], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def check_two_processes(url: str) -> None:
    reg = new_search(url)
    first = holder(url)
    try:
        second = subprocess.run([sys.executable, str(HOLDER), url, "s"], capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert f"locked: search 's' is being written by pid {first.pid} on" in second.stdout
        with pytest.raises(SearchLocked, match=f"pid {first.pid}"):
            Lease(reg, "s").acquire()
    finally:
        first.send_signal(signal.SIGKILL)  # no clean-up: the row still names it
        first.wait()
    assert reg.get_search("s").lease_pid == first.pid
    lease = Lease(reg, "s").acquire()  # its process is gone: the lease is free at once
    assert reg.get_search("s").lease_holder == lease.holder
    lease.release()
    assert reg.get_search("s").lease_holder is None


def test_two_processes_one_lease_on_sqlite(tmp_path):
    check_two_processes(f"sqlite:///{tmp_path}/registry.db")


def test_a_stale_heartbeat_frees_the_lease_of_another_host(tmp_path):
    import datetime as dt

    import sqlalchemy as sa

    from pgu_rllib.service.registry import LEASE_TTL_S, SearchRow

    reg = new_search(f"sqlite:///{tmp_path}/registry.db")
    assert reg.acquire_lease("s", "other", 1, "elsewhere") is None
    assert "pid 1 on elsewhere" in reg.acquire_lease("s", "me", 2, "here")
    with reg.Session.begin() as s:
        s.execute(sa.update(SearchRow).values(
            lease_heartbeat=dt.datetime.utcnow() - dt.timedelta(seconds=LEASE_TTL_S + 1)))
    assert reg.acquire_lease("s", "me", 2, "here") is None
