"""meepo-mysql: the ``mysql`` source, MySQL/MariaDB binlog to meepo row events."""

from typing import Any

__all__ = ["MySQLSource"]


def __getattr__(name: str) -> Any:
    # Lazy, so that loading the plugin does not import pymysql and mysql-replication.
    if name == "MySQLSource":
        from .source import MySQLSource

        return MySQLSource
    raise AttributeError(name)
