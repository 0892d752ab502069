"""Start or join Ray the way a user expects.

Inside a ``ray job`` (``RAY_ADDRESS`` set) or with Ray already running, join
that cluster; otherwise start a small local Ray on this machine: no
dashboard, loopback only, a 200 MiB object store. Token auth stays as Ray 2.60
sets it (on for new local clusters).
"""
from __future__ import annotations

import os


def ensure_ray(num_cpus: int | None = None, num_gpus: int | None = None) -> bool:
    """Init Ray if needed; return True if this call started a local Ray."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=True)
        return False
    ray.init(
        num_cpus=num_cpus or os.cpu_count(),
        num_gpus=num_gpus,
        include_dashboard=False,
        object_store_memory=200 * 1024**2,
        log_to_driver=False,
        configure_logging=True,
        logging_level="ERROR",
    )
    return True
