"""meepo-mysql: the ``mysql`` source, MySQL/MariaDB binlog to meepo row events."""

from meepo_core import lazy_exports

# Imported on first use, so that loading the plugin does not import pymysql and mysql-replication.
_HOMES = {
    "MySQLSource": "mysql_source",
}
__all__ = sorted(_HOMES)
__getattr__ = lazy_exports(__name__, _HOMES)
