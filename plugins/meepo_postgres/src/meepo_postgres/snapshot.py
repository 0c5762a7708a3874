"""Snapshots for the ``postgres`` source: chunks read with SQL in key order, watermarks
written as logical decoding messages.

A watermark is ``pg_logical_emit_message(true, 'meepo', MARK)``: a transactional message
committed on its own, which pgoutput (``messages 'true'``, PostgreSQL 14 and later) sends
at its commit position among the other transactions; the stream reports it as a
:class:`~meepo_core.events.Watermark` and never as a row. No table is written, so the source
needs no write privilege beyond REPLICATION (which ``pg_logical_emit_message`` requires).

Chunks select every column in the text its type's output function gives (``concat(col)``,
the text pgoutput sends; a ``::text`` cast differs for char(n), boolean and inet) and
convert it with the same converters as the stream (by type OID), so a copied row equals the
row the stream would deliver: ``SELECT ... FROM t WHERE (k1, k2) > (CAST($1 AS T1), ...)
ORDER BY k1, k2 LIMIT n``, one short autocommit statement on the control connection, whose session
settings (TimeZone, DateStyle, IntervalStyle, extra_float_digits) are the stream's.

Why not the snapshot exported when the slot is created: it holds the creating connection's
transaction open for the whole copy (a long transaction, which holds back vacuum on the
whole server), and cannot resume after a crash; the watermark windows need neither.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from meepo_core import (
    ConfigError,
    RowEvent,
    SnapshotTable,
    SourceError,
    TableDefinition,
    keyset_filter,
)

from .catalog import Catalog, table_definition
from .config import PostgresSettings
from .server import ControlConnection, quote_ident
from .values import Converter, ValueTooDeep

log = logging.getLogger("meepo.postgres")

#: The prefix of meepo's logical decoding messages.
WATERMARK_PREFIX = "meepo"
#: pgoutput sends logical decoding messages from this server version on.
MESSAGES_VERSION = 140000


@dataclass(frozen=True)
class _Columns:
    names: tuple[str, ...]
    types: tuple[str, ...]  # format_type, for casting key values back
    converters: tuple[Converter | None, ...]
    visible: tuple[int, ...]
    definition: TableDefinition | None = None


class PostgresSnapshots:
    """Snapshot capability of one :class:`~meepo_postgres.postgres_source.PostgresSource`."""

    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings
        self._control: ControlConnection | None = None
        self._catalog: Catalog | None = None
        self._columns: dict[str, _Columns] = {}

    @property
    def control(self) -> ControlConnection:
        if self._control is None:
            self._control = ControlConnection(self.settings)
            self._catalog = Catalog(self._control)
        return self._control

    def tables(self, names: Sequence[str] | None) -> list[SnapshotTable]:
        control = self.control
        if control.version < MESSAGES_VERSION:
            raise SourceError(
                f"PostgreSQL at {self.settings.address} is older than 14: pgoutput sends no "
                "logical decoding messages there, which snapshots use as watermarks")
        followed = {t.qualified: t for t in control.tables(self.settings.filter)}
        wanted = list(names) if names is not None else list(followed)
        found = []
        for name in wanted:
            info = followed.get(name)
            if info is None:
                raise ConfigError("--table", f"{name} is not among the pipeline's tables: "
                                  f"{', '.join(followed) or 'none'}")
            found.append(self._describe(info.schema, info.name))
        return found

    def _describe(self, schema: str, table: str) -> SnapshotTable:
        rows = self.control.query(
            "SELECT c.oid, c.reltuples::bigint, ARRAY(SELECT a.attname::text FROM "
            "unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) JOIN pg_attribute a ON "
            "a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_index i ON i.indrelid = c.oid AND CASE WHEN c.relreplident = 'i' "
            "THEN i.indisreplident ELSE i.indisprimary END "
            "WHERE n.nspname = %s AND c.relname = %s", schema, table)
        if not rows or not rows[0][2]:
            raise SourceError(f"table {schema}.{table} has no primary key (or replica "
                              "identity index): a snapshot reads it in key order and sinks "
                              "need the key; add a primary key")
        _, estimate, key = rows[0]
        return SnapshotTable(schema, table, tuple(key), max(int(estimate), 0) or None)

    def _columns_of(self, table: SnapshotTable) -> _Columns:
        found = self._columns.get(table.qualified)
        if found is None:
            rows = self.control.query(
                "SELECT a.attname::text, a.atttypid::int, format_type(a.atttypid, a.atttypmod) "
                "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace "
                "n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s AND "
                "a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                table.schema, table.table)
            assert self._catalog is not None
            names = tuple(str(r[0]) for r in rows)
            hidden = self.settings.filter.hidden_columns(table.schema, table.table, names,
                                                         table.key)
            oid = self.control.query(
                "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s", table.schema, table.table)[0][0]
            definition = table_definition(
                self.control, int(oid), self.settings.database, table.schema, table.table,
                table.key, [name for name in names if name not in hidden])
            found = self._columns[table.qualified] = _Columns(
                names, tuple(str(r[2]) for r in rows),
                tuple(self._catalog.converter(int(r[1])) for r in rows),
                tuple(i for i, name in enumerate(names) if name not in hidden),
                definition,
            )
        return found

    def last_key(self, table: SnapshotTable,
                 where: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
        columns = self._columns_of(table)
        index = [columns.names.index(name) for name in table.key]
        sql, params = self._select(table, columns, index, None, None, where,
                                   descending=True, limit=1)
        rows = self.control.query(sql, *params)
        if not rows:
            return None
        return tuple(_value(text, columns.converters[i])
                     for text, i in zip(rows[0], index, strict=True))

    def read_chunk(self, table: SnapshotTable, after: tuple[Any, ...] | None, limit: int,
                   where: Mapping[str, Any] | None,
                   until: tuple[Any, ...] | None = None) -> list[RowEvent]:
        columns = self._columns_of(table)
        sql, params = self._select(table, columns, range(len(columns.names)), after, until,
                                   where, descending=False, limit=limit)
        rows = self.control.query(sql, *params)
        now = datetime.now(UTC)
        index = [columns.names.index(name) for name in table.key]
        events = []
        for row in rows:
            try:
                values = [_value(text, convert)
                          for text, convert in zip(row, columns.converters, strict=True)]
            except ValueTooDeep:
                values = self._with_text_for_too_deep(table, columns, row)
            pk = values[index[0]] if len(index) == 1 else tuple(values[i] for i in index)
            image = {columns.names[i]: values[i] for i in columns.visible}
            events.append(RowEvent.trusted(table.schema, table.table, "read", pk, None, image,
                                           None, now, None, None, table.key,
                                           definition=columns.definition))
        return events

    @staticmethod
    def _with_text_for_too_deep(table: SnapshotTable, columns: _Columns,
                                row: Sequence[str | None]) -> list[Any]:
        """A copied row with a value nested too deep to decode: such values stay the
        server's text (the stream dead-letters such a row; a chunk has no dead-letter
        store, and dropping the row would lose it), with a warning naming them."""
        values = []
        for name, text, convert in zip(columns.names, row, columns.converters, strict=True):
            try:
                values.append(_value(text, convert))
            except ValueTooDeep as exc:
                log.warning("snapshot of %s: column %s of the row %r: %s; copied as its text",
                            table.qualified, name, [row[columns.names.index(k)]
                                                    for k in table.key], exc)
                values.append(text)
        return values

    @staticmethod
    def _select(table: SnapshotTable, columns: _Columns, selected: Sequence[int],
                after: tuple[Any, ...] | None, until: tuple[Any, ...] | None,
                where: Mapping[str, Any] | None, *, descending: bool,
                limit: int) -> tuple[str, list[Any]]:
        """``SELECT`` the ``selected`` columns as text of the rows with a key in
        (after, until] that ``where`` selects, in key order (``descending``: from the
        last), at most ``limit``; with its parameters."""
        typed = dict(zip(columns.names, columns.types, strict=True))
        conditions, params = keyset_filter(table, after, until, where, quote_ident,
                                           lambda name: f"CAST(%s AS {typed[name]})")
        texts = ", ".join(
            f"CASE WHEN {quote_ident(n)} IS NULL THEN NULL ELSE concat({quote_ident(n)}) END"
            for n in (columns.names[i] for i in selected))
        order = ", ".join(quote_ident(name) + (" DESC" if descending else "")
                          for name in table.key)
        sql = (f"SELECT {texts} FROM {quote_ident(table.schema)}.{quote_ident(table.table)}"
               + (f" WHERE {' AND '.join(conditions)}" if conditions else "")
               + f" ORDER BY {order} LIMIT {int(limit)}")
        return sql, params

    def write_watermark(self, mark: str) -> None:
        try:
            self.control.query("SELECT pg_logical_emit_message(true, %s, %s)",
                               WATERMARK_PREFIX, mark)
        except Exception as exc:
            raise SourceError(
                f"cannot write a snapshot watermark with pg_logical_emit_message on "
                f"{self.settings.address} (needs the REPLICATION attribute): {exc}") from exc

    def close(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
            self._catalog = None
        self._columns.clear()


def _value(text: str | None, convert: Converter | None) -> Any:
    return text if text is None or convert is None else convert(text)
