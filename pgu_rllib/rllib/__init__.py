"""The RLlib layer: ``PGUConfig``/``PGU`` (PPO with the PGU learner), ``PGUTorchLearner``, the
modules, connectors and callbacks, and Ray start-up. Imports ``core`` only.

Example::

    >>> from pgu_rllib.rllib import PGUConfig
    >>> PGUConfig().training(form="Q").form
    'Q'
"""
from pgu_rllib._lazy import facade

__all__ = ['PGU', 'PGUConfig', 'PGUTorchLearner']
__getattr__ = facade({"PGU": "pgu_rllib.rllib.algorithm", "PGUConfig": "pgu_rllib.rllib.algorithm", "PGUTorchLearner": "pgu_rllib.rllib.learner"})  # lazy: importing the package loads nothing heavy
