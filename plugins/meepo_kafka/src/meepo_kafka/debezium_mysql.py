"""Debezium's MySQL type mapping and ``source`` block, for events of the ``mysql`` source
(their definition's dialect is ``"mysql"`` or ``"mariadb"``).

The mapping is that of Debezium's MySQL connector (3.6.3) with its defaults
(``decimal.handling.mode=precise``, ``time.precision.mode=adaptive_time_microseconds``,
``bigint.unsigned.handling.mode=long``, ``binary.handling.mode=bytes``) and the other
modes, checked against Debezium itself (``tests/golden/mysql_*.jsonl``). Each function
here runs once per table definition; the converters it returns run per value.

Differences that cannot be removed (listed in the README's type table):

* MariaDB's JSON is LONGTEXT with a check: Debezium writes the stored text, meepo's
  mysql source parses it, so meepo writes the same JSON value re-serialised (whitespace
  and number spelling may differ);
* a column default that is an expression (``CURRENT_TIMESTAMP``, ``uuid()``) has no
  ``default`` in meepo's schema; Debezium's DDL parser evaluates some of them.
"""

from __future__ import annotations

import base64
import re
import struct
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from meepo_core import ColumnDefinition, RowEvent, dumps_exact

from .debezium_snapshot import snapshot_marker
from .debezium_types import (
    _BINARY_TEXT,
    DEFAULT_MODES,
    SOURCE_COMMON_FIELDS,
    Convert,
    FieldCodec,
    Modes,
    UnsupportedType,
    _base64,
    _days,
    _decimal_at,
    _schema,
    _time_micros,
    _timestamp_micros,
    _timestamp_millis,
    _unscaled_bytes,
    _zoned_timestamp,
    java_double,
)
from .java_json import jdk17_float

#: ``source`` of Debezium's MySQL connector (io.debezium.connector.mysql.Source).
MYSQL_SOURCE_SCHEMA: dict[str, Any] = {
    "type": "struct", "fields": [
        *SOURCE_COMMON_FIELDS,
        {"type": "string", "optional": True, "field": "table"},
        {"type": "int64", "optional": False, "field": "server_id"},
        {"type": "string", "optional": True, "field": "gtid"},
        {"type": "string", "optional": False, "field": "file"},
        {"type": "int64", "optional": False, "field": "pos"},
        {"type": "int32", "optional": False, "field": "row"},
        {"type": "int64", "optional": True, "field": "thread"},
        {"type": "string", "optional": True, "field": "query"},
    ],
    "optional": False, "name": "io.debezium.connector.mysql.Source", "version": 1,
    "field": "source",
}

_INTEGERS = {  # (signed, unsigned) Connect types, as Debezium widens unsigned ones
    "tinyint": ("int16", "int16"), "smallint": ("int16", "int32"),
    "mediumint": ("int32", "int32"), "int": ("int32", "int64"),
    "integer": ("int32", "int64"), "bigint": ("int64", "int64"),
}
_TEXT = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "inet4", "inet6",
         "uuid"}
_BINARY = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
_GEOMETRIES = {"geometry", "linestring", "polygon", "multipoint", "multilinestring",
               "multipolygon", "geometrycollection", "geomcollection"}
_WORD = re.compile(r"[a-z0-9_]+")
_MILLIS_PER_DAY = 86_400_000


def base_kind(column: ColumnDefinition) -> str:
    """``bigint`` for ``bigint(20) unsigned``, ``enum`` for ``enum('a','b')``."""
    found = _WORD.match(column.type.lower())
    return found.group(0) if found else column.type.lower()


def mysql_field_codec(column: ColumnDefinition, *, key: bool = False,
                      modes: Modes = DEFAULT_MODES, mariadb: bool = True) -> FieldCodec:
    """How Debezium's MySQL connector declares and writes ``column``."""
    optional = column.nullable and not key
    schema, convert = _mapping(column, optional, modes, mariadb)
    default = _default(column, convert)
    if default is not _NO_DEFAULT:
        schema["default"] = default
    return FieldCodec(column.name, schema, convert, None, None)


