"""``python -m pgu_rllib.rllib.ray_cli start|status …``: Ray's own ``ray`` command, with 127.0.0.1 kept
as given (``accel.guard.loopback_node_ip``): a node started with ``--node-ip-address=127.0.0.1`` listens on
loopback only, and ``--address=127.0.0.1:PORT`` reaches it. ``cluster/local.sh`` runs its nodes and
probes through it."""
from __future__ import annotations

import os


def main() -> None:
    from ray.scripts.scripts import main as ray_main

    from pgu_rllib.rllib.accel.guard import loopback_node_ip, ray_cli_multi_node

    os.environ.setdefault("RAY_enable_metrics_collection", "0")  # no unauthenticated metrics endpoint
    ray_cli_multi_node()  # loopback mode, yet `start --address` adds a worker node
    with loopback_node_ip():
        ray_main()


if __name__ == "__main__":
    main()
