"""Schema changes of the SQLAlchemy sources: tables whose definition changed between runs.

Neither SQLAlchemy source sees DDL: the session source sees mapped objects, the outbox
relay sees row images (column names and values, no types). What each knows of a table's
definition, and so where its definitions come from:

* ``sqlalchemy-outbox``: the outbox is written in the application's own transactions, so
  the tables its rows name live in the database the relay reads. The relay reflects a
  table there (SQLAlchemy's inspector: columns, types compiled for that database,
  nullability, server defaults, primary key) the first time a run meets it. Reflection
  states the database's truth, which a model class may lag behind (a migration applied
  outside the ORM), and the rows' images carry no types to build it from.
* ``sqlalchemy-session`` (in-process, ``install(..., sinks=...)``/``pipeline=...``): the
  mapped :class:`~sqlalchemy.Table` of the rows, compiled for the session's dialect.

When a table is met for the first time in a run, :class:`SchemaTracker` compares its
definition with the one stored from earlier runs and places a
:class:`~meepo_core.SchemaChange` before the table's first row event of the run, in the
same transaction (``Batcher.schema_change``):

* never stored: ``describe`` (``before`` unknown);
* stored and different: ``alter`` with ``before`` (stored) and ``after`` (now);
* stored and equal: nothing.

A table is looked at once per run (a set lookup per transaction's table after that, no
reflection): a change made while a run goes on is seen at the next run. A row already in
the outbox when the table changed is delivered after the change that describes the new
shape; its image simply lacks the new columns (sinks treat missing columns as unknown).

Where definitions are kept between runs: the outbox relay's position is an int that sinks
store themselves (exactly-once), so the definitions live next to the checkpoint, in
``.meepo/NAME.sqlalchemy-schemas.json`` under the config's directory. They are written
only when the runner acknowledges a checkpoint at or after the change's position, so a
change is stored only once every sink applied it: a crash before that replays the rows and
emits the change again. A lost file costs one ``describe`` per table, which sinks
reconcile idempotently (the ``sql`` sink makes its copy match ``after``). The in-process
session source has no checkpoint and no state between runs: its first commit of a table
in a process carries a ``describe``, which has the same effect on a ``sql`` replica.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import CompileError
from sqlalchemy.sql.expression import TableClause
from sqlalchemy.types import TypeEngine

from meepo_core import (
    ColumnDefinition,
    PlacedSchemaChange,
    Position,
    RowEvent,
    SchemaChange,
    TableDefinition,
    schema_change_from_dict,
    schema_change_to_dict,
)

log = logging.getLogger("meepo.sqlalchemy.schema")

#: Reads a table's definition now: ``(schema, table) -> definition``, None when it is gone.
Describe = Callable[[str, str], "TableDefinition | None"]


def _type_name(type_: TypeEngine[Any], dialect: Dialect) -> str:
    try:
        return str(type_.compile(dialect=dialect))
    except CompileError:  # a type the dialect cannot render (NullType): its generic name
        return type(type_).__name__.lower()


def table_definition(table: Table, dialect: Dialect) -> TableDefinition:
    """The definition of mapped ``table`` as ``dialect`` creates it."""
    columns = tuple(
        ColumnDefinition(
            column.name, _type_name(column.type, dialect), bool(column.nullable),
            _default_text(column.server_default),
        )
        for column in table.columns
    )
    return TableDefinition(columns, tuple(c.name for c in table.primary_key.columns),
                           dialect=dialect.name, schema=table.schema or "", table=table.name)


def _default_text(default: Any) -> str | None:
    if default is None:
        return None
    arg = getattr(default, "arg", None)
    if arg is None:
        return None
    return arg if isinstance(arg, str) else str(getattr(arg, "text", arg))


def reflected_definition(conn: Connection, schema: str, table: str) -> TableDefinition | None:
    """The definition of ``schema.table`` as the database at ``conn`` has it now (``schema``
    empty: the connection's default schema); None when there is no such table."""
    inspector = inspect(conn)
    schema_ = schema or None
    if not inspector.has_table(table, schema=schema_):
        return None
    dialect = conn.dialect
    columns = tuple(
        ColumnDefinition(
            str(c["name"]), _type_name(c["type"], dialect), bool(c.get("nullable", True)),
            None if c.get("default") is None else str(c.get("default")),
        )
        for c in inspector.get_columns(table, schema=schema_)
    )
    key = tuple(inspector.get_pk_constraint(table, schema=schema_).get("constrained_columns")
                or ())
    return TableDefinition(columns, key, dialect=dialect.name, schema=schema, table=table)


class DefinitionStore:
    """The definitions stored between runs, in a JSON file (``path`` None: nowhere)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def load(self) -> dict[tuple[str, str], TableDefinition]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            found = {}
            for item in data["tables"]:
                change = schema_change_from_dict(item)
                if change.after is not None:
                    found[(change.schema, change.table)] = change.after
            return found
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # only an optimisation: without it every table gets a `describe`
            log.warning("ignoring unreadable table definitions in %s (%s); each table is "
                        "described again", self.path, exc)
            return {}

    def save(self, definitions: dict[tuple[str, str], TableDefinition]) -> None:
        if self.path is None:
            return
        tables = [schema_change_to_dict(SchemaChange(schema, table, "describe", None, d))
                  for (schema, table), d in sorted(definitions.items())]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"tables": tables}, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)


class SchemaTracker:
    """Which tables a run has met, and the change to emit for each first meeting."""

    def __init__(self, describe: Describe, store: DefinitionStore | None = None) -> None:
        self.describe = describe
        self.store = store or DefinitionStore(None)
        self._stored = self.store.load()
        self._met: set[tuple[str, str]] = set()
        #: definitions emitted in this run, with the position that makes them stored
        self._pending: list[tuple[Position, tuple[str, str], TableDefinition]] = []

    def is_met(self, schema: str, table: str) -> bool:
        return (schema, table) in self._met

    def meet(self, schema: str, table: str, *, position: Position = None,
             committed_at: datetime | None = None, txid: str | None = None,
             sequence: int | None = None) -> SchemaChange | None:
        """The change that the run's first row of ``schema.table`` comes after, or None
        (unchanged since the stored definition, or the table is gone)."""
        key = (schema, table)
        self._met.add(key)
        after = self.describe(schema, table)
        if after is None:
            return None
        before = self._stored.get(key)
        if before is not None and (before.columns, before.key_columns) == \
                (after.columns, after.key_columns):
            return None  # where the table is and its dialect are not stored: not compared
        if self.store.path is not None:  # nothing to store otherwise
            self._pending.append((position, key, after))
        return SchemaChange(
            schema, table, "describe" if before is None else "alter", before, after,
            position=position, committed_at=committed_at or datetime.now(UTC), txid=txid,
            sequence=sequence,
        )

    def acknowledge(self, position: Position) -> None:
        """Every sink applied everything up to ``position``: store the definitions emitted
        at or before it (positions compare as the source's own, ints for the outbox)."""
        if not self._pending:
            return
        done = [p for p in self._pending if p[0] is None or _at_or_before(p[0], position)]
        if not done:
            return
        for _, key, definition in done:
            self._stored[key] = definition
        self._pending = [p for p in self._pending if p not in done]
        try:
            self.store.save(self._stored)
        except OSError as exc:  # the next run describes these tables again
            log.warning("could not store table definitions in %s: %s", self.store.path, exc)


def _at_or_before(position: Position, acknowledged: Position) -> bool:
    try:
        return bool(position <= acknowledged)
    except TypeError:
        return False


class MappedTables:
    """The in-process session source's tables: the mapped :class:`~sqlalchemy.Table` of
    every flushed mapper, and a :class:`SchemaTracker` (no store) describing each the first
    time a published transaction has rows of it."""

    def __init__(self) -> None:
        self._tables: dict[tuple[str, str], tuple[Table, Dialect]] = {}
        self.tracker = SchemaTracker(self._describe)

    def note(self, tables: Iterable[TableClause], dialect: Dialect) -> None:
        """Remember the tables of a flushed mapper, bound to a database of ``dialect``."""
        for table in tables:
            if isinstance(table, Table):
                self._tables.setdefault((table.schema or "", table.name), (table, dialect))

    def _describe(self, schema: str, table: str) -> TableDefinition | None:
        found = self._tables.get((schema, table))
        return None if found is None else table_definition(*found)

    def placed(self, events: Sequence[RowEvent]) -> tuple[PlacedSchemaChange, ...]:
        """The changes to place before the first row event of each table met for the
        first time (none after that: one set lookup per table change in ``events``)."""
        placed: list[PlacedSchemaChange] = []
        last: tuple[str, str] = ("", "")
        for index, event in enumerate(events):
            key = (event.schema, event.table)
            if key == last:
                continue
            last = key
            if not self.tracker.is_met(*key) and (change := self.tracker.meet(
                    *key, committed_at=event.committed_at, txid=event.txid)) is not None:
                placed.append((index, change))
        return tuple(placed)