def _mapping(column: ColumnDefinition, optional: bool, modes: Modes,
             mariadb: bool) -> tuple[dict[str, Any], Convert | None]:
    kind = base_kind(column)
    unsigned = "unsigned" in column.type.lower()
    if kind in _INTEGERS:
        if kind == "bigint" and unsigned:
            if modes.bigint_unsigned == "precise":
                return (_schema("bytes", optional, "org.apache.kafka.connect.data.Decimal",
                                parameters={"scale": "0",
                                            "connect.decimal.precision": "20"}),
                        lambda v: _unscaled_bytes(int(v)))
            return _schema("int64", optional), _wrap_unsigned
        return _schema(_INTEGERS[kind][unsigned], optional), None
    if kind in ("decimal", "numeric", "dec", "fixed"):
        if modes.decimal == "double":
            return _schema("double", optional), lambda v: java_double(float(v))
        if modes.decimal == "string":
            return _schema("string", optional), str
        scale = column.scale or 0
        return (_schema("bytes", optional, "org.apache.kafka.connect.data.Decimal",
                        parameters={"scale": str(scale),
                                    "connect.decimal.precision": str(column.precision)}),
                _decimal_at(scale))
    if kind == "float":
        return _schema("float", optional), jdk17_float
    if kind in ("double", "real"):
        return _schema("double", optional), java_double
    if kind == "bit":
        length = column.length or 1
        if length == 1:
            return _schema("boolean", optional), bool
        size = (length + 7) // 8
        return (_schema("bytes", optional, "io.debezium.data.Bits",
                        parameters={"length": str(length)}),
                lambda v: base64.b64encode(int(v).to_bytes(size, "little")).decode("ascii"))
    if kind == "date":
        name = ("org.apache.kafka.connect.data.Date" if modes.time == "connect"
                else "io.debezium.time.Date")
        return _schema("int32", optional, name), _days
    if kind == "time":
        if modes.time == "connect":
            return _schema("int32", optional, "org.apache.kafka.connect.data.Time"), \
                _connect_time
        return _schema("int64", optional, "io.debezium.time.MicroTime"), _time_micros
    if kind == "datetime":
        if modes.time == "connect":
            return (_schema("int64", optional, "org.apache.kafka.connect.data.Timestamp"),
                    _timestamp_millis)
        if (column.precision or 0) <= 3:
            return _schema("int64", optional, "io.debezium.time.Timestamp"), _timestamp_millis
        return (_schema("int64", optional, "io.debezium.time.MicroTimestamp"),
                _timestamp_micros)
    if kind == "timestamp":
        return (_schema("string", optional, "io.debezium.time.ZonedTimestamp"),
                _zoned_timestamp(column.precision or 0))
    if kind == "year":
        return _schema("int32", optional, "io.debezium.time.Year"), None
    if kind == "json":
        if mariadb:  # Debezium sees MariaDB's LONGTEXT: a plain string
            return _schema("string", optional), _json_text
        return _schema("string", optional, "io.debezium.data.Json"), _json_text
    if kind in _TEXT:
        return _schema("string", optional), None
    if kind in _BINARY:
        if modes.binary != "bytes":
            return _schema("string", optional), _BINARY_TEXT[modes.binary]
        return _schema("bytes", optional), _base64
    if kind == "enum":
        return (_schema("string", optional, "io.debezium.data.Enum",
                        parameters={"allowed": ",".join(column.enum_values)}), None)
    if kind == "set":
        order = {member: index for index, member in enumerate(column.enum_values)}
        return (_schema("string", optional, "io.debezium.data.EnumSet",
                        parameters={"allowed": ",".join(column.enum_values)}),
                lambda v: v if isinstance(v, str)
                else ",".join(sorted(v, key=lambda m: order.get(m, len(order)))))
    if kind == "point":
        return (_schema("struct", optional, "io.debezium.data.geometry.Point",
                        doc="Geometry (POINT)",
                        fields=[{"type": "double", "optional": False, "field": "x"},
                                {"type": "double", "optional": False, "field": "y"},
                                {"type": "bytes", "optional": True, "field": "wkb"},
                                {"type": "int32", "optional": True, "field": "srid"}]),
                _point)
    if kind in _GEOMETRIES:
        return (_schema("struct", optional, "io.debezium.data.geometry.Geometry",
                        doc="Geometry",
                        fields=[{"type": "bytes", "optional": False, "field": "wkb"},
                                {"type": "int32", "optional": True, "field": "srid"}]),
                _geometry)
    raise UnsupportedType(f"column {column.name!r} has type {column.type!r}, which meepo's "
                          "Debezium format does not encode")


def _wrap_unsigned(value: Any) -> int:
    """bigint.unsigned.handling.mode=long: the unsigned value's bits as a signed long."""
    number = int(value)
    return number - (1 << 64) if number >= 1 << 63 else number


