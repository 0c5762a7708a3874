"""MariaDB for CDC tests (ROW/FULL/FULL binlog), and an external MySQL from an env DSN."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from .base import Service, ServiceError, find_binary, remove_tempdir, short_dir

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pymysql.connections

MYSQL_DSN_ENV = "MEEPO_TEST_MYSQL_DSN"

Rows = list[tuple[Any, ...]]


class _MySQLClient:
    """``connect()`` / ``execute()`` over TCP for a MySQL-protocol server."""

    host: str
    port: int
    user: str
    password: str
    default_database: str | None = None

    @property
    def dsn(self) -> str:
        """``mysql://user:password@host:port`` (no database)."""
        return f"mysql://{self.user}:{self.password}@{self.host}:{self.port}"

    def connect(
        self, database: str | None = "meepo_test", **kwargs: Any
    ) -> pymysql.connections.Connection[Any]:
        """A new pymysql connection (caller closes it); ``kwargs`` go to ``pymysql.connect``."""
        import pymysql

        params: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": database,
            "charset": "utf8mb4",
            "connect_timeout": 10,
        }
        params.update(kwargs)
        return pymysql.connect(**params)

    def execute(self, sql: str, *params: Any, database: str | None = "meepo_test") -> Rows:
        """Run one statement with autocommit on a fresh connection; return the fetched rows."""
        with self.connect(database, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(sql, params or None)
            return list(cur.fetchall())


class MariaDBServer(_MySQLClient, Service):
    """A MariaDB server with a ROW/FULL/FULL binlog, ready for CDC tests.

    After start the user ``meepo``/``meepo`` (``@%`` and ``@localhost``, all privileges with
    grant option) and the database ``meepo_test`` exist, created without binlog events; root has
    no password and is reachable through ``socket``.  Binlogs live in the data dir and survive
    ``restart()`` (which rotates to a new binlog file).
    """

    name = "mariadb"
    database = "meepo_test"

    def __init__(
        self, base_dir: Path, port: int | None = None, *, startup_timeout: float = 60.0
    ) -> None:
        super().__init__(base_dir, port, startup_timeout=startup_timeout)
        self.user = "meepo"
        self.password = "meepo"
        self.datadir = self.base_dir / "data"
        sock_dir, self._sock_tmp = short_dir(self.datadir, "mysqld.sock", "meepo-my-")
        self.socket = sock_dir / "mysqld.sock"
        self.server_binary = find_binary(["mariadbd", "mysqld"], [Path("/usr/sbin")])

    def initialize(self) -> None:
        if (self.datadir / "mysql").is_dir():
            return
        install = find_binary(["mariadb-install-db", "mysql_install_db"], [Path("/usr/bin")])
        self._run_setup(
            [
                install,
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ]
        )

    def command(self) -> Sequence[str]:
        d = self.datadir
        return [
            self.server_binary,
            "--no-defaults",
            "--user=root",
            f"--datadir={d}",
            f"--port={self.port}",
            f"--bind-address={self.host}",
            f"--socket={self.socket}",
            f"--pid-file={d / 'mysqld.pid'}",
            f"--log-error={self.log_path}",
            f"--log-bin={d / 'binlog'}",
            "--binlog-format=ROW",
            "--binlog-row-image=FULL",
            "--binlog-row-metadata=FULL",
            "--server-id=1",
            "--log-slave-updates",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=16M",
            "--innodb-doublewrite=0",
            "--innodb-flush-log-at-trx-commit=2",
            "--sync-binlog=0",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            "--max-connections=500",
            "--skip-symbolic-links",
        ]

    def root_connect(self, **kwargs: Any) -> pymysql.connections.Connection[Any]:
        """A pymysql connection as root over the unix socket (no database selected)."""
        import pymysql

        return pymysql.connect(
            unix_socket=str(self.socket), user="root", password="", connect_timeout=5, **kwargs
        )

    def is_ready(self) -> bool:
        with self.root_connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
        return True

    def after_start(self) -> None:
        with self.root_connect(autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")  # keep the binlog to what tests do
            for host in ("%", "localhost"):
                cur.execute(f"CREATE USER IF NOT EXISTS 'meepo'@'{host}' IDENTIFIED BY 'meepo'")
                cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO 'meepo'@'{host}' WITH GRANT OPTION")
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")

    def close(self) -> None:
        super().close()
        remove_tempdir(self._sock_tmp)


class ExternalMySQL(_MySQLClient):
    """A MySQL server reached through a ``mysql://user:pass@host:port[/db]`` DSN; never started."""

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        if parts.scheme not in ("mysql", "mariadb") or not parts.hostname:
            raise ServiceError(f"not a mysql://user:pass@host:port DSN: {dsn!r}")
        self.host = parts.hostname
        self.port = parts.port or 3306
        self.user = unquote(parts.username or "root")
        self.password = unquote(parts.password or "")
        self.default_database = parts.path.lstrip("/") or None

    def connect(
        self, database: str | None = None, **kwargs: Any
    ) -> pymysql.connections.Connection[Any]:
        """Like :meth:`MariaDBServer.connect`; the database defaults to the DSN's, if any."""
        return super().connect(database or self.default_database, **kwargs)

    def execute(self, sql: str, *params: Any, database: str | None = None) -> Rows:
        """Run one statement with autocommit; the database defaults to the DSN's, if any."""
        return super().execute(sql, *params, database=database or self.default_database)

    def restart(self) -> None:
        """Always raises: an external server is not ours to restart."""
        raise ServiceError("cannot restart an external MySQL server")


def external_mysql() -> ExternalMySQL | None:
    """The server named by ``$MEEPO_TEST_MYSQL_DSN``, or None when unset."""
    dsn = os.environ.get(MYSQL_DSN_ENV, "").strip()
    return ExternalMySQL(dsn) if dsn else None

