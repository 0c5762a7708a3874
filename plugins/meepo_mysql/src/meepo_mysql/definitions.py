"""The :class:`~meepo_core.TableDefinition` hung on every event of a table (stream and
snapshot), read from the server's ``information_schema`` once per table definition.

Each column's ``type`` is the server's ``COLUMN_TYPE`` in lower case (``int(11)``,
``bigint(20) unsigned``, ``decimal(10,2)``, ``datetime(3)``, ``enum('s','m')``; MariaDB's
JSON is ``longtext``, as MariaDB itself says), ``default`` the server's ``COLUMN_DEFAULT``
text (MariaDB quotes string literals: ``'abc'``), ``length`` a string's character length or
a BIT's bit count, ``precision``/``scale`` a DECIMAL's, ``precision`` a temporal type's
fractional digits, ``enum_values`` an ENUM's or SET's members. Formats that must state
column types (Debezium's schema part) compile their per-table work from it.

The stream reads the definition when it first meets a table map and checks it against the
map's column names: a stream behind a schema change (the server's columns are no longer
those of the event) gets no definition rather than a wrong one (``None``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Sequence

import pymysql

from meepo_core import ColumnDefinition, TableDefinition

from .server import ControlConnection, error_text

log = logging.getLogger("meepo.mysql")

_MEMBER = re.compile(r"'((?:[^']|'')*)'")
_TEMPORAL = {"time", "datetime", "timestamp"}


def _members(column_type: str) -> tuple[str, ...]:
    """The members of ``enum('a','b')`` / ``set('a','b')`` in order."""
    inner = column_type[column_type.index("(") + 1:column_type.rindex(")")]
    return tuple(m.replace("''", "'") for m in _MEMBER.findall(inner))


def _int(value: object) -> int | None:
    return None if value is None else int(str(value))


def read_definition(control: ControlConnection, schema: str, table: str,
                    hidden: Collection[str] = ()) -> TableDefinition | None:
    """The definition of ``schema.table`` on the server now, without ``hidden`` columns;
    None when the table is gone or cannot be read (said once in the log)."""
    try:
        rows = control.query(
            "SELECT COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, IS_NULLABLE, COLUMN_DEFAULT, "
            "CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
            "ORDER BY ORDINAL_POSITION", schema, table)
        keys = control.query(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
            "AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
            schema, table)
    except pymysql.err.MySQLError as exc:
        log.warning("cannot read the column definitions of %s.%s (%s): its events carry "
                    "none", schema, table, error_text(exc))
        return None
    if not rows:
        return None
    columns = []
    for (name, column_type, data_type, nullable, default, length, precision, scale,
         fraction) in rows:
        if str(name) in hidden:
            continue
        kind = str(data_type).lower()
        spelled = str(column_type).lower()
        if kind == "bit":
            length, precision = precision, None
        elif kind in _TEMPORAL:
            precision, scale = fraction, None
        columns.append(ColumnDefinition(
            str(name), spelled, nullable == "YES",
            None if default is None or str(default) == "NULL" else str(default),
            length=_int(length) if kind not in ("decimal",) else None,
            precision=_int(precision) if kind in ("decimal", "bit") or kind in _TEMPORAL
            else None,
            scale=_int(scale) if kind == "decimal" else None,
            enum_values=_members(spelled) if kind in ("enum", "set") else (),
        ))
    return TableDefinition(tuple(columns), tuple(str(k[0]) for k in keys), dialect="mysql",
                           database=schema, schema=schema, table=table)


def matches(definition: TableDefinition | None, names: Sequence[str]) -> bool:
    """Whether ``definition`` has exactly the columns ``names`` (a table map's visible
    columns, in order)."""
    return definition is not None and definition.names == tuple(names)
