"""Moving the database between migration states, for tests of a model's move between apps."""

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate(targets) -> MigrationExecutor:
    """Migrate to `targets` (app, migration name or None) and return an executor whose graph
    and project states are those after the run."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection)  # reloaded: the graph's state after the run


def latest() -> list:
    """Every app's newest migration: where a test leaves the database."""
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def table_constraints(table: str) -> dict:
    """The constraints and indexes the database has on `table`, by name (Django's introspection)."""
    with connection.cursor() as cursor:
        return connection.introspection.get_constraints(cursor, table)
