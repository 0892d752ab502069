"""``Lease``: one writer per search, held in the registry row of the search.

A search (or evaluation) takes the lease before it writes anything else, renews it every
``LEASE_HEARTBEAT_S`` seconds from a daemon thread, and gives it back when it ends, however it
ends. A second process that asks for a held lease gets ``SearchLocked`` naming the holder
(``pgu`` exits 2). A lease whose holder was killed (``kill -9``) is free as soon as its process is
gone on the same host, or when its heartbeat is older than ``LEASE_TTL_S`` anywhere else, so a
resume after a crash never waits on a dead writer.

Example::

    >>> from pgu_rllib.service.registry import Registry
    >>> reg = Registry("sqlite://").connect()
    >>> _ = reg.start_search(name="s", task="bandit", space="paper", space_yaml="", settings={}, storage_path=".",
    ...                      versions={}, git_commit=None, resume=False)
    >>> with Lease(reg, "s"):
    ...     Lease(reg, "s").acquire()
    Traceback (most recent call last):
    ...
    pgu_rllib.core.errors.SearchLocked: search 's' is being written by pid ...
"""
from __future__ import annotations

import os
import socket
import threading
import uuid

from pgu_rllib.core.errors import SearchLocked
from pgu_rllib.service.registry import LEASE_HEARTBEAT_S, Registry


class Lease:
    def __init__(self, registry: Registry, name: str):
        self.registry, self.name = registry, name
        self.holder = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def claim(self) -> tuple:
        """(holder, pid, host): what ``Registry.start_search(lease=...)`` records."""
        return self.holder, os.getpid(), socket.gethostname()

    def acquire(self) -> "Lease":
        """Take the lease of an existing search (``SearchLocked`` when held), then keep it alive."""
        held_by = self.registry.acquire_lease(self.name, *self.claim)
        if held_by is not None:
            raise SearchLocked(self.name, held_by)
        return self.keep_alive()

    def keep_alive(self) -> "Lease":
        """Renew the (already taken) lease every ``LEASE_HEARTBEAT_S`` seconds until ``release``."""
        self._thread = threading.Thread(target=self._beat, name=f"pgu-lease-{self.name}", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(LEASE_HEARTBEAT_S):
            try:
                self.registry.heartbeat(self.name, self.holder)
            except Exception:  # a passing database fault: the next beat tries again
                pass

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.registry.release_lease(self.name, self.holder)

    def __enter__(self) -> "Lease":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
