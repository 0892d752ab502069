"""A second real process for the lease tests: ``python tests/lease_holder.py URL NAME`` takes the lease of
search NAME, prints ``held`` (or ``locked: <message>``), then keeps it alive until killed."""
import sys
import time

from pgu_rllib.core.errors import SearchLocked
from pgu_rllib.service.lease import Lease
from pgu_rllib.service.registry import Registry

if __name__ == "__main__":
    url, name = sys.argv[1:3]
    try:
        Lease(Registry(url), name).acquire()
    except SearchLocked as err:
        print(f"locked: {err}", flush=True)
        sys.exit(2)
    print("held", flush=True)
    while True:
        time.sleep(1)
