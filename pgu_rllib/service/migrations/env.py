"""Alembic environment: migrations run on the connection ``Registry.connect`` hands over, with
their own version table (``pgu_alembic_version``) so they never touch Optuna's."""
from alembic import context

from pgu_rllib.service.registry import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, render_as_batch=True,
                  version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
