"""A private PostgreSQL server with ``wal_level=logical``."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import Service, find_binary, private_tempdir, remove_tempdir, short_dir

if TYPE_CHECKING:
    from collections.abc import Sequence


def _postgres_bindir() -> Path:
    versions: list[tuple[int, Path]] = []
    for path in Path("/usr/lib/postgresql").glob("*/bin"):
        if (path / "initdb").is_file() and path.parent.name.isdigit():
            versions.append((int(path.parent.name), path))
    if versions:
        return max(versions)[1]
    return Path(find_binary(["initdb"])).parent


class PostgresServer(Service):
    """A PostgreSQL server with trust auth, ``wal_level=logical`` and durability turned off.

    The database ``meepo_test`` exists after start; connect as ``postgres`` without password.
    As root the server runs as the ``postgres`` system user with its data in a private temp dir
    (pytest's base temp dir is mode 0700, so ``postgres`` could not reach it); ``close()``
    removes that dir.
    """

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: does not wait for clients
    signal_group = False  # backends share the group; let the postmaster stop them
    database = "meepo_test"
    user = "postgres"

    def __init__(
        self, base_dir: Path, port: int | None = None, *, startup_timeout: float = 60.0
    ) -> None:
        super().__init__(base_dir, port, startup_timeout=startup_timeout)
        self.bindir = _postgres_bindir()
        self._as_postgres = os.geteuid() == 0
        self._private: Path | None = None
        if self._as_postgres:
            self._private = private_tempdir("meepo-pg-")
            shutil.chown(self._private, "postgres", "postgres")
            self.datadir = self._private / "data"
        else:
            self.datadir = self.base_dir / "data"
        sock_dir, self._sock_tmp = short_dir(
            self.datadir, f".s.PGSQL.{self.port}", "meepo-pgsock-"
        )
        self.socket_dir = sock_dir

    @property
    def url(self) -> str:
        """``postgresql://postgres@127.0.0.1:PORT/meepo_test``."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def popen_kwargs(self) -> dict[str, Any]:
        if not self._as_postgres:
            return {}
        env = {**os.environ, "HOME": str(self.datadir.parent), "USER": "postgres"}
        return {
            "user": "postgres",
            "group": "postgres",
            "extra_groups": [],
            "cwd": str(self.datadir.parent),
            "env": env,
        }

    def initialize(self) -> None:
        if self._sock_tmp is not None and self._as_postgres:
            shutil.chown(self.socket_dir, "postgres", "postgres")
        if (self.datadir / "PG_VERSION").is_file():
            return
        self._run_setup(
            [
                self.bindir / "initdb",
                "-D",
                self.datadir,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            **self.popen_kwargs(),
        )

    def command(self) -> Sequence[str]:
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "off",
            "full_page_writes": "off",
            "synchronous_commit": "off",
            "wal_level": "logical",
            "max_replication_slots": "10",
            "max_wal_senders": "10",
            "max_connections": "200",
            "logging_collector": "off",
        }
        argv: list[str] = [str(self.bindir / "postgres"), "-D", str(self.datadir)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def connect(self, dbname: str | None = None, **kwargs: Any) -> Any:
        """A new psycopg connection (default database ``meepo_test``); caller closes it."""
        import psycopg

        params: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": dbname or self.database,
            "connect_timeout": 5,
        }
        params.update(kwargs)
        return psycopg.connect(**params)

    def is_ready(self) -> bool:
        # Through our own socket dir, so another server on the port cannot answer for us.
        with self.connect("postgres", host=str(self.socket_dir), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True

    def after_start(self) -> None:
        with self.connect("postgres", autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def close(self) -> None:
        super().close()
        remove_tempdir(self._private)
        remove_tempdir(self._sock_tmp)

