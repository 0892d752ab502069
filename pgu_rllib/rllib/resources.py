"""What one run asks of the cluster, and the refusal of a run that can never be scheduled.

RLlib itself says what a run of a config takes (``Algorithm.default_resource_request``: the main
process, its env runners, its learners, their GPUs). A run that asks for more CPUs or GPUs than a
local Ray has would wait PENDING forever; it is refused with one line before anything is written.
On a cluster an autoscaler may add nodes, so the service waits a bounded time there
(``service.search._check_resources``).

Example::

    >>> need({"num_env_runners": 3})
    {'CPU': 4.0, 'GPU': 0.0}
"""
from __future__ import annotations

from pgu_rllib.core.errors import MissingResources

# Config keys that change what a run asks for (the first that is set names a refusal).
RESOURCE_KEYS = ("num_env_runners", "num_cpus_per_env_runner", "num_gpus_per_env_runner", "num_learners",
                 "num_gpus_per_learner", "num_cpus_per_learner", "num_cpus_for_main_process")


def need(config: dict) -> dict:
    """{"CPU": c, "GPU": g} that one run of ``config`` (a ``PGUConfig`` dict, partial is fine) reserves."""
    from pgu_rllib.rllib.algorithm import PGU

    request = PGU.default_resource_request(config).required_resources
    return {"CPU": float(request.get("CPU", 0.0)), "GPU": float(request.get("GPU", 0.0))}


def culprit(config: dict, kind: str) -> tuple[str, object]:
    """The config key (and its value) most likely behind a request for ``kind``."""
    keys = [k for k in RESOURCE_KEYS if ("gpu" in k) == (kind == "GPU")]
    for key in keys:
        value = config.get(key)
        if value not in (None, 0, 0.0, "auto") and not (key.startswith("num_cpus") and value == 1):
            return key, value
    return keys[0], config.get(keys[0])


def check_fits(config: dict, have: dict) -> None:
    """``MissingResources`` naming the key when one run of ``config`` asks for more than ``have``."""
    want = need(config)
    for kind in ("CPU", "GPU"):
        if want[kind] > float(have.get(kind, 0.0)) + 1e-9:
            key, value = culprit(config, kind)
            raise MissingResources(key, value, {k: float(have.get(k, 0.0)) for k in ("CPU", "GPU")}, 0.0,
                                   asks=want)
