"""Lazy package facades: a package ``__init__`` names its public objects and where they live; each is
imported on first use, so importing the package (``pgu --help``, ``pgu best``) loads neither torch nor Ray.

Example::

    >>> __getattr__ = facade({"PRESETS": "pgu_rllib.core.presets"})
    >>> sorted(__getattr__("PRESETS"))[:1]
    ['a2c']
"""
from __future__ import annotations

import importlib


def facade(names: dict[str, str]):
    """A module ``__getattr__`` that imports ``names[name]`` and returns its attribute ``name``."""

    def __getattr__(name: str):
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module has no attribute {name!r}")

    return __getattr__
