"""The search service: YAML search spaces, the registry (any SQLAlchemy database, Alembic
migrations), and ``search``, ``evaluate``, ``best``, ``export``. Imports the layers below.

Example::

    >>> from pgu_rllib.service import load_space
    >>> load_space("paper").base_preset
    'ppo'
"""
from pgu_rllib._lazy import facade

__all__ = ['DEFAULT_URL', 'Registry', 'SearchSpace', 'best', 'evaluate', 'export', 'load_space', 'search']
__getattr__ = facade({"DEFAULT_URL": "pgu_rllib.service.registry", "Registry": "pgu_rllib.service.registry", "best": "pgu_rllib.service.readers", "evaluate": "pgu_rllib.service.search", "export": "pgu_rllib.service.readers", "search": "pgu_rllib.service.search", "SearchSpace": "pgu_rllib.service.spaces", "load_space": "pgu_rllib.service.spaces"})  # lazy: importing the package loads nothing heavy
