"""Real-service launchers for tests: MariaDB, Redis, PostgreSQL and Elasticsearch (noida-db).

Each launcher runs a real server process from the machine's installed binaries on a free
``127.0.0.1`` port with its data under a caller-given directory.  Contracts shared by all:

* ``start()`` is idempotent; it blocks until the server answers a real request, or raises
  :class:`ServiceError` naming the service, port and reason, followed by the tail of its log.
* ``stop()`` shuts the server down cleanly (signal, wait, then SIGKILL after a timeout) and keeps
  its data; ``restart()`` is ``stop()`` + ``start()`` on the same port and data directory.
* ``close()`` stops the server and removes anything it keeps outside ``base_dir``; the context
  manager protocol is ``start()`` / ``close()``.
* Servers still running when the interpreter exits are stopped by an ``atexit`` hook.

No pytest import here: :mod:`meepo_core.testing.pytest_plugin` builds the fixtures.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, ClassVar, Self
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    import pymysql.connections

__all__ = [
    "ES_URL_ENV",
    "MYSQL_DSN_ENV",
    "ElasticsearchServer",
    "ExternalElasticsearch",
    "ExternalMySQL",
    "MariaDBServer",
    "PostgresServer",
    "RedisServer",
    "Service",
    "ServiceError",
    "external_elasticsearch",
    "external_mysql",
    "free_port",
]

MYSQL_DSN_ENV = "MEEPO_TEST_MYSQL_DSN"
ES_URL_ENV = "MEEPO_TEST_ES_URL"
_LOCALHOST = "127.0.0.1"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin.

Rows = list[tuple[Any, ...]]


class ServiceError(RuntimeError):
    """A service could not be set up, started or used."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOCALHOST, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


_RUNNING: weakref.WeakSet[Service] = weakref.WeakSet()
_TEMP_DIRS: set[Path] = set()
_ATEXIT_REGISTERED = False


def _cleanup_at_exit() -> None:
    for service in list(_RUNNING):
        with contextlib.suppress(Exception):
            service.close()
    for path in list(_TEMP_DIRS):
        shutil.rmtree(path, ignore_errors=True)


def _register_atexit() -> None:
    global _ATEXIT_REGISTERED
    if not _ATEXIT_REGISTERED:
        atexit.register(_cleanup_at_exit)
        _ATEXIT_REGISTERED = True


def _private_tempdir(prefix: str) -> Path:
    """A new dir under the system temp dir, removed by ``_remove_tempdir`` or at exit."""
    _register_atexit()
    path = Path(tempfile.mkdtemp(prefix=prefix))
    _TEMP_DIRS.add(path)
    return path


def _remove_tempdir(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)
        _TEMP_DIRS.discard(path)


def _short_dir(preferred: Path, leaf: str, prefix: str) -> tuple[Path, Path | None]:
    """``preferred`` if ``preferred/leaf`` fits in a unix socket path, else a private temp dir.

    The second item is the temp dir made, if any (the caller removes it on close).
    """
    if len(str(preferred / leaf)) <= _SOCKET_PATH_MAX:
        return preferred, None
    path = _private_tempdir(prefix)
    return path, path


class _PortInUse(ServiceError):
    """The server exited at startup because its port was taken."""


