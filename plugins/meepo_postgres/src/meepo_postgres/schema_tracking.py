"""Schema changes from pgoutput Relation messages.

Logical replication carries no DDL. The server sends a Relation message before the first
change of a table in each session, and again before the first change after its definition
changed; :class:`SchemaTracker` compares each with the one before it and turns a difference
into a :class:`~meepo_core.SchemaChange`, placed before the first row of the new shape (as
PeerDB does):

* a table seen for the first time in a session: ``describe`` (``before`` unknown), or
  ``create`` when it was not among the followed tables when the source started (a table
  created, or added to the publication, while the pipeline runs);
* another name for the same relation: ``rename`` (``renamed_from``);
* other columns, types, nullability, defaults or key: ``alter``.

A change carries the sequence of the row event after it and takes no number of its own:
which changes a session shows depends on where it started (a first sight is a
``describe``), and the rows' numbers must not.

Column names and types come from the message (the definition the rows were written
with). Nullability, defaults, key columns and column numbers are read from the catalog
when the message arrives, which may already be ahead of it. A renamed column keeps its
column number (``attnum``): a new name whose number an old name had is a rename, anything
else is a drop and an add.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from meepo_core import (
    ColumnDefinition,
    SchemaChange,
    SchemaChangeKind,
    TableDefinition,
    TableFilter,
)

from .pgoutput import Relation
from .relations import TablePlan
from .server import ControlConnection, quote_ident


@dataclass(frozen=True, slots=True)
class _Seen:
    schema: str
    table: str
    definition: TableDefinition
    numbers: dict[str, int]  # column name -> attnum, as the catalog said


class SchemaTracker:
    """Remembers each followed relation's last definition in the current session."""

    def __init__(self, control: ControlConnection, known_at_start: set[tuple[str, str]],
                 table_filter: TableFilter | None = None) -> None:
        self.control = control
        self.table_filter = table_filter
        #: ``(schema, table)`` followed when the source started: first sights of others
        #: are ``create``.
        self.known_at_start = known_at_start
        self._seen: dict[int, _Seen] = {}
        self._types: dict[tuple[int, int], str] = {}
        #: The name each followed relation (by OID) had when last met: a table renamed
        #: before its first row of a session is still a rename, not a new table.
        self._names: dict[int, tuple[str, str]] = {
            int(oid): (str(schema), str(name)) for oid, schema, name in control.query(
                "SELECT c.oid::int, n.nspname::text, c.relname::text FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p')")
            if (str(schema), str(name)) in known_at_start
        }

    def new_session(self) -> None:
        """The server describes every relation again: forget what it said."""
        self._seen.clear()

    def observe(
        self, relation: Relation, plan: TablePlan, position: Any, committed_at: datetime,
        txid: str | None, sequence: int,
    ) -> SchemaChange | None:
        """The change that ``relation`` (of a followed table, planned as ``plan``) makes,
        or None when it describes the same table as before."""
        numbers, nullable, defaults = self._catalog_columns(relation.oid)
        visible = plan.visible
        columns = tuple(
            ColumnDefinition(
                column.name, self._type_name(column.type_oid, column.typmod),
                nullable.get(column.name, True), defaults.get(column.name),
            )
            for index, column in enumerate(relation.columns)
            if visible is None or index in visible
        )
        key = plan.pk_columns if plan.key else ()
        after = TableDefinition(columns, key)
        seen = self._seen.get(relation.oid)
        if seen is not None and seen.definition == after \
                and (seen.schema, seen.table) == (plan.schema, plan.table):
            # described again unchanged (after a cache invalidation): keep the column
            # numbers read with the first description, the catalog may be ahead by now
            return None
        self._seen[relation.oid] = _Seen(plan.schema, plan.table, after, numbers)
        kind: SchemaChangeKind
        renamed_from = None
        was = self._names.get(relation.oid)
        self._names[relation.oid] = (plan.schema, plan.table)
        if seen is None:
            before = None
            if was is not None and was != (plan.schema, plan.table):
                kind, renamed_from = "rename", was
            elif (plan.schema, plan.table) in self.known_at_start:
                kind = "describe"
            else:
                kind = "create"
            self.known_at_start.add((plan.schema, plan.table))
            renamed: tuple[tuple[str, str], ...] = ()
        else:
            before = seen.definition
            if (seen.schema, seen.table) != (plan.schema, plan.table):
                kind, renamed_from = "rename", (seen.schema, seen.table)
            else:
                kind = "alter"
            renamed = renamed_columns(before, after, seen.numbers, numbers)
        return SchemaChange(
            plan.schema, plan.table, kind, before, after, renamed_from=renamed_from,
            renamed_columns=renamed, position=position, committed_at=committed_at, txid=txid,
            sequence=sequence,
        )

    def discovered(self, schema: str, table: str, replica_identity: str,
                   catalog: Any, sequence: int | None) -> SchemaChange | None:
        """A ``create`` for a table that started to match while streaming, read from the
        catalog (no row of it has come through the stream yet); None when it is gone, or
        when it is a followed table under a new name: the catalog may be ahead of the
        stream, so that rename comes with the table's next Relation message, in order."""
        rows = self.control.query(
            "SELECT a.attrelid::int, a.attname::text, format_type(a.atttypid, a.atttypmod), "
            "NOT a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attnum "
            "FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid "
            "AND d.adnum = a.attnum WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 "
            "AND NOT a.attisdropped ORDER BY a.attnum",
            f"{quote_ident(schema)}.{quote_ident(table)}",
        )
        if not rows:
            return None
        oid = int(rows[0][0])
        self.known_at_start.add((schema, table))
        if oid in self._names or oid in self._seen:
            return None
        self._names[oid] = (schema, table)
        names = [str(r[1]) for r in rows]
        key = catalog.key_columns(oid, replica_identity)
        hidden = self.table_filter.hidden_columns(schema, table, names, key or names) \
            if self.table_filter is not None else set()
        columns = tuple(ColumnDefinition(str(name), str(kind), bool(null), default)
                        for _, name, kind, null, default, _ in rows if name not in hidden)
        definition = TableDefinition(columns, key)
        self._seen[oid] = _Seen(schema, table, definition,
                                {str(r[1]): int(r[5]) for r in rows})
        return SchemaChange(schema, table, "create", None, definition, sequence=sequence)

    def truncated(
        self, oid: int, plan: TablePlan, position: Any, committed_at: datetime,
        txid: str | None, sequence: int,
    ) -> SchemaChange:
        """A TRUNCATE of a followed table: every row gone, without row events."""
        seen = self._seen.get(oid)
        definition = seen.definition if seen is not None else None
        return SchemaChange(
            plan.schema, plan.table, "truncate", definition, definition,
            position=position, committed_at=committed_at, txid=txid, sequence=sequence,
        )

    def _type_name(self, type_oid: int, typmod: int) -> str:
        key = (type_oid, typmod)
        found = self._types.get(key)
        if found is None:
            rows = self.control.query("SELECT format_type(%s, %s)", type_oid,
                                      typmod if typmod >= 0 else None)
            found = self._types[key] = str(rows[0][0]) if rows and rows[0][0] else \
                f"oid {type_oid}"
        return found

    def _catalog_columns(
        self, oid: int
    ) -> tuple[dict[str, int], dict[str, bool], dict[str, str | None]]:
        rows = self.control.query(
            "SELECT a.attname::text, a.attnum, NOT a.attnotnull, pg_get_expr(d.adbin, d.adrelid) "
            "FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid "
            "AND d.adnum = a.attnum WHERE a.attrelid = %s AND a.attnum > 0 "
            "AND NOT a.attisdropped", oid,
        )
        return ({name: int(num) for name, num, _, _ in rows},
                {name: bool(null) for name, _, null, _ in rows},
                {name: default for name, _, _, default in rows})


def renamed_columns(
    before: TableDefinition, after: TableDefinition, old_numbers: dict[str, int],
    new_numbers: dict[str, int],
) -> tuple[tuple[str, str], ...]:
    """``(old, new)`` for each column of ``before`` that ``after`` has under another name:
    the new name has the column number the old one had (a rename keeps ``attnum``; a
    dropped and added column gets a new one). When the catalog no longer knows one of the
    two numbers (it moved on since), a column in the same place with the same type under
    a new name, in a table with as many columns as before, is taken for a rename."""
    old_names, new_names = before.names, after.names
    gone = [name for name in old_names if name not in new_names]
    if not gone:
        return ()
    pairs = []
    for name in new_names:
        if name in old_names:
            continue
        new_number = new_numbers.get(name)
        old = next((g for g in gone if new_number is not None
                    and old_numbers.get(g) == new_number), None)
        if old is None and len(old_names) == len(new_names):
            index = new_names.index(name)
            candidate = old_names[index]
            if candidate in gone and (new_number is None or candidate not in old_numbers) \
                    and before.columns[index].type == after.columns[index].type:
                old = candidate
        if old is not None:
            pairs.append((old, name))
            gone.remove(old)
    return tuple(pairs)
