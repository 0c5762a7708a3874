"""meepo-postgres: the ``postgres`` source, PostgreSQL logical replication to meepo row events."""

from typing import Any

__all__ = ["PostgresSource"]


def __getattr__(name: str) -> Any:
    # Lazy, so that loading the plugin does not import psycopg2.
    if name == "PostgresSource":
        from .postgres_source import PostgresSource

        return PostgresSource
    raise AttributeError(name)
