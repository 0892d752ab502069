"""pgu-rllib: the parametric gradient-update family as an RLlib learner.

The pure math (``scales``, ``signals``, ``qreading``, ``forms``,
``update_rule``, ``presets``) imports no Ray; ``PGUConfig``/``PGU`` load RLlib
on first use.

Example::

    >>> from pgu_rllib import make_scale, PRESETS
    >>> sorted(PRESETS)[:3]
    ['a2c', 'mdpo', 'ml']
"""
from __future__ import annotations

from pgu_rllib.presets import PRESETS
from pgu_rllib.scales import make_scale
from pgu_rllib.update_rule import UpdateRule

__version__ = "0.1.0"
__all__ = ["PGU", "PGUConfig", "PGUTorchLearner", "PRESETS", "UpdateRule", "best", "export", "make_scale",
           "search", "__version__"]


def __getattr__(name):  # lazy: keep `import pgu_rllib.scales` free of Ray
    if name in ("PGU", "PGUConfig"):
        from pgu_rllib import algorithm

        return getattr(algorithm, name)
    if name in ("search", "best", "export"):
        from pgu_rllib import search_service

        return getattr(search_service, name)
    if name == "PGUTorchLearner":
        from pgu_rllib.learner import PGUTorchLearner

        return PGUTorchLearner
    raise AttributeError(f"module 'pgu_rllib' has no attribute {name!r}")
