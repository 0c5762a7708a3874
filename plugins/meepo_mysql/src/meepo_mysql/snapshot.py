"""Snapshots for the ``mysql`` source: chunks read in key order, each exactly at a binlog
position, which the stream reports as the chunk's watermarks.

MariaDB: a chunk is read inside ``START TRANSACTION WITH CONSISTENT SNAPSHOT``, and
``binlog_snapshot_file``/``binlog_snapshot_position`` name the binlog position that snapshot
is consistent with: every transaction before it is in the rows read, none after it. The low
and the high watermark are both that position (a window with nothing inside), so the chunk
is delivered when the stream reaches it: after every change it already contains and before
every change it does not. A chunk starts only once the binlog reader has reported its
position, and the reader stays paused while the chunk is read, until the chunk's position
is placed, so that position is never behind the stream (see
:class:`~meepo_mysql.rendezvous.PauseRendezvous`): the core asks for a chunk with
:meth:`~meepo_core.source.Source.read_chunk_between` and one call pauses, reads, places and
resumes. Nothing is written to the database. MySQL has no such status; its binlog position
and the InnoDB snapshot are not taken atomically, so the ``mysql`` source refuses snapshots
there.

Values: a chunk's rows must equal what the stream would deliver for them. Text is read as
its stored bytes (``CAST(col AS BINARY)``) and decoded by :mod:`meepo_mysql.charsets`
exactly as the stream decodes it (SELECT's utf8mb4 shows an unmappable byte as ``?``);
FLOAT is read as the DOUBLE it holds; temporal, BIT, SET, JSON and zero-date values are
mapped as the stream's decoder maps them (see the README's type table).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import pymysql

from meepo_core import (
    ConfigError,
    RowEvent,
    SnapshotTable,
    SourceError,
    TableDefinition,
    backoff_delay,
    keyset_filter,
)

from . import charsets
from .compat import query_rows
from .config import MySQLSettings
from .control_connection import ControlConnection
from .definitions import read_definition
from .positions import BinlogPosition, file_index
from .rendezvous import PauseRendezvous
from .server_errors import connect_error, error_text
from .values import bit_value, mariadb_json

_TEXT_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext",
                         "enum", "set"})
_ZERO = frozenset({"0000-00-00", "0000-00-00 00:00:00"})

Convert = Callable[[Any], Any]
#: A fetched row to its (primary key, image).
RowReader = Callable[[Sequence[Any]], tuple[Any, dict[str, Any]]]


@dataclass(frozen=True)
class _Column:
    name: str
    select: str  # the SELECT expression
    convert: Convert | None


class MySQLSnapshots:
    """The snapshot capability of one :class:`~meepo_mysql.mysql_source.MySQLSource`."""

    def __init__(self, settings: MySQLSettings, rendezvous: PauseRendezvous) -> None:
        self.settings = settings
        self.rendezvous = rendezvous
        self._control: ControlConnection | None = None
        self._reader: Any = None
        self._columns: dict[str, list[_Column]] = {}
        self._readers: dict[str, RowReader] = {}
        self._definitions: dict[str, TableDefinition | None] = {}

    @property
    def control(self) -> ControlConnection:
        if self._control is None:
            self._control = ControlConnection(self.settings)
        return self._control

    def tables(self, names: Sequence[str] | None) -> list[SnapshotTable]:
        control = self.control
        if control.flavor != "mariadb":
            raise SourceError(
                f"snapshots of the mysql source need MariaDB's binlog_snapshot_position, "
                f"which {control.version} lacks: copy the tables another way, then start the "
                "pipeline from the binlog position of that copy")
        rows = control.query(
            "SELECT t.TABLE_SCHEMA, t.TABLE_NAME, t.TABLE_ROWS, GROUP_CONCAT(k.COLUMN_NAME "
            "ORDER BY k.ORDINAL_POSITION SEPARATOR '\\0') FROM information_schema.TABLES t "
            "LEFT JOIN information_schema.KEY_COLUMN_USAGE k ON k.TABLE_SCHEMA = t.TABLE_SCHEMA "
            "AND k.TABLE_NAME = t.TABLE_NAME AND k.CONSTRAINT_NAME = 'PRIMARY' "
            "WHERE t.TABLE_TYPE = 'BASE TABLE' "
            + self._schema_clause() + " GROUP BY t.TABLE_SCHEMA, t.TABLE_NAME, t.TABLE_ROWS",
            *(self.settings.filter.schemas() or ()))
        followed = {
            f"{schema}.{table}": (str(schema), str(table), estimate, key)
            for schema, table, estimate, key in rows
            if self.settings.filter.follows(str(schema), str(table))
        }
        wanted = list(names) if names is not None else sorted(followed)
        found = []
        for name in wanted:
            if name not in followed:
                raise ConfigError("--table", f"{name} is not among the pipeline's tables: "
                                  f"{', '.join(sorted(followed)) or 'none'}")
            schema, table, estimate, key = followed[name]
            if not key:
                raise SourceError(f"table {name} has no primary key: a snapshot reads it in "
                                  "key order and sinks need the key; add a primary key")
            found.append(SnapshotTable(schema, table, tuple(str(key).split("\0")),
                                       int(estimate) if estimate is not None else None))
        return found

    def _schema_clause(self) -> str:
        schemas = self.settings.filter.schemas()
        if schemas is None:
            return ""
        return f"AND t.TABLE_SCHEMA IN ({', '.join(['%s'] * len(schemas))}) "

    # -- chunks ---------------------------------------------------------------------------
    def read_chunk_between(self, low: str, high: str, table: SnapshotTable,
                           after: tuple[Any, ...] | None, limit: int,
                           where: Mapping[str, Any] | None,
                           until: tuple[Any, ...] | None) -> list[RowEvent]:
        """Pause the binlog reader between two events, read the chunk consistent with a
        binlog position at or after the pause, place ``low`` and ``high`` both at that
        position (a window with nothing inside) and let the reader go on (see the module
        docstring). One call, one chunk: nothing depends on calls before or after."""
        columns = self._columns_of(table)
        sql, params = _select(table, columns, after, until, where, descending=False,
                              limit=limit)
        paused = self.rendezvous.pause()
        try:
            at, rows = self._consistent_read(sql, params, paused)
        except BaseException:
            self.rendezvous.resume()
            raise
        self.rendezvous.place_and_resume(at, [low, high])
        return self._events(table, columns, rows)

    def write_watermark(self, mark: str) -> None:
        """A watermark alone (the core places a chunk's with :meth:`read_chunk_between`):
        reported when the stream reaches the binlog's end as of now, so after everything
        committed before. Nothing is written to the database."""
        self.rendezvous.place(self.control.current_position(), [mark])

    def last_key(self, table: SnapshotTable,
                 where: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
        columns = {c.name: c for c in self._columns_of(table)}
        key = [columns[name] for name in table.key]
        sql, params = _select(table, key, None, None, where, descending=True, limit=1)
        try:
            with self._connection().cursor() as cur:  # in UTC, like the chunks
                cur.execute(sql, params or None)
                row = cur.fetchone()
        except pymysql.err.MySQLError as exc:
            self._drop_connection()
            raise SourceError(f"snapshot read on {self.settings.address}: "
                              f"{error_text(exc)}") from exc
        if row is None:
            return None
        return tuple(v if v is None or c.convert is None else c.convert(v)
                     for v, c in zip(row, key, strict=True))

    def read_chunk(self, table: SnapshotTable, after: tuple[Any, ...] | None, limit: int,
                   where: Mapping[str, Any] | None,
                   until: tuple[Any, ...] | None = None) -> list[RowEvent]:
        """The chunk's rows, read in a consistent snapshot; the binlog reader goes on."""
        columns = self._columns_of(table)
        sql, params = _select(table, columns, after, until, where, descending=False,
                              limit=limit)
        return self._events(table, columns, self._consistent_read(sql, params, None)[1])

    def _events(self, table: SnapshotTable, columns: Sequence[_Column],
                rows: Any) -> list[RowEvent]:
        now = datetime.now(UTC)
        image_of = self._row_reader(table, columns)
        new, schema, name, key = RowEvent.trusted, table.schema, table.table, table.key
        definition = self._definition(table, columns)
        events = []
        for raw in rows:
            pk, image = image_of(raw)
            events.append(new(schema, name, "read", pk, None, image, None, now, None, None, key,
                              None, definition))
        return events

    def _definition(self, table: SnapshotTable, columns: Sequence[_Column]
                    ) -> TableDefinition | None:
        """The table's column definitions (read once per table, like its columns)."""
        qualified = table.qualified
        if qualified not in self._definitions:
            names = [c.name for c in columns]
            hidden = self.settings.filter.hidden_columns(table.schema, table.table, names,
                                                         table.key)
            self._definitions[qualified] = read_definition(self.control, table.schema,
                                                           table.table, hidden)
        return self._definitions[qualified]

    def _row_reader(self, table: SnapshotTable, columns: Sequence[_Column]) -> RowReader:
        found = self._readers.get(table.qualified)
        if found is None:
            names = [c.name for c in columns]
            hidden = self.settings.filter.hidden_columns(table.schema, table.table, names,
                                                         table.key)
            found = self._readers[table.qualified] = _row_reader(
                columns, [names.index(k) for k in table.key],
                [i for i, name in enumerate(names) if name not in hidden])
        return found

    def _consistent_read(self, sql: str, params: list[Any], paused: tuple[int, int] | None
                         ) -> tuple[BinlogPosition, Any]:
        """The chunk's rows and the binlog position they are consistent with, which is at
        or after ``paused``, where the paused reader stopped: a transaction the reader has
        read may still be committing in InnoDB (its binlog is written first), so the read
        is repeated until its snapshot includes it."""
        for attempt in range(200):
            conn = self._connection()
            try:
                with conn.cursor() as cur:
                    cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                    cur.execute("SHOW STATUS WHERE Variable_name IN "
                                "('binlog_snapshot_file', 'binlog_snapshot_position')")
                    status = {str(k).lower(): str(v) for k, v in cur.fetchall()}
                    at = BinlogPosition(status["binlog_snapshot_file"],
                                        int(status["binlog_snapshot_position"]))
                    behind = paused is not None and (file_index(at.file), at.pos) < paused
                    rows: Any = ()
                    if not behind:
                        rows = query_rows(conn, cur.mogrify(sql, params or None))
                    cur.execute("COMMIT")
            except pymysql.err.MySQLError as exc:
                self._drop_connection()
                raise SourceError(f"snapshot read on {self.settings.address}: "
                                  f"{error_text(exc)}") from exc
            if not behind:
                return at, rows
            time.sleep(backoff_delay(attempt + 1, 0.001, 0.05))
        raise SourceError(f"snapshot read on {self.settings.address}: the consistent snapshot "
                          "stayed behind the binlog reader for 10 s")

    def _connection(self) -> Any:
        if self._reader is None:
            try:
                self._reader = pymysql.connect(autocommit=True, **self.control.sibling_settings())
            except (pymysql.err.MySQLError, OSError) as exc:
                raise connect_error(self.settings, exc) from exc
            with self._reader.cursor() as cur:
                cur.execute("SET SESSION time_zone = '+00:00'")
        return self._reader

    def _drop_connection(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            with contextlib.suppress(Exception):  # already broken
                reader.close()

    def _columns_of(self, table: SnapshotTable) -> list[_Column]:
        found = self._columns.get(table.qualified)
        if found is None:
            rows = self.control.query(
                "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME FROM "
                "information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
                "ORDER BY ORDINAL_POSITION", table.schema, table.table)
            extended = self.control.mariadb_extended_types(table.schema, table.table)
            found = self._columns[table.qualified] = [
                _column(str(name), str(kind).lower(), charset and str(charset),
                        extended.get(str(name)))
                for name, kind, charset in rows
            ]
        return found

    def close(self) -> None:
        self._drop_connection()
        if self._control is not None:
            self._control.close()
            self._control = None
        self._columns.clear()
        self._readers.clear()
        self._definitions.clear()


def _column(name: str, kind: str, charset: str | None, extended: str | None) -> _Column:
    """How to SELECT one column so that its value equals the stream's."""
    quoted = _quote(name)
    if extended in ("inet4", "inet6", "uuid"):
        return _Column(name, quoted, None)  # the text the server prints, like the stream
    if kind in _TEXT_TYPES and charset and charset != charsets.BINARY:
        decode = charsets.decoder(charset)
        if decode is None:
            raise SourceError(f"column {name}: character set {charset} is unknown to meepo")
        text: Callable[[bytes], str] = decode
        if extended == "json":
            return _Column(name, f"CAST({quoted} AS BINARY)", lambda raw: mariadb_json(text(raw)))
        if kind == "set":
            return _Column(name, f"CAST({quoted} AS BINARY)",
                           lambda raw: set(text(raw).split(",")) if raw else set())
        return _Column(name, f"CAST({quoted} AS BINARY)", text)
    if kind == "float":
        return _Column(name, f"CAST({quoted} AS DOUBLE)", None)
    if kind == "bit":
        return _Column(name, quoted, bit_value)
    if kind == "timestamp":
        return _Column(name, quoted, _timestamp)
    if kind in ("date", "datetime"):
        return _Column(name, quoted, _zero_date)
    return _Column(name, quoted, None)


def _zero_date(value: Any) -> Any:
    """The all-zero date is None, as the stream gives it; other dates Python cannot hold
    stay the server's text (pymysql returns that text too)."""
    if isinstance(value, str) and value.replace("0", "").strip(" -:.") == "":
        return None
    return value


def _timestamp(value: Any) -> Any:
    """TIMESTAMP read in the session time zone +00:00, UTC-aware like the stream's."""
    value = _zero_date(value)
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) else value


def _row_reader(columns: Sequence[_Column], key: Sequence[int],
                visible: Sequence[int]) -> RowReader:
    """A function from a fetched row to its (pk, image), generated once per table: every
    column's conversion written out, no per-column loop or dispatch (a snapshot's rows pass
    through it at pymysql's pace)."""
    namespace: dict[str, Any] = {}
    values = [f"v{i}" for i in range(len(columns))]
    lines = [f"def read(row):\n    {', '.join(values)}, = row"]
    for i, column in enumerate(columns):
        if column.convert is not None:
            namespace[f"convert{i}"] = column.convert
            lines.append(f"    if v{i} is not None:\n        v{i} = convert{i}(v{i})")
    pk = values[key[0]] if len(key) == 1 else "(" + "".join(f"{values[i]}, " for i in key) + ")"
    image = ", ".join(f"{columns[i].name!r}: {values[i]}" for i in visible)
    lines.append(f"    return {pk}, {{{image}}}")
    exec("\n".join(lines), namespace)  # column names enter only as repr() literals
    return cast(RowReader, namespace["read"])


def _select(table: SnapshotTable, columns: Sequence[_Column], after: tuple[Any, ...] | None,
            until: tuple[Any, ...] | None, where: Mapping[str, Any] | None, *,
            descending: bool, limit: int) -> tuple[str, list[Any]]:
    """``SELECT columns`` of the rows with a key in (after, until] that ``where`` selects,
    in key order (``descending``: from the last), at most ``limit``; with its parameters."""
    conditions, params = keyset_filter(table, after, until, where, _quote, lambda _: "%s")
    order = ", ".join(_quote(name) + (" DESC" if descending else "") for name in table.key)
    sql = (f"SELECT {', '.join(c.select for c in columns)} FROM {_quote(table.schema)}."
           f"{_quote(table.table)}"
           + (f" WHERE {' AND '.join(conditions)}" if conditions else "")
           + f" ORDER BY {order} LIMIT {int(limit)}")
    return sql, params


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"