def _connect_time(value: Any) -> int | None:
    """Kafka Connect's Time holds a time of day: a TIME outside [0, 24h) is null."""
    millis = _time_micros(value) // 1000
    return millis if 0 <= millis < _MILLIS_PER_DAY else None


def _json_text(value: Any) -> str:
    """A JSON value as MariaDB and MySQL print JSON: ``", "`` and ``": "`` separators,
    numbers as written (:class:`meepo_core.JsonNumber`)."""
    return dumps_exact(value)


def _geometry_parts(value: Any) -> tuple[bytes, int | None]:
    """(WKB, SRID or None for 0) of MySQL's stored geometry: 4 bytes of SRID, then WKB."""
    raw = bytes(value)
    srid = int.from_bytes(raw[:4], "little")
    return raw[4:], srid or None


def _geometry(value: Any) -> dict[str, Any]:
    wkb, srid = _geometry_parts(value)
    return {"wkb": base64.b64encode(wkb).decode("ascii"), "srid": srid}


def _point(value: Any) -> dict[str, Any]:
    wkb, srid = _geometry_parts(value)
    order = "<" if wkb[0] == 1 else ">"
    x, y = struct.unpack(f"{order}dd", wkb[5:21])
    return {"x": java_double(x), "y": java_double(y),
            "wkb": base64.b64encode(wkb).decode("ascii"), "srid": srid}


_NO_DEFAULT = object()


def _default(column: ColumnDefinition, convert: Convert | None) -> Any:
    """The schema's ``default``: the column's literal default in Debezium's encoding;
    none for no default, NULL, or an expression meepo does not evaluate."""
    text = column.default
    if text is None:
        return _NO_DEFAULT
    if len(text) >= 2 and text[0] == "'" and text[-1] == "'":
        literal: Any = text[1:-1].replace("''", "'")
    else:
        literal = text
    kind = base_kind(column)
    try:
        if kind in _INTEGERS or kind == "year":
            literal = int(literal)
        elif kind in ("decimal", "numeric", "dec", "fixed"):
            literal = Decimal(literal)
        elif kind in ("float", "double", "real"):
            literal = float(literal)
        elif kind not in _TEXT and kind not in ("enum",):
            return _NO_DEFAULT  # dates, times, bits, binaries: not evaluated here
    except (ValueError, InvalidOperation):
        return _NO_DEFAULT
    return literal if convert is None else convert(literal)


def default_left_out(column: ColumnDefinition, modes: Modes = DEFAULT_MODES) -> bool:
    """Whether ``column`` has a default that meepo leaves out of the schema (Debezium
    writes its evaluated value)."""
    if column.default is None:
        return False
    return _default(column, _mapping(column, False, modes, True)[1]) is _NO_DEFAULT


def mysql_source(event: RowEvent, version: str, server_name: str, database: str,
                 table: str) -> dict[str, Any]:
    """The ``source`` block of a mysql source's event, as Debezium's MySQL connector
    fills it; ``row`` is set by the codec, ``thread`` (the connection that made the change)
    meepo's events do not carry: null."""
    position = event.position if isinstance(event.position, dict) else {}
    file, pos = position.get("file", ""), position.get("pos", 0)
    if event.action == "read":
        micros = datetime.now(UTC).timestamp()
        ms = int(micros * 1000)
        return {"version": version, "connector": "mysql", "name": server_name, "ts_ms": ms,
                "snapshot": snapshot_marker(event), "db": database, "sequence": None,
                "ts_us": ms * 1000,
                "ts_ns": ms * 1_000_000, "table": table, "server_id": 0, "gtid": None,
                "file": file or "", "pos": pos or 0, "row": 0, "thread": None,
                "query": None}
    ms = int(event.committed_at.timestamp()) * 1000  # the binlog keeps whole seconds
    gtid = event.txid if event.txid and _MARIADB_GTID.match(event.txid) else None
    return {"version": version, "connector": "mysql", "name": server_name, "ts_ms": ms,
            "snapshot": "false", "db": database, "sequence": None, "ts_us": ms * 1000,
            "ts_ns": ms * 1_000_000, "table": table,
            "server_id": int(gtid.split("-")[1]) if gtid else 0, "gtid": gtid,
            "file": file, "pos": pos, "row": 0, "thread": None, "query": None}


_MARIADB_GTID = re.compile(r"^\d+-\d+-\d+$")
