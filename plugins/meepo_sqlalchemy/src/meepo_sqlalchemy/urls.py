"""Database URLs from config: an installed driver for bare schemes, SQLite paths from the
config file's directory."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from meepo_core import REQUIRED, Options, OptionSpec

#: Driver to use for a URL without ``+driver``, first one importable wins.
_DRIVERS = {
    "postgresql": (("psycopg2", "psycopg2"), ("psycopg", "psycopg")),
    "postgres": (("psycopg2", "psycopg2"), ("psycopg", "psycopg")),
    "mysql": (("MySQLdb", "mysqldb"), ("pymysql", "pymysql")),
    "mariadb": (("MySQLdb", "mysqldb"), ("pymysql", "pymysql")),
}


def normalize_url(raw: str | URL, base_dir: Path | None = None) -> URL:
    """``raw`` as a SQLAlchemy URL: ``postgresql://`` and ``mysql://`` get an installed
    driver (psycopg, pymysql) when the dialect's default one is missing, and a relative
    SQLite path is resolved against ``base_dir``."""
    url = make_url(raw)
    backend, _, driver = url.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
        url = url.set(drivername=backend + (f"+{driver}" if driver else ""))
    if not driver and backend in _DRIVERS:
        for module, name in _DRIVERS[backend]:
            if importlib.util.find_spec(module) is not None:
                url = url.set(drivername=f"{backend}+{name}")
                break
    if backend == "sqlite" and base_dir is not None and url.database:
        database = url.database
        if database != ":memory:" and not database.startswith("file:"):
            path = Path(database).expanduser()
            if not path.is_absolute():
                url = url.set(database=str((base_dir / path).resolve()))
    return url


def url_spec(meaning: str) -> OptionSpec:
    """The required ``url`` option of a type, declared with its ``meaning``."""
    return OptionSpec("url", "string", REQUIRED, meaning)


def url_option(options: Options, key: str | OptionSpec = "url") -> URL:
    """The SQLAlchemy URL at ``key`` (a name or its spec), validated (no connection is
    made)."""
    raw = options.string(key)
    key = key if isinstance(key, str) else key.name
    try:
        return normalize_url(raw, options.base_dir)
    except (ArgumentError, ValueError) as exc:
        raise options.error(
            key, f"not a database URL ({exc}); write e.g. postgresql://user@host/db or "
            "sqlite:///relative/path.db"
        ) from exc


def describe(url: URL) -> str:
    """``url`` without its password, for messages."""
    return url.render_as_string(hide_password=True)
