"""Start or join Ray the way a user expects.

Inside a ``ray job`` (``RAY_ADDRESS`` set) or with Ray already running, join that cluster.
Otherwise start a small local Ray on this machine:

* every server on loopback: node IP 127.0.0.1 (``accel.guard.loopback_node_ip``);
* no dashboard and no metrics endpoint (``RAY_enable_metrics_collection=0``);
* no idle workers started ahead (``RAY_prestart_worker_first_driver=0``): Ray would start one per CPU
  for the driver, and no trial uses them (a trial's actor starts its own worker), so each cost a Python
  start for nothing (measured: 2 fewer worker processes and ~5 CPU-s less per search on 2 cores);
* a 200 MiB object store;
* a free port for its dashboard agent (``accel.guard.free_agent_port``): Ray's default 52365 may be
  another local Ray's, and the agent then waited 3.4 s before giving up its HTTP server.

Token auth stays as Ray 2.60 sets it (on for new local clusters).
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading

# Lines every trial printed that say nothing to a user (issue 13), silenced at their loggers:
QUIET_LOGGERS = {
    "ray.tune.utils.util": logging.ERROR,  # "Install gputil for GPU system monitoring."
    "ray._common.deprecation": logging.ERROR,  # `RLModule(config=[RLModuleConfig object])` is deprecated
    "ray.rllib.algorithms.algorithm_config": logging.ERROR,  # "You are running PGU on the new API stack!"
    "ray.tune.logger.tensorboardx": logging.WARNING,  # "Removed the following hyperparameter values ..."
}  # Optuna's INFO lines: ``registry.optuna_storage`` (Optuna resets its logger's level when it first logs)


def quiet_logs() -> None:
    """Raise the level of ``QUIET_LOGGERS``; called by the CLI, by ``PGU`` in each trial process and
    by the evaluation trainable, before any of them logs. Warnings and errors of any other logger,
    and the service's own progress lines, are untouched."""
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)


started_session_dir: str | None = None  # the session folder of the local Ray this process started, if any


def ensure_ray(num_cpus: int | None = None, num_gpus: int | None = None) -> bool:
    """Init Ray if needed; return True if this call started a local Ray."""
    import ray

    if ray.is_initialized():
        return False
    with _keep_sigterm_handler():
        return _init_ray(num_cpus, num_gpus)


@contextlib.contextmanager
def _keep_sigterm_handler():
    """``ray.init`` replaces the process's SIGTERM handler with ``sys.exit(15)``, which kills a search mid-fit
    (and Ray's core with it, exit -6): keep the one the CLI installed (SIGTERM stops a run as Ctrl-C does)."""
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if main and callable(before):  # a handler this program installed (not the default): put it back
            signal.signal(signal.SIGTERM, before)


def _init_ray(num_cpus, num_gpus) -> bool:
    import ray

    from pgu_rllib.rllib.accel.guard import free_agent_port, loopback_node_ip

    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    # Tune's classic output engine, which verbose=0 silences (the new one still prints a configuration box
    # and TensorBoard hints per fit); the service prints its own progress lines
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if os.environ.get("RAY_ADDRESS"):
        with loopback_node_ip():  # a cluster on loopback (cluster/local.sh) is reached at 127.0.0.1
            ray.init(log_to_driver=True)
        return False
    os.environ.setdefault("RAY_enable_metrics_collection", "0")
    os.environ.setdefault("RAY_prestart_worker_first_driver", "0")  # read by the raylet ray.init starts
    global started_session_dir
    with loopback_node_ip(), free_agent_port():
        context = ray.init(
            address="local",  # a new local Ray, never a `ray start` cluster Ray would find on this machine
            num_cpus=num_cpus or os.cpu_count(),
            num_gpus=num_gpus,
            include_dashboard=False,
            object_store_memory=200 * 1024**2,
            log_to_driver=False,
            configure_logging=True,
            logging_level="ERROR",
            _node_ip_address="127.0.0.1",
        )
    started_session_dir = context.address_info.get("session_dir")
    return True
