"""Guards for the places pgu-rllib reaches into private RLlib and Tune API (Ray 2.60.0).

* ``_env_runner.PGUEnvRunner`` (untimed connector pipelines) and ``_fast_update.FastUpdateMixin``
  (fused optimiser step) are speed patches with the same results. ``patches_enabled()`` is True only
  on the Ray version they were written for and unless ``PGU_DISABLE_RAY_PATCHES=1``; otherwise RLlib's
  own runner and optimiser step run (with one warning).
* ``PPOConfig._model_config_auto_includes`` (how τ reaches the logit modules) and ``OptunaSearch``'s
  ``_ot_trials``/``_storage``/``_study_name``/``_sampler`` (resume without pickling the storage) are
  needed for correctness: ``require`` fails at once, naming the attribute, if a Ray release lacks them.
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
