"""The learning rate a run uses: ``lr`` itself, or with ``lr_anneal`` its linear decay to 0 at the budget.

It decides results, so it lives apart from the speed patches (``accel.fast_update``), which every path calls it
through, patched or not.

Example::

    >>> class C: lr, lr_anneal, pgu_budget = 3e-4, True, 1000
    >>> lr_or_schedule(C)
    [[0, 0.0003], [1000, 0.0]]
"""
from __future__ import annotations


def lr_or_schedule(config):
    """``config.lr``, or with ``lr_anneal`` (``PGUConfig``) the schedule linear to 0 at the run's budget."""
    if getattr(config, "lr_anneal", False):
        return [[0, float(config.lr)], [int(config.pgu_budget), 0.0]]
    return config.lr
