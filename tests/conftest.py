"""Shared fixtures. Ray tests use one real local Ray per test module (shut down after it, so learner tests really run without Ray) (2 CPUs, no dashboard)."""
import os

import pytest

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2,
             log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()
