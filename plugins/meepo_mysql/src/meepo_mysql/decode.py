"""From a table-map event to a :class:`TablePlan`, and from decoded rows to row images.

python-mysql-replication decodes column values; a plan, built once per table definition,
fixes what it leaves raw or wrong and hides filtered columns:

* TIMESTAMP values become UTC-aware datetimes (the library returns naive UTC);
* BIT values become ints (the library returns a string of ``0``/``1``);
* an empty SET becomes ``set()`` (the library returns None, as for NULL);
* BINARY(n) values get back the trailing zero bytes the binlog leaves out;
* JSON becomes Python objects: MySQL's binary JSON has its bytes keys and strings
  decoded; MariaDB stores JSON as LONGTEXT with a ``json_valid`` check, so the columns
  carrying that check (looked up once per table definition) are parsed with ``json``;
* negative fractional TIME values are decoded correctly (see :func:`_read_time2`).

The primary key comes from the table map's SIMPLE_PRIMARY_KEY / PRIMARY_KEY_WITH_PREFIX
metadata (``binlog_row_metadata=FULL``), in key order, not column order.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pymysqlreplication.row_event as row_event_module
from pymysqlreplication.constants import FIELD_TYPE, NONE_SOURCE
from pymysqlreplication.row_event import RowsEvent

from . import tablemaps

#: Set to 1 to run python-mysql-replication's own (slower) helpers, e.g. to benchmark them.
NO_SPEEDUPS_ENV = "MEEPO_MYSQL_NO_SPEEDUPS"

Converter = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class TablePlan:
    """How rows of one table definition become events."""

    schema: str
    table: str
    columns: tuple[str, ...]
    pk: tuple[str, ...]  # key order; empty when the table has no primary key
    hidden: frozenset[str]
    converters: tuple[tuple[str, Converter], ...]
    empty_sets: tuple[str, ...]
    #: True when rows need no fixing or hiding and the key is one column (``key``).
    plain: bool = False
    key: str | None = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"

    def image(self, values: dict[str, Any], none_sources: dict[str, str]) -> dict[str, Any]:
        """Fix the library's values in place (hidden columns still present)."""
        for name, convert in self.converters:
            value = values.get(name)
            if value is not None:
                values[name] = convert(value)
        for name in self.empty_sets:
            if values.get(name) is None and none_sources.get(name) == NONE_SOURCE.EMPTY_SET:
                values[name] = set()
        return values


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


def _bits(value: str) -> int:
    return int(value, 2)


class _PadBinary:
    """BINARY(n) is stored in the binlog without its trailing ``\\0`` padding."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __call__(self, value: Any) -> Any:
        return value.ljust(self.length, b"\0") if isinstance(value, bytes) else value


def _mariadb_json(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    try:
        return json.loads(value)
    except ValueError:
        return value  # not valid JSON after all (the check was added later): keep the text


def mysql_json(value: Any) -> Any:
    """MySQL binary JSON as the library returns it, with bytes keys and strings decoded."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    if isinstance(value, dict):
        return {
            (k.decode("utf-8", "surrogateescape") if isinstance(k, bytes) else k): mysql_json(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mysql_json(item) for item in value]
    return value


def primary_key_indexes(event: Any) -> list[int]:
    """Column indexes of the primary key, in key order, from a TableMapEvent."""
    metadata = event.optional_metadata
    simple = list(metadata.simple_primary_key_list or [])
    if simple:
        return simple
    return list((metadata.primary_keys_with_prefix or {}).keys())


def build_plan(
    event: Any, hidden: Collection[str], json_columns: Collection[str], flavor: str
) -> TablePlan:
    """A plan for the table described by a TableMapEvent."""
    columns = event.columns
    names = tuple(column.name for column in columns)
    converters: list[tuple[str, Converter]] = []
    empty_sets: list[str] = []
    for column in columns:
        kind = column.type
        if kind in (FIELD_TYPE.TIMESTAMP, FIELD_TYPE.TIMESTAMP2):
            converters.append((column.name, _utc))
        elif kind == FIELD_TYPE.BIT:
            converters.append((column.name, _bits))
        elif kind == FIELD_TYPE.JSON:
            converters.append((column.name, mysql_json))
        elif kind == FIELD_TYPE.SET:
            empty_sets.append(column.name)
        elif kind == FIELD_TYPE.STRING and column.character_set_name == "binary":
            converters.append((column.name, _PadBinary(column.max_length)))
        elif flavor == "mariadb" and column.name in json_columns:
            converters.append((column.name, _mariadb_json))
    pk = tuple(names[index] for index in primary_key_indexes(event) if index < len(names))
    plain = not converters and not empty_sets and not hidden and len(pk) == 1
    return TablePlan(
        schema=event.schema, table=event.table, columns=names, pk=pk,
        hidden=frozenset(hidden), converters=tuple(converters), empty_sets=tuple(empty_sets),
        plain=plain, key=pk[0] if len(pk) == 1 else None,
    )


def _read_time2(self: Any, column: Any) -> timedelta:
    """TIME(fsp) as MySQL packs it (``my_time_packed_from_binary``).

    The integer part and the fraction together form one signed number, so a negative
    value with a fraction borrows one second; python-mysql-replication 1.0 negates the
    two parts separately and gets ``-12:34:56.78`` wrong by up to a second.
    """
    fsp = column.fsp or 0
    size = 3 + (fsp + 1) // 2
    data = self.packet.read(size)
    if fsp >= 5:
        packed = int.from_bytes(data, "big") - 0x800000000000
    else:
        intpart = int.from_bytes(data[:3], "big") - 0x800000
        frac = 0
        if fsp:
            scale = 10000 if fsp <= 2 else 100
            width = 1 if fsp <= 2 else 2
            frac = int.from_bytes(data[3:], "big")
            if intpart < 0 and frac:
                intpart += 1
                frac -= 1 << (8 * width)
            frac *= scale
        packed = (intpart << 24) + frac
    negative = packed < 0
    packed = -packed if negative else packed
    hms, micro = packed >> 24, packed & 0xFFFFFF
    value = timedelta(
        hours=(hms >> 12) & 0x3FF, minutes=(hms >> 6) & 0x3F, seconds=hms & 0x3F,
        microseconds=micro,
    )
    return -value if negative else value


def _bit_get(bitmap: bytes, position: int) -> int:
    return bitmap[position >> 3] & (1 << (position & 7))


@functools.cache
def _charset_to_encoding(name: str) -> str:
    return _original_charset_to_encoding(name)  # type: ignore[no-any-return]


_original_charset_to_encoding = RowsEvent.charset_to_encoding


def install_fixes() -> None:
    """Patch python-mysql-replication (idempotent; called when a stream starts).

    Correctness: the TIME decoder (see :func:`_read_time2`). Speed, unless
    ``$MEEPO_MYSQL_NO_SPEEDUPS`` is set: the per-column bit tests and the per-value charset
    lookup are replaced by equivalent cheaper functions (the row decoder calls them
    several times per column), and each distinct table map is parsed once
    (:mod:`meepo_mysql.tablemaps`). (The runner's ``gc.freeze()`` at start is the other ~15%.)
    """
    RowsEvent._RowsEvent__read_time2 = _read_time2
    if os.environ.get(NO_SPEEDUPS_ENV, "").strip() in ("", "0"):
        row_event_module.BitGet = _bit_get
        RowsEvent._is_null = staticmethod(_bit_get)
        RowsEvent.charset_to_encoding = staticmethod(_charset_to_encoding)
        tablemaps.install()
