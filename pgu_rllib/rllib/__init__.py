"""The RLlib layer: ``PGUConfig``/``PGU`` (PPO with the PGU learner), ``PGUTorchLearner``, the
modules, connectors and callbacks, and Ray start-up. Imports ``core`` only.

Example::

    >>> from pgu_rllib.rllib import PGUConfig
    >>> PGUConfig().training(form="Q").form
    'Q'
"""
from pgu_rllib.rllib.algorithm import PGU, PGUConfig
from pgu_rllib.rllib.learner import PGUTorchLearner

__all__ = ["PGU", "PGUConfig", "PGUTorchLearner"]
