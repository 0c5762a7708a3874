"""meepo-postgres: the ``postgres`` source, PostgreSQL logical replication to meepo row events."""

from meepo_core import lazy_exports

# Imported on first use, so that loading the plugin does not import psycopg2.
_HOMES = {
    "PostgresSource": "postgres_source",
}
__all__ = sorted(_HOMES)
__getattr__ = lazy_exports(__name__, _HOMES)