class Service:
    """Base launcher: one server process, a port, a data dir and a log file in ``base_dir``.

    Subclasses give ``command()`` and ``is_ready()``; they may override ``initialize()`` (one-time
    setup before the first start), ``after_start()`` (idempotent provisioning after each start)
    and ``popen_kwargs()``.
    """

    name: ClassVar[str] = "service"
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    signal_group: ClassVar[bool] = True  # signal the whole process group, not just the leader

    def __init__(
        self, base_dir: Path, port: int | None = None, *, startup_timeout: float = 60.0
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.host = _LOCALHOST
        self.port = port if port is not None else free_port()
        self._may_repick_port = port is None  # until the first successful start
        self.startup_timeout = startup_timeout
        self.log_path = self.base_dir / f"{self.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._initialized = False

    # -- subclass hooks -------------------------------------------------------------------
    def command(self) -> Sequence[str]:
        """The server's argv; it must stay in the foreground."""
        raise NotImplementedError

    def is_ready(self) -> bool:
        """True once the server answers a real request; may raise (treated as not ready)."""
        raise NotImplementedError

    def initialize(self) -> None:
        """One-time setup before the first start (e.g. creating the data dir)."""

    def after_start(self) -> None:
        """Idempotent provisioning after every successful start."""

    def popen_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments for :class:`subprocess.Popen`."""
        return {}

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self._proc.pid if self.running and self._proc is not None else None

    def start(self) -> Self:
        """Start the server and wait until it is ready; a no-op if it already runs.

        If the port was picked by :func:`free_port` and another process took it before the
        first start, a new port is picked (up to 3 tries).
        """
        if self.running:
            return self
        if not self._initialized:
            self.initialize()
            self._initialized = True
        for attempt in range(3):
            try:
                self._launch()
                break
            except _PortInUse:
                if not self._may_repick_port or attempt == 2:
                    raise
                self.port = free_port()
        self._may_repick_port = False
        try:
            self.after_start()
        except Exception as exc:
            self.stop()
            raise self._error(f"provisioning failed: {exc}") from exc
        return self

    def _launch(self) -> None:
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log = self.log_path.open("ab")
        argv = [str(arg) for arg in self.command()]
        self._log.write(f"--- meepo: starting {shlex.join(argv)}\n".encode())
        self._log.flush()
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self.popen_kwargs(),
            )
        except OSError as exc:
            self._close_log()
            raise self._error(f"cannot run {argv[0]}: {exc}") from exc
        _track(self)
        self._wait_ready(log_offset)

    def stop(self, timeout: float = 30.0) -> None:
        """Shut the server down cleanly, keeping its data; SIGKILL after ``timeout`` seconds."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            self._signal(proc, self.stop_signal)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait(10)
        if proc is not None and self.signal_group:
            # Reap helpers left in the group (e.g. a wrapper's child).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        self._close_log()
        _RUNNING.discard(self)

    def restart(self) -> Self:
        """Stop, then start again on the same port and data dir (data is kept)."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server and release anything kept outside ``base_dir``."""
        self.stop()

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state} at {self.base_dir}>"

    # -- helpers ---------------------------------------------------------------------------
    def _wait_ready(self, log_offset: int) -> None:
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + self.startup_timeout
        last: Exception | None = None
        while True:
            code = proc.poll()
            if code is not None:
                self.stop()
                with self.log_path.open("rb") as log:
                    log.seek(log_offset)
                    in_use = b"in use" in log.read().lower()
                reason = f"process exited with code {code} during startup"
                if in_use:
                    raise self._error(f"port in use; {reason}", _PortInUse)
                raise self._error(reason)
            try:
                # is_ready() must talk to *this* process, not another one on the port.
                if self.is_ready() and proc.poll() is None:
                    return
            except Exception as exc:
                last = exc
            if time.monotonic() > deadline:
                self.stop(timeout=5)
                detail = f" (last error: {last})" if last else ""
                raise self._error(f"not ready after {self.startup_timeout:.0f}s{detail}")
            time.sleep(0.1)

    def _signal(self, proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.signal_group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def _error(self, reason: str, cls: type[ServiceError] = ServiceError) -> ServiceError:
        return cls(
            f"{self.name} on {self.host}:{self.port} failed: {reason}\n"
            f"--- last lines of {self.log_path} ---\n{_tail(self.log_path)}"
        )

    def _run_setup(self, command: Sequence[str | Path], **kwargs: Any) -> None:
        """Run a one-shot setup command, its output appended to the log; raise on failure."""
        argv = [str(arg) for arg in command]
        with self.log_path.open("ab") as log:
            log.write(f"--- meepo: running {shlex.join(argv)}\n".encode())
            log.flush()
            try:
                code = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    check=False,
                    timeout=self.startup_timeout,
                    **kwargs,
                ).returncode
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise self._error(f"{Path(argv[0]).name}: {exc}") from exc
        if code != 0:
            raise self._error(f"{Path(argv[0]).name} exited with code {code}")


def _track(service: Service) -> None:
    _register_atexit()
    _RUNNING.add(service)


def _find_binary(names: Sequence[str], extra_dirs: Sequence[Path] = ()) -> str:
    for name in names:
        for directory in extra_dirs:
            candidate = directory / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
        found = shutil.which(name)
        if found:
            return found
    raise ServiceError(f"none of {', '.join(names)} found (looked in {list(extra_dirs)} and PATH)")


# -- MySQL / MariaDB ----------------------------------------------------------------------


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
        sock_dir, self._sock_tmp = _short_dir(self.datadir, "mysqld.sock", "meepo-my-")
        self.socket = sock_dir / "mysqld.sock"
        self.server_binary = _find_binary(["mariadbd", "mysqld"], [Path("/usr/sbin")])

    def initialize(self) -> None:
        if (self.datadir / "mysql").is_dir():
            return
        install = _find_binary(["mariadb-install-db", "mysql_install_db"], [Path("/usr/bin")])
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
        _remove_tempdir(self._sock_tmp)


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


# -- Redis --------------------------------------------------------------------------------


