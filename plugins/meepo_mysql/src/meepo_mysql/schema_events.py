"""Schema changes from the binlog's DDL statements, as :class:`~meepo_core.SchemaChange`
events in commit order with the rows.

Each DDL statement the stream meets (:meth:`SchemaEvents.changes`) becomes one change per
followed table it touches: ``create`` (``CREATE TABLE``, ``... LIKE``, ``... SELECT``),
``alter`` (``ALTER TABLE``), ``rename`` (``RENAME TABLE``, ``ALTER TABLE ... RENAME``),
``drop`` (``DROP TABLE``), ``truncate`` (``TRUNCATE``), and ``create_database`` /
``drop_database``; a table renamed into ``tables`` is a ``create`` (with ``renamed_from``:
its rows are not in the stream, a snapshot copies them), one renamed out of it a ``drop``.
Table names are read by :func:`meepo_mysql.ddl.table_effects`; the
definition after the statement (columns with the server's ``COLUMN_TYPE``, nullability,
default, primary key) is re-read from ``information_schema``, so a statement whose clauses
this reader does not follow still carries the right definition. A statement whose table
names cannot be read at all (or a table statement it does not know) re-reads every
followed table of its schema and describes those whose definition changed (``describe``).
It never stops the stream.

The definition is the server's when the statement is read: a stream far behind may see a
later one (rows are still decoded by the binlog's own table maps).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from meepo_core import (
    ColumnDefinition,
    SchemaChange,
    SchemaChangeKind,
    TableDefinition,
    TableFilter,
)

from .control_connection import ControlConnection
from .ddl import Unreadable, table_effects, truncated_table

log = logging.getLogger("meepo.mysql")

_DATABASE = re.compile(r"^\s*(CREATE|DROP)\s+(?:DATABASE|SCHEMA)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?"
                       r"`?((?:[^`]|``)+?)`?\s*(?:;|$|\s)", re.IGNORECASE)
_VERSIONED = re.compile(r"^\s*/\*!(?:M!)?\d{5,6}\s(.*)\*/\s*;?\s*$", re.S)
_ON_UPDATE = re.compile(r"\bon update (\S+)", re.IGNORECASE)
_TABLE_DDL = re.compile(r"^\s*(?:CREATE|ALTER|DROP|RENAME)\b", re.IGNORECASE)
_KINDS: dict[str, SchemaChangeKind] = {
    "define": "create", "like": "create", "changed": "alter", "alter": "alter",
    "drop": "drop", "rename": "rename",
}


class SchemaEvents:
    """Turns DDL statements into schema changes for the tables ``table_filter`` follows;
    remembers each followed table's last definition (the ``before`` of its next change)."""

    def __init__(self, control: ControlConnection, table_filter: TableFilter) -> None:
        self.control = control
        self.filter = table_filter
        self._known: dict[tuple[str, str], TableDefinition] = {}

    def changes(self, statement: str, default_schema: str, *, position: Any,
                committed_at: datetime | None, txid: str | None,
                sequence: int | None) -> list[SchemaChange]:
        """The schema changes ``statement`` makes (none for DDL on other tables)."""
        common: dict[str, Any] = {"ddl": statement, "position": position, "txid": txid,
                                  "sequence": sequence}
        if committed_at is not None:
            common["committed_at"] = committed_at
        try:
            return self._changes(statement, default_schema, common)
        except Exception as exc:  # never stop the stream on a statement
            log.warning("schema change of %.200s not read (%s); describing the followed "
                        "tables of %s instead", statement, exc, default_schema)
            return self._describe_schema(default_schema, common)

    def _changes(self, statement: str, default_schema: str,
                 common: dict[str, Any]) -> list[SchemaChange]:
        database = _DATABASE.match(statement)
        if database is not None:
            verb, name = database.group(1).upper(), database.group(2).replace("``", "`")
            if verb == "DROP":
                for key in [k for k in self._known if k[0] == name]:
                    del self._known[key]
            kind: SchemaChangeKind = "create_database" if verb == "CREATE" else "drop_database"
            return [SchemaChange(name, "", kind, **common)]
        if statement.lstrip()[:8].upper() == "TRUNCATE":
            name = truncated_table(statement, default_schema)
            if name is None:
                return self._describe_schema(default_schema, common)
            schema, table = name
            if not self.filter.follows(schema, table):
                return []
            now = self._known.get((schema, table)) or self.read(schema, table)
            return [SchemaChange(schema, table, "truncate", now, now, **common)]
        effects = table_effects(statement, default_schema)
        if isinstance(effects, Unreadable):
            log.warning("table names of %.200s not read (%s); describing the followed tables "
                        "of %s", statement, effects.why, default_schema)
            return self._describe_schema(default_schema, common)
        if effects is None:
            if _TABLE_DDL.match(statement) and re.search(r"\bTABLE\b", statement, re.I):
                return self._describe_schema(default_schema, common)
            return []  # views, indexes by CREATE INDEX, users...: not about table columns
        found: list[SchemaChange] = []
        for effect in effects:
            if effect.kind == "drop_schema":
                found.append(SchemaChange(effect.schema, "", "drop_database", **common))
                continue
            schema, table = effect.schema, effect.table
            if effect.kind == "rename" and effect.to is not None:
                # a rename keeps the columns: the definition moves with the name (the
                # server may already have renamed further, as in a swap through a name)
                new_schema, new_table = effect.to
                before = self._known.pop((schema, table), None)
                follows_old = self.filter.follows(schema, table)
                if not self.filter.follows(new_schema, new_table):
                    if follows_old:  # renamed out of `tables`: gone for the pipeline
                        found.append(SchemaChange(schema, table, "drop", before, None,
                                                  **common))
                    continue
                after = before if before is not None else self.read(new_schema, new_table)
                if after is not None:
                    self._known[(new_schema, new_table)] = after
                found.append(SchemaChange(
                    new_schema, new_table, "rename" if follows_old else "create",
                    before, after, renamed_from=(schema, table), **common))
                continue
            if not self.filter.follows(schema, table):
                continue
            before = self._known.get((schema, table))
            if effect.kind == "drop":
                self._known.pop((schema, table), None)
                found.append(SchemaChange(schema, table, "drop", before, None, **common))
                continue
            after = self.read(schema, table)
            renamed = tuple((old, new) for op, old, new in effect.columns if op == "move")
            found.append(SchemaChange(schema, table, _KINDS.get(effect.kind, "alter"), before,
                                      after, renamed_columns=renamed, **common))
        return found

    def _describe_schema(self, schema: str, common: dict[str, Any]) -> list[SchemaChange]:
        rows = self.control.query(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
            "AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME", schema)
        found = []
        for (table,) in rows:
            if not self.filter.follows(schema, str(table)):
                continue
            before = self._known.get((schema, str(table)))
            after = self.read(schema, str(table))
            if after != before:
                found.append(SchemaChange(schema, str(table), "describe", before, after,
                                          **common))
        return found

    def read(self, schema: str, table: str) -> TableDefinition | None:
        """The table's definition on the server now (None: no such table), remembered."""
        rows = self.control.query(
            "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, CHARACTER_SET_NAME, "
            "COLUMN_COMMENT, EXTRA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
            "AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION", schema, table)
        if not rows:
            self._known.pop((schema, table), None)
            return None
        about = self.control.query(
            "SELECT TABLE_COLLATION, TABLE_COMMENT FROM information_schema.TABLES WHERE "
            "TABLE_SCHEMA = %s AND TABLE_NAME = %s", schema, table)
        collation, table_comment = about[0] if about else (None, None)
        names = [str(r[0]) for r in rows]
        keys = self.control.query(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
            "AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
            schema, table)
        hidden = self.filter.hidden_columns(schema, table, names,
                                            [str(k[0]) for k in keys] or names)
        definition = TableDefinition(
            tuple(ColumnDefinition(str(name), str(kind), nullable == "YES",
                                   None if default in (None, "NULL") else str(default),
                                   charset=str(charset) if charset else None,
                                   comment=str(comment) if comment else None,
                                   auto_increment="auto_increment" in str(extra).lower(),
                                   on_update=_on_update(str(extra)))
                  for name, kind, nullable, default, charset, comment, extra in rows
                  if name not in hidden),
            tuple(str(k[0]) for k in keys),
            # a collation's character set is its name up to the first "_"
            charset=str(collation).split("_", 1)[0] if collation else None,
            comment=str(table_comment) if table_comment else None,
        )
        self._known[(schema, table)] = definition
        return definition


def _on_update(extra: str) -> str | None:
    """The expression of ``on update ...`` in a column's ``EXTRA`` (MariaDB writes
    ``on update current_timestamp()``, MySQL ``DEFAULT_GENERATED on update
    CURRENT_TIMESTAMP``), or None."""
    found = _ON_UPDATE.search(extra)
    return found.group(1) if found else None


def unwrap_versioned(statement: str) -> str:
    """The statement inside a version comment (``/*!40101 ALTER TABLE ... */``, which the
    server runs and logs as written), else ``statement`` itself."""
    found = _VERSIONED.match(statement)
    return found.group(1).strip() if found else statement
