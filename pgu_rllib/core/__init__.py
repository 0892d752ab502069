"""The update rule's math, statistics and domain errors; imports no Ray (spec §1–§6).

Example::

    >>> from pgu_rllib.core import UpdateRule
    >>> UpdateRule(form="P", delta_r="q").validate().form
    'P'
"""
from pgu_rllib.core.errors import InvalidArgument, PGUError
from pgu_rllib.core.presets import DESCRIPTIONS, PRESETS, get_preset
from pgu_rllib.core.scales import SCALE_NAMES, make_scale
from pgu_rllib.core.update_rule import KEYS, UpdateRule

__all__ = ["DESCRIPTIONS", "InvalidArgument", "KEYS", "PGUError", "PRESETS", "SCALE_NAMES", "UpdateRule",
           "get_preset", "make_scale"]
