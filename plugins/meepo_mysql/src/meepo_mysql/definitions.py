"""The :class:`~meepo_core.TableDefinition` hung on every event of a table (stream and
snapshot), read from the server's ``information_schema`` once per table definition.

Each column's ``type`` is the server's ``COLUMN_TYPE`` in lower case (``int(11)``,
``bigint(20) unsigned``, ``decimal(10,2)``, ``datetime(3)``, ``enum('s','m')``; a MariaDB
JSON column, which MariaDB stores and shows as ``longtext``, is ``json``); ``default`` the
server's ``COLUMN_DEFAULT`` text (MariaDB quotes string literals: ``'abc'``); ``length`` a
string's character length or a BIT's bit count; ``precision``/``scale`` a DECIMAL's;
``precision`` a temporal type's fractional digits; ``enum_values`` an ENUM's or SET's
members. The definition's ``dialect`` is ``"mariadb"`` on MariaDB (whose type system
differs: JSON is LONGTEXT; INET4, INET6 and UUID exist), else ``"mysql"``. Formats that
must state column types (Debezium's schema part) compile their per-table work from it.

The snapshot reads the definition from ``information_schema`` (:func:`read_definition`).
The stream builds it from the table map, which describes the table exactly as of the event
however far behind the stream is (:func:`map_definition`: the same type spellings, without
display widths), and takes the columns' defaults from ``information_schema`` only while the
server's columns are still those of the map.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection

import pymysql

from meepo_core import ColumnDefinition, TableDefinition

from . import charsets
from . import tablemap as tm
from .control_connection import ControlConnection
from .server_errors import error_text

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
    for attempt in (1, 2):  # a failed information_schema read is worth one more try
        try:
            rows = control.query(
                "SELECT COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, IS_NULLABLE, COLUMN_DEFAULT, "
                "CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, "
                "DATETIME_PRECISION FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
                "AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION", schema, table)
            keys = control.query(
                "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE "
                "TABLE_SCHEMA = %s AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY' "
                "ORDER BY SEQ_IN_INDEX", schema, table)
            mariadb = control.flavor == "mariadb"
            extended = control.mariadb_extended_types(schema, table) if mariadb else {}
            break
        except pymysql.err.MySQLError as exc:
            if attempt == 2:
                log.warning("cannot read the column definitions of %s.%s from "
                            "information_schema (%s): its snapshot reads carry none, its "
                            "streamed events no column defaults", schema, table,
                            error_text(exc))
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
        if extended.get(str(name)) == "json":
            spelled = "json"
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
    return TableDefinition(tuple(columns), tuple(str(k[0]) for k in keys),
                           dialect="mariadb" if mariadb else "mysql",
                           database=schema, schema=schema, table=table)


_INTEGERS = {tm.TINY: "tinyint", tm.SHORT: "smallint", tm.INT24: "mediumint",
             tm.LONG: "int", tm.LONGLONG: "bigint"}
_TEMPORAL_NAMES = {tm.TIME2: "time", tm.TIME: "time", tm.DATETIME2: "datetime",
                   tm.DATETIME: "datetime", tm.TIMESTAMP2: "timestamp",
                   tm.TIMESTAMP: "timestamp"}
_BLOBS = {tm.TINY_BLOB: "tiny", tm.MEDIUM_BLOB: "medium", tm.LONG_BLOB: "long", tm.BLOB: ""}
_BLOB_SIZES = {1: "tiny", 2: "", 3: "medium", 4: "long"}
_GEOMETRY_NAMES = {1: "point", 2: "linestring", 3: "polygon", 4: "multipoint",
                   5: "multilinestring", 6: "multipolygon", 7: "geometrycollection"}


def _map_type(column: tm.Column, extended: str | None) -> tuple[str, dict[str, int]]:
    """(type spelling, length/precision/scale) of a table-map column."""
    kind, meta = column.type, column.meta
    binary = column.collation in (None, tm.BINARY_COLLATION)
    unsigned = " unsigned" if column.unsigned else ""
    if kind in _INTEGERS:
        return _INTEGERS[kind] + unsigned, {}
    if kind == tm.NEWDECIMAL and isinstance(meta, tuple):
        return f"decimal({meta[0]},{meta[1]}){unsigned}", {"precision": meta[0],
                                                           "scale": meta[1]}
    if kind in _TEMPORAL_NAMES:
        digits = int(meta) if isinstance(meta, int) and kind in (
            tm.TIME2, tm.DATETIME2, tm.TIMESTAMP2) else 0
        name = _TEMPORAL_NAMES[kind]
        return (f"{name}({digits})" if digits else name), {"precision": digits}
    if kind == tm.BIT and isinstance(meta, int):
        return f"bit({meta})", {"length": meta}
    if extended in ("json", "inet4", "inet6", "uuid"):
        return extended, {}
    simple = {tm.FLOAT: "float", tm.DOUBLE: "double", tm.YEAR: "year", tm.DATE: "date",
              tm.NEWDATE: "date", tm.JSON: "json", tm.ENUM: "enum", tm.SET: "set"}
    if kind in simple:
        return simple[kind], {}
    if kind in (tm.VARCHAR, tm.VAR_STRING):
        return ("varbinary" if binary else "varchar"), {}
    if kind == tm.STRING:
        return ("binary" if binary else "char"), {}
    if kind in _BLOBS:
        size = _BLOB_SIZES.get(int(meta), "") if isinstance(meta, int) else _BLOBS[kind]
        return size + ("blob" if binary else "text"), {}
    if kind == tm.GEOMETRY:
        return _GEOMETRY_NAMES.get(column.geometry, "geometry"), {}
    return f"binlog type {kind}", {}


def map_definition(mapped: tm.TableMap, hidden: Collection[str], extended: dict[str, str],
                   charset_of: dict[int, str], mariadb: bool,
                   server: TableDefinition | None = None) -> TableDefinition:
    """The definition a table map describes, without ``hidden`` columns; ``extended``:
    MariaDB's JSON, INET and UUID columns as of the event; ``server``: the definition on
    the server now, whose defaults are taken when its columns are those of the map."""
    columns = []
    for column in mapped.columns:
        if column.name in hidden:
            continue
        spelled, sizes = _map_type(column, extended.get(column.name))
        members: tuple[str, ...] = ()
        if column.members:
            charset = charset_of.get(column.collation or 0, "utf8mb4")
            decode = charsets.decoder(charset) or (lambda raw: raw.decode("utf-8"))
            members = tuple(decode(member) for member in column.members)
        columns.append(ColumnDefinition(
            column.name, spelled, column.nullable, length=sizes.get("length"),
            precision=sizes.get("precision"), scale=sizes.get("scale"), enum_values=members))
    names = tuple(c.name for c in columns)
    if server is not None and server.names == names:
        columns = [ColumnDefinition(c.name, c.type, c.nullable, found.default, c.length,
                                    c.precision, c.scale, c.enum_values)
                   for c, found in zip(columns, server.columns, strict=True)]
    return TableDefinition(tuple(columns), tuple(mapped.names[i] for i in mapped.primary_key),
                           dialect="mariadb" if mariadb else "mysql", database=mapped.schema,
                           schema=mapped.schema, table=mapped.table)
