"""Snapshots for the ``sqlalchemy-outbox`` source: tables' current rows read through
SQLAlchemy (PostgreSQL, MariaDB/MySQL, SQLite...), watermarks written as outbox rows.

A watermark is an outbox row with ``action = "mark"`` written like any transaction's
events (it takes the commit-order lock), so the relay meets it exactly where it committed
among the application's transactions; the relay reports it as a
:class:`~meepo_core.events.Watermark` and never as an event. Chunks are read by keyset
pagination on the primary key (``WHERE (k1, k2) > (:a, :b) ORDER BY k1, k2 LIMIT n``), one
short autocommit statement each. Values are converted as the session source converts them
(:func:`~meepo_sqlalchemy.images.plain`: enums by value, UUIDs as text), keyed by column
name.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, MetaData, Select, Table, func, select, text, tuple_, update
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from meepo_core import ConfigError, RowEvent, SnapshotTable, SourceError

from .images import plain
from .outbox import OutboxMissing, OutboxTables
from .urls import describe

#: ``action`` of an outbox row that is a snapshot watermark, not an event.
MARK_ACTION = "mark"


class OutboxSnapshots:
    """Reads chunks of the tables named in the source's ``tables`` option and writes
    watermarks into the outbox; see the module docstring."""

    def __init__(self, engine: Callable[[], Engine], outbox: OutboxTables,
                 tables: Sequence[str] | None, key_path: str) -> None:
        self._engine = engine
        self.outbox = outbox
        self.configured = list(tables) if tables is not None else None
        self.key_path = key_path
        self._metadata = MetaData()
        self._reflected: dict[str, Table] = {}

    def tables(self, names: Sequence[str] | None) -> list[SnapshotTable]:
        """The configured tables (``tables``), or ``names`` among them."""
        if self.configured is None:
            raise ConfigError(f"{self.key_path}.tables",
                              "list the tables to snapshot, e.g. tables = [\"orders\"]")
        wanted = list(names) if names is not None else self.configured
        for name in wanted:
            if name not in self.configured:
                raise ConfigError("--table", f"{name} is not among the source's tables: "
                                  f"{', '.join(self.configured)}")
        return [self._describe(name) for name in wanted]

    def _table(self, name: str) -> Table:
        if name not in self._reflected:
            schema, _, table = name.rpartition(".")
            try:
                self._reflected[name] = Table(table, self._metadata, schema=schema or None,
                                              autoload_with=self._engine())
            except NoSuchTableError as exc:
                raise ConfigError(f"{self.key_path}.tables",
                                  f"table {name} does not exist in "
                                  f"{describe(self._engine().url)}") from exc
            except SQLAlchemyError as exc:
                raise SourceError(f"cannot read the definition of {name}: {exc}") from exc
        return self._reflected[name]

    def _describe(self, name: str) -> SnapshotTable:
        table = self._table(name)
        key = tuple(column.name for column in table.primary_key.columns)
        if not key:
            raise SourceError(f"table {name} has no primary key: a snapshot reads it in key "
                              "order and sinks need the key; add a primary key")
        return SnapshotTable(table.schema or "", table.name, key, self._estimate(table))

    def _estimate(self, table: Table) -> int | None:
        engine = self._engine()
        try:
            with engine.connect() as conn:
                if engine.dialect.name == "postgresql":
                    found = conn.execute(text(
                        "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(:t)"),
                        {"t": f"{table.schema}.{table.name}" if table.schema else table.name},
                    ).scalar()
                elif engine.dialect.name in ("mysql", "mariadb"):
                    found = conn.execute(text(
                        "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE "
                        "TABLE_SCHEMA = COALESCE(:s, DATABASE()) AND TABLE_NAME = :t"),
                        {"s": table.schema, "t": table.name}).scalar()
                else:
                    found = conn.execute(select(func.count()).select_from(table)).scalar()
                conn.rollback()
        except SQLAlchemyError:
            return None
        return max(int(found), 0) if found is not None else None

    def last_key(self, snapshot: SnapshotTable,
                 where: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
        table = self._table(snapshot.qualified)
        key = [table.c[name] for name in snapshot.key]
        query = self._filtered(select(*key), table, key, None, None, where)
        rows = self._fetch(snapshot, query.order_by(*(c.desc() for c in key)).limit(1))
        return tuple(plain(rows[0][name]) for name in snapshot.key) if rows else None

    def read_chunk(self, snapshot: SnapshotTable, after: tuple[Any, ...] | None, limit: int,
                   where: Mapping[str, Any] | None,
                   until: tuple[Any, ...] | None = None) -> list[RowEvent]:
        table = self._table(snapshot.qualified)
        key = [table.c[name] for name in snapshot.key]
        query = self._filtered(select(table), table, key, after, until, where)
        now = datetime.now(UTC)
        rows = self._fetch(snapshot, query.order_by(*key).limit(limit))
        events = []
        for row in rows:
            image = {name: plain(value) for name, value in row.items()}
            pk = image[snapshot.key[0]] if len(snapshot.key) == 1 else tuple(
                image[name] for name in snapshot.key)
            events.append(RowEvent.trusted(snapshot.schema, snapshot.table, "read", pk, None,
                                           image, None, now, None, None, snapshot.key))
        return events

    @staticmethod
    def _filtered(query: Select[Any], table: Table, key: list[Any],
                  after: tuple[Any, ...] | None, until: tuple[Any, ...] | None,
                  where: Mapping[str, Any] | None) -> Select[Any]:
        """``query`` limited to keys in (after, until] and to the rows ``where`` selects."""
        whole = tuple_(*key) if len(key) > 1 else key[0]
        if after is not None:
            query = query.where(whole > (tuple_(*after) if len(key) > 1 else after[0]))
        if until is not None:
            query = query.where(whole <= (tuple_(*until) if len(key) > 1 else until[0]))
        for column, value in (where or {}).items():
            query = query.where(table.c[column].is_(None) if value is None
                                else table.c[column] == value)
        return query

    def _fetch(self, snapshot: SnapshotTable, query: Select[Any]) -> Sequence[Any]:
        try:
            with self._engine().connect() as conn:
                rows = conn.execute(query).mappings().all()
                conn.rollback()
        except SQLAlchemyError as exc:
            raise SourceError(f"snapshot of {snapshot.qualified}: {exc}") from exc
        return rows

    def write_watermark(self, mark: str) -> None:
        """Commit an outbox row carrying ``mark``, under the commit-order lock."""
        lock, outbox = self.outbox.lock, self.outbox.outbox
        try:
            with self._engine().begin() as conn:
                locked = conn.execute(update(lock).where(lock.c.id == 1)
                                      .values(commits=lock.c.commits + 1))
                if locked.rowcount != 1:
                    raise OutboxMissing(f"outbox lock row missing in table {lock.name}")
                conn.execute(outbox.insert().values(
                    txid=str(uuid.uuid4()), table_name="", action=MARK_ACTION,
                    payload=json.dumps({"watermark": mark})))
        except (SQLAlchemyError, OutboxMissing) as exc:
            raise SourceError(
                f"cannot write a snapshot watermark into outbox {outbox.name} (needs INSERT "
                f"on it and UPDATE on {lock.name}): {exc}") from exc


def watermark_of(payload: str) -> str:
    """The mark carried by a watermark row's payload."""
    return str(json.loads(payload)["watermark"])
