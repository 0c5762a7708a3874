"""Table definitions: what a source knows about the columns of the rows it emits.

A source that knows its tables' column types (the postgres source, from the catalog) hangs
one :class:`TableDefinition` on every :class:`~meepo_core.RowEvent` of a table
(``event.definition``); the same object is shared by every event of one definition, so a
sink can compile per-table work once and find it again by identity (formats that must
state column types, such as Debezium's schema part). Sources that do not know the types
leave ``definition`` as None; sinks must work without it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, eq=False)
class ColumnDefinition:
    """One column. ``type`` is the source's type name without modifiers, as its catalog
    spells it (PostgreSQL's ``format_type``: ``"numeric"``, ``"time without time zone"``,
    ``"character varying"``, ``"inv.mood"``, ``"integer[]"``); ``element`` is an array's
    element type. ``length`` is a character or bit string's declared length, ``precision``
    and ``scale`` a decimal's, or ``precision`` the fractional second digits of a time
    type (None: not declared). ``enum_values`` are an enum's labels in their order."""

    name: str
    type: str
    nullable: bool = True
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    enum_values: tuple[str, ...] = ()
    element: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class TableDefinition:
    """One table's definition at the time of the event. ``dialect`` names the source's
    type system (``"postgresql"``, ``"mysql"``); ``database`` the database it is in;
    ``key`` the key columns in key order (empty: the table has no key);
    ``replica_identity`` PostgreSQL's setting (``"default"``, ``"full"``, ``"index"``,
    ``"nothing"``; empty elsewhere). Compared by identity: one object per definition."""

    dialect: str
    database: str
    schema: str
    table: str
    columns: tuple[ColumnDefinition, ...]
    key: tuple[str, ...] = ()
    replica_identity: str = ""
