"""pgu-rllib: the parametric gradient-update family as an RLlib learner, searched per task.

Layers, each importing only from the ones before it (tests/test_layers.py checks it):

1. ``pgu_rllib.core``: the update rule's math (Δ_O, Δ_R, q readings, forms, scales, presets),
   statistics and domain errors; no Ray;
2. ``pgu_rllib.rllib``: the RLlib learner, config and algorithm, modules, connectors,
   callbacks and Ray start-up;
3. ``pgu_rllib.tasks``: environments, their models and exact metrics, training recipes and
   scoring; one training run (``build_config``, ``train``);
4. ``pgu_rllib.service``: search spaces, the registry, ``search``/``evaluate``/``best``/``export``;
5. ``pgu_rllib.cli`` and ``pgu_rllib.report`` on top.

The public names below load their layer on first use, so ``import pgu_rllib`` stays light.

Example::

    >>> from pgu_rllib import make_scale, PRESETS
    >>> {"ppo", "pgpb", "trpo"} <= set(PRESETS)
    True
"""
from __future__ import annotations

from pgu_rllib._lazy import facade

__version__ = "0.1.0"
__all__ = ["PGU", "PGUConfig", "PGUTorchLearner", "PRESETS", "UpdateRule", "best", "evaluate", "export",
           "make_scale", "search", "__version__"]
__getattr__ = facade({"PGU": "pgu_rllib.rllib.algorithm", "PGUConfig": "pgu_rllib.rllib.algorithm",
                      "PGUTorchLearner": "pgu_rllib.rllib.learner", "PRESETS": "pgu_rllib.core.presets",
                      "UpdateRule": "pgu_rllib.core.update_rule", "make_scale": "pgu_rllib.core.scales",
                      "search": "pgu_rllib.service.search", "evaluate": "pgu_rllib.service.search",
                      "best": "pgu_rllib.service.readers", "export": "pgu_rllib.service.readers"})
