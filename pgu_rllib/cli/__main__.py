"""``python -m pgu_rllib.cli``: the ``pgu`` command."""
import sys

from pgu_rllib.cli import main

sys.exit(main())
