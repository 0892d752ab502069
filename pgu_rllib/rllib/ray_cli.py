"""``python -m pgu_rllib.rllib.ray_cli start|status …``: Ray's own ``ray`` command, with 127.0.0.1 kept
as given (``compat.loopback_node_ip``): a node started with ``--node-ip-address=127.0.0.1`` listens on
loopback only, and ``--address=127.0.0.1:PORT`` reaches it. ``cluster/local.sh`` runs its nodes and
probes through it."""
from __future__ import annotations

import os


def main() -> None:
    import ray._private.ray_constants as ray_constants
    from ray.scripts.scripts import main as ray_main

    from pgu_rllib.rllib.compat import loopback_node_ip

    os.environ.setdefault("RAY_enable_metrics_collection", "0")  # no unauthenticated metrics endpoint
    # The node's own processes run in Ray's loopback mode (compat.loopback_node_ip); this command
    # keeps Ray's multi-node behaviour, so that `start --address` adds a worker node.
    ray_constants.ENABLE_RAY_CLUSTER = True
    with loopback_node_ip():
        ray_main()


if __name__ == "__main__":
    main()
