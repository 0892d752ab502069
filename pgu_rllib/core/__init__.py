"""The update rule's math, statistics and domain errors; imports no Ray (spec §1–§6).

Example::

    >>> from pgu_rllib.core import UpdateRule
    >>> UpdateRule(form="P", delta_r="q").validate().form
    'P'
"""
from pgu_rllib._lazy import facade

__all__ = ['DESCRIPTIONS', 'InvalidArgument', 'KEYS', 'PGUError', 'PRESETS', 'SCALE_NAMES', 'UpdateRule', 'get_preset', 'make_scale']
__getattr__ = facade({"InvalidArgument": "pgu_rllib.core.errors", "PGUError": "pgu_rllib.core.errors", "DESCRIPTIONS": "pgu_rllib.core.presets", "PRESETS": "pgu_rllib.core.presets", "get_preset": "pgu_rllib.core.presets", "SCALE_NAMES": "pgu_rllib.core.scales", "make_scale": "pgu_rllib.core.scales", "KEYS": "pgu_rllib.core.update_rule", "UpdateRule": "pgu_rllib.core.update_rule"})  # lazy: importing the package loads nothing heavy
