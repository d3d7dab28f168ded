"""Alembic environment: runs on the connection the runner hands it (see ``engine.migrate``).

On PostgreSQL a transaction-scoped advisory lock makes replicas that start
together take turns, so only one of them applies a migration.
"""

from alembic import context

from runner.store.tables import metadata

_MIGRATION_LOCK = 0x52554E4E4552  # "RUNNER"

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
    elif connection.dialect.name == "sqlite":
        # The file's write lock, taken before Alembic reads the schema's version:
        # runners (or workers) first started together on one new file take turns.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    context.run_migrations()
