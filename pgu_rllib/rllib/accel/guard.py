"""The version guard and the private Ray names that correctness needs (Ray 2.60.0).

* ``patches_enabled()`` is True only on the Ray version the speed patches (``env_runner``,
  ``fast_update``, ``filters``) were written for and unless ``PGU_DISABLE_RAY_PATCHES=1``; otherwise
  RLlib's own runner and optimiser step run (with one warning).
* ``require`` fails at once, naming the attribute, when a Ray release lacks a private name that
  correctness needs (``internals``, ``optuna_search``, the two functions below).
* ``loopback_node_ip`` and ``ray_cli_multi_node``: a Ray node bound to 127.0.0.1, started by Ray's own
  ``ray`` command; ``free_agent_port``: the node ``ray.init`` starts gets a free port for its agent.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os

TESTED_RAY = "2.60.0"
DISABLE_ENV = "PGU_DISABLE_RAY_PATCHES"


@functools.cache
def _version_ok() -> bool:
    import ray

    if ray.__version__ != TESTED_RAY:
        logging.getLogger(__name__).warning(
            "pgu-rllib's speed patches were written for ray %s; ray %s runs RLlib's own env runner and "
            "optimiser step instead", TESTED_RAY, ray.__version__)
        return False
    return True


def patches_enabled() -> bool:
    """Whether the speed patches run: the tested Ray version, and ``PGU_DISABLE_RAY_PATCHES`` unset."""
    return os.environ.get(DISABLE_ENV, "") not in ("1", "true", "yes") and _version_ok()


def require(owner, attrs: tuple[str, ...], what: str) -> None:
    """Raise ``RuntimeError`` naming the first of ``attrs`` that ``owner`` lacks."""
    import ray

    for attr in attrs:
        if not hasattr(owner, attr):
            raise RuntimeError(f"{what} needs {getattr(owner, '__name__', type(owner).__name__)}.{attr}, which "
                               f"ray {ray.__version__} lacks; pgu-rllib is tested with ray {TESTED_RAY}")


LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def loopback_node_ip():
    """Keep 127.0.0.1 as given while Ray starts a node or connects to one.

    Ray 2.60's ``ray.init`` and ``ray start`` replace 127.0.0.1 (a node IP, or the host of a cluster
    address) by the machine's external IP (``ray._private.services.resolve_ip_for_localhost``). Yet
    every Ray server binds to the node IP it is given, so with 127.0.0.1 kept, GCS, raylet, object
    manager, workers and agents all listen on loopback only (``tests/test_reliability.py`` lists them
    with ``ss``). Ray's own processes keep it too: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (set here,
    so every process started from now on inherits it) is Ray's loopback mode, in which its
    ``get_node_ip_address`` answers 127.0.0.1. A node started this way is reachable from this machine
    only: right for a local run or ``cluster/local.sh``, not for a multi-machine cluster.
    """
    import ray._private.services as services

    require(services, ("resolve_ip_for_localhost",), "binding a local Ray to 127.0.0.1")
    os.environ[LOOPBACK_ENV] = "0"
    original = services.resolve_ip_for_localhost
    services.resolve_ip_for_localhost = lambda host: host
    try:
        yield
    finally:
        services.resolve_ip_for_localhost = original


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the kernel's choice)."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def free_agent_port():
    """Give the dashboard agent of the node ``ray.init`` starts a free port instead of Ray's default 52365.

    Ray 2.60's ``ray.init`` has no argument for it (``ray start`` has ``--dashboard-agent-listen-port``,
    which ``cluster/local.sh`` sets per node). When another Ray on this machine holds 52365 (a second
    search, a cluster, the other worker of the test suite), the new node's agent retried its bind six
    times with back-off and gave up its HTTP server, and ``ray.init`` waited the 3.4 s for it (seen in
    ``dashboard_agent.log``: "Failed to bind to port 52365 (attempt 1/6)"; ``tests/test_startup.py``).
    """
    import ray._private.parameter as parameter
    import ray._private.ray_constants as ray_constants

    require(ray_constants, ("DEFAULT_DASHBOARD_AGENT_LISTEN_PORT",), "a free port for a local Ray's agent")
    original = parameter.RayParams.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self.dashboard_agent_listen_port == ray_constants.DEFAULT_DASHBOARD_AGENT_LISTEN_PORT:
            self.dashboard_agent_listen_port = free_port()

    parameter.RayParams.__init__ = __init__
    try:
        yield
    finally:
        parameter.RayParams.__init__ = original


def ray_cli_multi_node() -> None:
    """Let Ray's ``ray start --address`` add a worker node while its processes run in loopback mode
    (``loopback_node_ip`` sets the mode, which otherwise makes the ``ray`` command single-node)."""
    import ray._private.ray_constants as ray_constants

    require(ray_constants, ("ENABLE_RAY_CLUSTER",), "starting a loopback Ray node")
    ray_constants.ENABLE_RAY_CLUSTER = True
