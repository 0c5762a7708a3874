"""Reading tables' current rows straight from MySQL/MariaDB for the backfill.

Uses the pipeline's own ``source`` table (``dsn``, ``tables``, ``exclude_tables``) and
pymysql, so the backfill does not depend on the binlog source's internals. Rows are read
in primary-key order, ``chunk_size`` at a time, by keyset pagination (``WHERE (pk) > (last)``),
so a table of millions of rows never sits in memory and no long transaction is held.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql
import pymysql.cursors
from pymysql.constants import FIELD_TYPE

from meepo_core.errors import ConfigError, SourceError

SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})


@dataclass(frozen=True)
class SourceDatabase:
    """Connection parameters and table names taken from a pipeline's ``source`` table."""

    host: str
    port: int
    user: str
    password: str
    tables: tuple[str, ...]
    exclude_tables: tuple[str, ...] = ()
    #: ``columns`` of the source: ``{"schema.table glob": {"include"/"exclude": [globs]}}``.
    columns: tuple[tuple[str, tuple[str, ...] | None, tuple[str, ...]], ...] = ()

    def hidden_columns(self, qualified: str, columns: list[str]) -> set[str]:
        """Columns the source hides for this table, so the backfill hides them too."""
        hidden: set[str] = set()
        for pattern, include, exclude in self.columns:
            if not fnmatchcase(qualified, pattern):
                continue
            for column in columns:
                if include is not None and not any(fnmatchcase(column, p) for p in include):
                    hidden.add(column)
                if any(fnmatchcase(column, p) for p in exclude):
                    hidden.add(column)
        return hidden

    @classmethod
    def from_source(cls, source: dict[str, Any], key_path: str) -> SourceDatabase:
        dsn = source.get("dsn")
        if not isinstance(dsn, str) or not dsn.startswith("mysql://"):
            raise ConfigError(f"{key_path}.dsn", "the backfill reads the source database "
                              "directly and needs a mysql://user:pass@host:port dsn")
        parts = urlsplit(dsn)
        tables = source.get("tables")
        if isinstance(tables, str):
            tables = [tables]
        if not tables or not all(isinstance(t, str) and "." in t for t in tables):
            raise ConfigError(f"{key_path}.tables",
                              'the backfill needs schema.table names, e.g. ["shop.orders"]')
        excluded = source.get("exclude_tables", [])
        if isinstance(excluded, str):
            excluded = [excluded]
        rules = []
        for pattern, rule in (source.get("columns") or {}).items():
            if not isinstance(rule, dict):
                raise ConfigError(f"{key_path}.columns.{pattern}",
                                  "must be a table with include = [...] or exclude = [...]")
            include, exclude = rule.get("include"), rule.get("exclude", [])
            include = [include] if isinstance(include, str) else include
            exclude = [exclude] if isinstance(exclude, str) else exclude
            rules.append((pattern, tuple(include) if include is not None else None,
                          tuple(exclude)))
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            tables=tuple(tables),
            exclude_tables=tuple(excluded),
            columns=tuple(rules),
        )

    def connect(self) -> pymysql.connections.Connection[Any]:
        try:
            conn = pymysql.connect(host=self.host, port=self.port, user=self.user,
                                   password=self.password, charset="utf8mb4", autocommit=True,
                                   connect_timeout=10)
        except pymysql.err.OperationalError as exc:
            raise SourceError(f"cannot connect to mysql://{self.host}:{self.port}: {exc}"
                              ) from exc
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")  # TIMESTAMP columns come back in UTC
        return conn


def resolve_tables(conn: pymysql.connections.Connection[Any], db: SourceDatabase) -> list[str]:
    """The source's ``schema.table`` names with globs expanded (case-sensitively, the
    server's own schemas only when named literally), exclusions removed."""
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
                    "WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME")
        existing = [(str(schema), str(table)) for schema, table in cur.fetchall()]
    found: list[str] = []
    for pattern in db.tables:
        schema_glob = any(c in pattern.split(".", 1)[0] for c in "*?[")
        names = [f"{s}.{t}" for s, t in existing if fnmatchcase(f"{s}.{t}", pattern)
                 and not (schema_glob and s in SYSTEM_SCHEMAS)]
        if not names and not any(c in pattern for c in "*?["):
            raise SourceError(f"table {pattern} named in the source's tables does not exist")
        found += [n for n in names if n not in found]
    return [n for n in found if not any(fnmatchcase(n, x) for x in db.exclude_tables)]


