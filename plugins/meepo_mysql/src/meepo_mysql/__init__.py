"""meepo-mysql: the ``mysql`` source, MySQL/MariaDB binlog to meepo row events."""

from .source import MySQLSource

__all__ = ["MySQLSource"]
