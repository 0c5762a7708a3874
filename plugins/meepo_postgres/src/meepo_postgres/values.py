"""From pgoutput's text values to Python values, chosen by the column's type OID.

The replication connection fixes the server's output formats (``DateStyle=ISO``,
``IntervalStyle=iso_8601``, ``TimeZone=UTC``, ``bytea_output=hex``,
``extra_float_digits=3``, see :mod:`meepo_postgres.connections`), so each text form is
known. The Python types are those ``SELECT`` gives through psycopg:

* integers -> ``int``; ``numeric`` -> ``Decimal`` (``NaN`` and infinities included);
  ``real``/``double precision`` -> ``float`` (``nan``, ``inf`` included); ``bool``;
* ``text``, ``varchar``, ``char(n)`` (padded, as stored), ``name``, ``xml``, enums and
  other string-like types -> ``str``; ``bytea`` -> ``bytes``;
* ``date``, ``time``, ``timestamp`` -> ``date``, ``time``, naive ``datetime``;
  ``timetz`` -> ``time`` with its fixed offset; ``timestamptz`` -> UTC-aware ``datetime``;
* ``interval`` -> ``timedelta`` when it has no months or years (a month has no fixed
  length), else its ISO 8601 text (``P1Y2M3DT4H``);
* ``json``/``jsonb`` -> parsed objects, numbers a float cannot hold as written kept with
  their text (:class:`meepo_core.JsonNumber`: ``1.10``, ``1e400``); a value nested deeper
  than Python can decode raises :class:`ValueTooDeep` (the stream dead-letters that row);
* ``uuid``, ``inet`` and ``cidr`` -> ``str`` as the
  server prints them (as the mysql source gives MariaDB's UUID, INET4 and INET6, so every
  sink and serializer takes them as they are);
* arrays of any of these -> (nested) lists; domains -> their base type.

Values Python cannot hold (``infinity`` dates and timestamps, dates BC or past year 9999,
``24:00:00``) arrive as the server's text. Types meepo does not know arrive as text too,
with one warning per type (see :mod:`meepo_postgres.catalog`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from meepo_core import loads_exact

Converter = Callable[[str], Any]


def to_bool(text: str) -> bool:
    return text == "t"


def to_bytes(text: str) -> bytes:
    return bytes.fromhex(text[2:])  # bytea_output = hex: "\x00ff"


def to_date(text: str) -> date | str:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return text  # infinity, -infinity, BC, years past 9999


def to_time(text: str) -> time | str:
    try:
        return time.fromisoformat(text)
    except ValueError:
        return text  # 24:00:00


def to_timetz(text: str) -> time | str:
    try:
        return time.fromisoformat(text)
    except ValueError:
        return text


def to_timestamp(text: str) -> datetime | str:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return text


def to_timestamptz(text: str) -> datetime | str:
    # TimeZone = UTC: every value ends in "+00", which gives tzinfo=datetime.UTC.
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return text


_INTERVAL = re.compile(
    r"^P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)D)?"
    r"(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?)(\d+)(?:\.(\d+))?S)?)?$"
)


def to_interval(text: str) -> timedelta | str:
    """ISO 8601 interval text (IntervalStyle = iso_8601) -> timedelta, when exact."""
    match = _INTERVAL.match(text)
    if match is None:
        return text
    years, months, days, hours, minutes, minus, seconds, fraction = match.groups()
    if (years and int(years)) or (months and int(months)):
        return text
    micro = int((fraction or "").ljust(6, "0")) + 1_000_000 * int(seconds or 0)
    try:
        return timedelta(
            days=int(days or 0), hours=int(hours or 0), minutes=int(minutes or 0),
            microseconds=-micro if minus else micro,
        )
    except OverflowError:
        return text


class ValueTooDeep(ValueError):
    """A value nested deeper than Python can decode (``json`` recurses per level).
    :func:`~meepo_postgres.pgoutput.read_tuple` sets ``column`` to the column's index."""

    column: int | None = None


def to_json(text: str) -> Any:
    try:
        return loads_exact(text)
    except RecursionError:
        raise ValueTooDeep(
            f"JSON nested deeper than Python can decode (about {sys.getrecursionlimit()} "
            "levels)"
        ) from None


#: Converters of built-in scalar types, by type OID (``None``: the text is the value).
SCALARS: dict[int, Converter | None] = {
    16: to_bool, 17: to_bytes, 18: None, 19: None, 20: int, 21: int, 23: int, 25: None,
    26: int, 114: to_json, 142: None, 650: None, 700: float, 701: float, 869: None,
    1042: None, 1043: None, 1082: to_date, 1083: to_time, 1114: to_timestamp,
    1184: to_timestamptz, 1186: to_interval, 1266: to_timetz, 1700: Decimal, 2950: None,
    3802: to_json,
}
#: Built-in array types, by type OID: the element type's OID (all use "," between items).
ARRAYS: dict[int, int] = {
    1000: 16, 1001: 17, 1002: 18, 1003: 19, 1016: 20, 1005: 21, 1007: 23, 1009: 25,
    1028: 26, 199: 114, 143: 142, 651: 650, 1021: 700, 1022: 701, 1041: 869, 1014: 1042,
    1015: 1043, 1182: 1082, 1183: 1083, 1115: 1114, 1185: 1184, 1187: 1186, 1270: 1266,
    1231: 1700, 2951: 2950, 3807: 3802,
}

_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


class ArrayConverter:
    """An array's text (``{1,2,NULL}``, ``{{"a b",c},{d,e}}``, ``[0:1]={1,2}``) -> lists,
    each element through the element type's converter."""

    def __init__(self, element: Converter | None, delimiter: str = ",") -> None:
        self.element = element
        self.delimiter = delimiter

    def __call__(self, text: str) -> list[Any]:
        if text.startswith("["):  # explicit bounds; the values follow "="
            text = text[text.index("=") + 1 :]
        convert, delimiter = self.element, self.delimiter
        root: list[Any] = []
        stack: list[list[Any]] = []
        pos, end = 0, len(text)
        while pos < end:
            char = text[pos]
            if char == "{":
                child: list[Any] = []
                if stack:
                    stack[-1].append(child)
                else:
                    root = child
                stack.append(child)
                pos += 1
            elif char == "}":
                stack.pop()
                pos += 1
            elif char == delimiter or char.isspace():
                pos += 1
            elif char == '"':
                match = _QUOTED.match(text, pos)
                if match is None:
                    raise ValueError(f"unterminated quote in array {text[:80]!r}")
                value = _ESCAPE.sub(r"\1", match[1])
                stack[-1].append(value if convert is None else convert(value))
                pos = match.end()
            else:
                stop = pos
                while stop < end and text[stop] != delimiter and text[stop] != "}":
                    stop += 1
                token = text[pos:stop].strip()
                if token == "NULL":
                    stack[-1].append(None)
                else:
                    stack[-1].append(token if convert is None else convert(token))
                pos = stop
        return root