def binlog_position(conn: pymysql.connections.Connection[Any]) -> tuple[str, int]:
    """The current binlog file and position (``SHOW MASTER STATUS``)."""
    with conn.cursor() as cur:
        try:
            cur.execute("SHOW MASTER STATUS")
        except pymysql.err.ProgrammingError:  # MySQL 8.4 renamed it
            cur.execute("SHOW BINARY LOG STATUS")
        row = cur.fetchone()
    if not row:
        raise SourceError("SHOW MASTER STATUS returned nothing: the binlog is off; set "
                          "log_bin=ON (my.cnf) and restart the server")
    return str(row[0]), int(row[1])


def primary_key(conn: pymysql.connections.Connection[Any], schema: str, table: str
                ) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA=%s"
            " AND TABLE_NAME=%s AND CONSTRAINT_NAME='PRIMARY' ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        columns = [str(row[0]) for row in cur.fetchall()]
    if not columns:
        raise SourceError(f"{schema}.{table} has no primary key; the backfill reads in pk "
                          "order and the sink uses the pk as document id: add one")
    return columns


def estimated_rows(conn: pymysql.connections.Connection[Any], schema: str, table: str) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s "
                    "AND TABLE_NAME=%s", (schema, table))
        row = cur.fetchone()
    return int(row[0] or 0) if row else 0


def json_columns(conn: pymysql.connections.Connection[Any], schema: str, table: str
                 ) -> frozenset[str]:
    """MariaDB's JSON columns (LONGTEXT with a ``json_valid`` check), parsed like the
    binlog source parses them; empty on MySQL, whose JSON type is reported as such."""
    with conn.cursor() as cur:
        try:
            cur.execute(
                "SELECT CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS"
                " WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s AND LEVEL = 'Column'",
                (schema, table))
        except pymysql.err.MySQLError:  # MySQL: no LEVEL column, and no need
            return frozenset()
        rows = cur.fetchall()
    return frozenset(
        str(name) for name, clause in rows
        if re.fullmatch(r"\s*json_valid\(`?" + re.escape(str(name)) + r"`?\)\s*", str(clause))
    )


def read_chunks(
    conn: pymysql.connections.Connection[Any], schema: str, table: str, pk: list[str],
    chunk_size: int, hide: Callable[[list[str]], set[str]] = lambda columns: set(),
) -> Iterator[list[dict[str, Any]]]:
    """Rows of ``schema.table`` in pk order, ``chunk_size`` per list, without the columns
    ``hide`` names (the pk columns are read regardless, for paging).

    Values match what the binlog source gives: TIMESTAMP as UTC-aware datetimes, BIT as
    int, JSON (MySQL's type or MariaDB's checked LONGTEXT) parsed."""
    parsed_json = json_columns(conn, schema, table)
    quoted = ", ".join(_quote(c) for c in pk)
    base = f"SELECT * FROM {_quote(schema)}.{_quote(table)}"
    order = f" ORDER BY {quoted} LIMIT {int(chunk_size)}"
    last: tuple[Any, ...] | None = None
    while True:
        with conn.cursor() as cur:
            if last is None:
                cur.execute(base + order)
            else:
                marks = ", ".join(["%s"] * len(pk))
                cur.execute(f"{base} WHERE ({quoted}) > ({marks}){order}", last)
            names = [d[0] for d in cur.description]
            types = [d[1] for d in cur.description]
            rows = [_row(names, types, values, parsed_json) for values in cur.fetchall()]
        if not rows:
            return
        last = tuple(rows[-1][c] for c in pk)
        hidden = hide(names)
        if hidden:
            rows = [{k: v for k, v in row.items() if k not in hidden} for row in rows]
        yield rows
        if len(rows) < chunk_size:
            return


def _row(names: list[str], types: list[int], values: tuple[Any, ...],
         parsed_json: frozenset[str]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name, kind, value in zip(names, types, values, strict=True):
        if value is None:
            pass
        elif kind == FIELD_TYPE.TIMESTAMP and isinstance(value, datetime):
            value = value.replace(tzinfo=UTC)
        elif kind == FIELD_TYPE.BIT and isinstance(value, bytes):
            value = int.from_bytes(value, "big")
        elif kind == FIELD_TYPE.JSON or name in parsed_json:
            # Text that is not valid JSON after all (the check came later) stays text.
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        row[name] = value
    return row


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"
