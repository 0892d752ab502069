"""The search service: YAML search spaces, the registry (any SQLAlchemy database, Alembic
migrations), and ``search``, ``evaluate``, ``best``, ``export``. Imports the layers below.

Example::

    >>> from pgu_rllib.service import load_space
    >>> load_space("paper").base_preset
    'ppo'
"""
from pgu_rllib.service.registry import DEFAULT_URL, Registry
from pgu_rllib.service.search import best, evaluate, export, search
from pgu_rllib.service.spaces import SearchSpace, load_space

__all__ = ["DEFAULT_URL", "Registry", "SearchSpace", "best", "evaluate", "export", "load_space", "search"]
