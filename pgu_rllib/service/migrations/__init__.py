"""Alembic migrations of the registry schema (``pgu_rllib.service.registry``)."""