class RedisServer(Service):
    """A non-persistent Redis server (``--save "" --appendonly no``); ``url`` selects db 0."""

    name = "redis"

    def __init__(
        self, base_dir: Path, port: int | None = None, *, startup_timeout: float = 60.0
    ) -> None:
        super().__init__(base_dir, port, startup_timeout=startup_timeout)
        self.datadir = self.base_dir / "data"
        self.server_binary = _find_binary(["redis-server"])

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://{self.host}:{self.port}/0"

    def initialize(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)

    def command(self) -> Sequence[str]:
        return [
            self.server_binary,
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.datadir),
            "--logfile",
            "",
            "--daemonize",
            "no",
            "--databases",
            "64",
        ]

    def send(self, *args: str) -> str:
        """Send one command over a raw socket; return a simple, integer or bulk reply as text.

        Raises :class:`ServiceError` on an error reply.  (Enough RESP for setup; tests should
        use redis-py.)
        """
        payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        with socket.create_connection((self.host, self.port), timeout=5) as sock:
            sock.sendall(payload.encode())
            with sock.makefile("rb") as reply:
                line = reply.readline().decode(errors="replace").rstrip("\r\n")
                if line.startswith("$") and int(line[1:]) >= 0:
                    return reply.read(int(line[1:]) + 2)[:-2].decode(errors="replace")
        if line.startswith("-"):
            raise ServiceError(f"redis {args[0]} failed: {line[1:]}")
        return line.lstrip("+:")

    def is_ready(self) -> bool:
        # INFO's process_id proves that *our* process answers, not another one on the port.
        info = self.send("INFO", "server")
        return f"process_id:{self.pid}\r\n" in info

    def flushall(self) -> None:
        """Empty every database."""
        self.send("FLUSHALL")


# -- PostgreSQL ---------------------------------------------------------------------------


def _postgres_bindir() -> Path:
    versions: list[tuple[int, Path]] = []
    for path in Path("/usr/lib/postgresql").glob("*/bin"):
        if (path / "initdb").is_file() and path.parent.name.isdigit():
            versions.append((int(path.parent.name), path))
    if versions:
        return max(versions)[1]
    return Path(_find_binary(["initdb"])).parent


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
            self._private = _private_tempdir("meepo-pg-")
            shutil.chown(self._private, "postgres", "postgres")
            self.datadir = self._private / "data"
        else:
            self.datadir = self.base_dir / "data"
        sock_dir, self._sock_tmp = _short_dir(
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
        _remove_tempdir(self._private)
        _remove_tempdir(self._sock_tmp)


# -- Elasticsearch (noida-db) -------------------------------------------------------------


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


class ElasticsearchServer(Service):
    """An Elasticsearch-REST-compatible server from the ``noida-db`` package (foreground mode).

    The whole process group is signalled on stop (the ``noida-db`` script is a Python wrapper
    that does not forward signals to its native child).  Data persists in ``base_dir/data``
    across ``restart()``.
    """

    name = "elasticsearch"

    def __init__(
        self, base_dir: Path, port: int | None = None, *, startup_timeout: float = 60.0
    ) -> None:
        super().__init__(base_dir, port, startup_timeout=startup_timeout)
        self.datadir = self.base_dir / "data"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    @staticmethod
    def executable() -> str:
        """The native ``noida-db`` binary inside the package if importable (so it is our direct
        child and gets reaped), else the ``noida-db`` script next to ``sys.executable`` or on PATH.
        """
        spec = importlib.util.find_spec("noida_db")
        for location in (spec.submodule_search_locations or []) if spec else []:
            native = Path(location) / "noida-db"
            if native.is_file() and os.access(native, os.X_OK):
                return str(native)
        try:
            return _find_binary(["noida-db"], [Path(sys.executable).parent])
        except ServiceError as exc:
            raise ServiceError(f"{exc}; install it with `pip install noida-db`") from None

    def command(self) -> Sequence[str]:
        exe = self.executable()
        return [
            exe,
            "start",
            "--only",
            "elasticsearch",
            "--elasticsearch-port",
            str(self.port),
            "--host",
            self.host,
            "--data-dir",
            str(self.datadir),
        ]

    def is_ready(self) -> bool:
        # noida-db writes its pid to the data dir's control file: proves *our* server answers.
        control = json.loads((self.datadir / "noida.control.json").read_text())
        if self.pid not in (control.get("pid"), _parent_pid(int(control.get("pid", 0)))):
            return False
        with urllib.request.urlopen(self.url + "/", timeout=2) as resp:
            return int(resp.status) == 200


class ExternalElasticsearch:
    """A real cluster named by ``$MEEPO_TEST_ES_URL``; never started, stopped or restarted."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    @property
    def running(self) -> bool:
        """Always True: the cluster is assumed to be up."""
        return True

    def start(self) -> Self:
        """No-op."""
        return self

    def stop(self) -> None:
        """No-op."""

    def close(self) -> None:
        """No-op."""

    def restart(self) -> Self:
        """Always raises: an external cluster is not ours to restart."""
        raise ServiceError(f"cannot restart an external cluster ({ES_URL_ENV}={self.url})")


def external_elasticsearch() -> ExternalElasticsearch | None:
    """The cluster named by ``$MEEPO_TEST_ES_URL``, or None when unset."""
    url = os.environ.get(ES_URL_ENV, "").strip()
    return ExternalElasticsearch(url) if url else None
