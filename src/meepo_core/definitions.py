"""Table definitions: what a source knows about a table's columns and key.

One model serves two uses:

* a :class:`~meepo_core.schema_changes.SchemaChange` states a table's definition before and
  after the change, so sinks that follow schema changes can make their copy match it;
* a source that knows its tables' column types (the postgres source, from the catalog)
  hangs one :class:`TableDefinition` on every :class:`~meepo_core.RowEvent` of a table
  (``event.definition``). The same object is shared by every event of one definition, so a
  sink can compile per-table work once and find it again by identity (formats that must
  state column types, such as Debezium's schema part). Sources that do not know the types
  leave ``definition`` as None; sinks must work without it.

Fields a source does not know stay at their defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: A type modifier: ``(20)``, ``(10,2)``, ``(3)`` in ``time(3) without time zone``.
_MODIFIER = re.compile(r"\s*\(\s*-?\d+\s*(?:,\s*-?\d+\s*)?\)")


@dataclass(frozen=True, slots=True)
class ColumnDefinition:
    """One column. ``type`` is the source's own spelling of the type (``varchar(20)``,
    ``numeric(10,2)``, ``integer``, ``time without time zone``); ``default`` the default
    expression as source text, ``None`` without one. Where a source knows them:
    ``length`` is a character or bit string's declared length, ``precision`` and
    ``scale`` a decimal's, or ``precision`` the fractional second digits of a time type;
    ``enum_values`` are an enum's labels in their order; ``element`` an array's element
    type; ``charset`` a character column's character set; ``comment`` the column's
    comment; ``auto_increment`` whether the server numbers new rows in it (MySQL's
    ``AUTO_INCREMENT``); ``on_update`` the expression the server sets it to on every update
    (MySQL's ``ON UPDATE CURRENT_TIMESTAMP``)."""

    name: str
    type: str
    nullable: bool = True
    default: str | None = None
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    enum_values: tuple[str, ...] = ()
    element: str | None = None
    charset: str | None = None
    comment: str | None = None
    auto_increment: bool = False
    on_update: str | None = None

    @property
    def base_type(self) -> str:
        """``type`` without its modifiers: ``numeric`` for ``numeric(10,2)``, ``time with
        time zone`` for ``time(3) with time zone``."""
        if "(" not in self.type:
            return self.type
        return " ".join(_MODIFIER.sub("", self.type).split())


@dataclass(frozen=True, slots=True)
class TableDefinition:
    """A table's columns in table order and its key columns in key order (empty: no
    primary key, rows are keyed by their whole image). Where the source knows them:
    ``dialect`` names its type system (``"postgresql"``, ``"mysql"``), ``database``,
    ``schema`` and ``table`` where the table is, ``replica_identity`` PostgreSQL's
    setting (``"default"``, ``"full"``, ``"index"``, ``"nothing"``), ``charset`` the
    table's default character set and ``comment`` its comment (MySQL's)."""

    columns: tuple[ColumnDefinition, ...]
    key_columns: tuple[str, ...] = ()
    dialect: str = ""
    database: str = ""
    schema: str = ""
    table: str = ""
    replica_identity: str = ""
    charset: str | None = None
    comment: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def column(self, name: str) -> ColumnDefinition | None:
        for column in self.columns:
            if column.name == name:
                return column
        return None
