"""Conversions from a column's stored form to its Python value.

The row decoder (:mod:`meepo_mysql.rows`) reads each column's bytes or integers and
calls one of these when the type needs more than a plain integer, float or ``str``. The
Python value of every type is listed in the plugin README; the rules that are not
obvious:

* zero dates and times (``0000-00-00``, ``0000-00-00 00:00:00``, the zero TIMESTAMP)
  are None; a date with a zero month or day, or any other date Python cannot hold
  (``ALLOW_INVALID_DATES``), is the server's text for it, e.g. ``"2024-00-15"``;
* TIMESTAMP is a UTC-aware ``datetime``, DATETIME a naive one;
* TIME is a signed ``timedelta`` (-838:59:59.999999 .. 838:59:59.999999);
* YEAR is an ``int``, 0 for the zero year;
* DECIMAL is a ``Decimal`` with exactly the column's scale (``Decimal("1.50")``).
"""

from __future__ import annotations

import decimal
import ipaddress
import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from meepo_core import json_number, loads_exact

log = logging.getLogger("meepo.mysql")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: For 0..6 digits of fractional seconds, the factor from the stored fraction to microseconds.
FRACTION_SCALE = (0, 10000, 10000, 100, 100, 1, 1)
_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
#: Wide enough for DECIMAL(65, 30): scaling by a power of ten never rounds.
_EXACT = decimal.Context(prec=100)


def date_value(packed: int) -> date | str | None:
    """DATE: 3 bytes little-endian, ``year << 9 | month << 5 | day``."""
    if not packed:
        return None
    year, month, day = packed >> 9, (packed >> 5) & 15, packed & 31
    try:
        return date(year, month, day)
    except ValueError:
        return f"{year:04d}-{month:02d}-{day:02d}"


def datetime2_value(packed: int, micro: int, digits: int) -> datetime | str | None:
    """DATETIME(n): 5 bytes big-endian (offset 2^39) plus the fraction."""
    value = packed - 0x8000000000
    if not value and not micro:
        return None
    ymd, hms = value >> 17, value & 0x1FFFF
    ym = ymd >> 5
    parts = (ym // 13, ym % 13, ymd & 31, hms >> 12, (hms >> 6) & 63, hms & 63)
    try:
        return datetime(*parts, micro)
    except ValueError:
        return _datetime_text(*parts, micro, digits)


def datetime_value(packed: int) -> datetime | str | None:
    """DATETIME in the pre-5.6 format: 8 bytes, the decimal number YYYYMMDDhhmmss."""
    if not packed:
        return None
    day_part, time_part = divmod(packed, 1000000)
    parts = (day_part // 10000, day_part // 100 % 100, day_part % 100,
             time_part // 10000, time_part // 100 % 100, time_part % 100)
    try:
        return datetime(*parts)
    except ValueError:
        return _datetime_text(*parts, 0, 0)


def _datetime_text(
    year: int, month: int, day: int, hour: int, minute: int, second: int, micro: int,
    digits: int,
) -> str:
    text = f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}"
    return f"{text}.{micro:06d}"[:len(text) + 1 + digits] if digits else text


def timestamp_value(seconds: int, micro: int) -> datetime | None:
    """TIMESTAMP(n): seconds since the epoch (big-endian in TIMESTAMP2) and the fraction;
    0 is the zero timestamp."""
    if not seconds and not micro:
        return None
    return EPOCH + timedelta(0, seconds, micro)


def time2_value(packed: int, fraction: int, digits: int) -> timedelta:
    """TIME(n) as MySQL packs it (``my_time_packed_from_binary``): the 3-byte integer
    part (offset 2^23) and the fraction form one signed number, so a negative value with
    a fraction borrows one second."""
    if digits >= 5:
        value = (packed << 24 | fraction) - 0x800000000000
    else:
        intpart = packed - 0x800000
        if digits:
            if intpart < 0 and fraction:
                intpart += 1
                fraction -= 0x100 if digits <= 2 else 0x10000
            fraction *= FRACTION_SCALE[digits]
        value = (intpart << 24) + fraction
    if value < 0:
        return -_time_of(-value)
    return _time_of(value)


def _time_of(value: int) -> timedelta:
    hms = value >> 24
    return timedelta(0, (hms >> 12 & 0x3FF) * 3600 + (hms >> 6 & 0x3F) * 60 + (hms & 0x3F),
                     value & 0xFFFFFF)


def time_value(packed: int) -> timedelta:
    """TIME in the pre-5.6 format: 3 bytes signed, the decimal number hhmmss."""
    negative = packed < 0
    value = -packed if negative else packed
    result = timedelta(hours=value // 10000, minutes=value // 100 % 100, seconds=value % 100)
    return -result if negative else result


def decimal_size(precision: int, scale: int) -> int:
    """Bytes of a DECIMAL(precision, scale) value."""
    integral = precision - scale
    return (integral // 9 * 4 + _DIG2BYTES[integral % 9]
            + scale // 9 * 4 + _DIG2BYTES[scale % 9])


def decimal_reader(precision: int, scale: int) -> Callable[[bytes], Decimal]:
    """A function from the stored bytes of a DECIMAL(precision, scale) to its value.

    The stored form is big-endian: groups of 9 digits in 4 bytes, a shorter leading
    (integer) and trailing (fraction) group, the sign in the top bit (set: positive) and
    all bits inverted for negative values. The function is generated per layout: each
    group is a shift and a mask of the whole value read as one integer.
    """
    integral = precision - scale
    size = decimal_size(precision, scale)
    # (digits, bytes) of each group from the most significant end, then split at the point
    int_groups = ([(integral % 9, _DIG2BYTES[integral % 9])] if integral % 9 else []) + \
        [(9, 4)] * (integral // 9)
    frac_groups = [(9, 4)] * (scale // 9) + \
        ([(scale % 9, _DIG2BYTES[scale % 9])] if scale % 9 else [])
    shift = 8 * size
    terms = []
    for groups in (int_groups, frac_groups):
        parts = []
        for digits, width in groups:
            shift -= 8 * width
            parts.append((f"(raw >> {shift} & {(1 << 8 * width) - 1:#x})", digits))
        expr, remaining = "0", sum(d for _, d in parts)
        for part, digits in parts:
            remaining -= digits
            expr = f"{expr} + {part} * {10 ** remaining}" if remaining else f"{expr} + {part}"
        terms.append(expr)
    whole, fraction = terms
    sign, full = 1 << (8 * size - 1), (1 << (8 * size)) - 1
    scaled = f"({whole}) * {10 ** scale} + {fraction}" if scale else whole
    value = f"Decimal({scaled}).scaleb({-scale}, _EXACT)" if scale else f"Decimal({scaled})"
    negative = f"Decimal(-({scaled})).scaleb({-scale}, _EXACT)" if scale else \
        f"Decimal(-({scaled}))"
    source = "\n".join([
        "def read(data):",
        "    raw = int.from_bytes(data, 'big')",
        f"    if raw & {sign:#x}:",
        f"        raw ^= {sign:#x}",
        f"        return {value}",
        f"    raw ^= {full ^ sign:#x}",
        f"    return {negative}",
    ])
    namespace: dict[str, Any] = {"Decimal": Decimal, "_EXACT": _EXACT}
    exec(compile(source, f"<meepo DECIMAL({precision},{scale})>", "exec"), namespace)
    read: Callable[[bytes], Decimal] = namespace["read"]
    return read


def enum_reader(members: tuple[str, ...]) -> Callable[[int], str]:
    """ENUM: the 1-based member index; 0 is the empty error value ``''``. An index past
    the members (a corrupt row) raises IndexError."""
    return ("", *members).__getitem__


def set_reader(members: tuple[str, ...]) -> Callable[[int], set[str]]:
    """SET: a bitmask over the members, as a ``set`` of their strings (``set()`` when
    empty)."""
    bits = tuple((1 << i, member) for i, member in enumerate(members))

    def read(mask: int) -> set[str]:
        return {member for bit, member in bits if mask & bit}

    return read


def bit_value(data: bytes) -> int:
    """BIT(n): big-endian bytes, as an ``int``."""
    return int.from_bytes(data, "big")


def mariadb_json(text: str) -> Any:
    """MariaDB's JSON (LONGTEXT with a ``json_valid`` check), parsed as ``json.loads``
    would (the scanner it uses, called directly when the text has no surrounding
    whitespace), except that numbers a float cannot hold as written keep their text
    (:class:`meepo_core.JsonNumber`); text that is not valid JSON (written before the check
    existed) stays text, and so does JSON nested deeper than Python can decode (the check
    allows 32 levels; deeper text gets in only with the check off), with a warning."""
    try:
        value, end = _scan_json(text, 0)
        if end == len(text):
            return value
    except (StopIteration, ValueError):
        pass
    except RecursionError:
        return _too_deep(text)
    try:
        return loads_exact(text)
    except ValueError:
        return text
    except RecursionError:
        return _too_deep(text)


def _too_deep(text: str) -> str:
    log.warning("a JSON value nested deeper than Python can decode (about %d levels) is "
                "delivered as its text (%d characters: %.40s...)", sys.getrecursionlimit(),
                len(text), text)
    return text


_scan_json: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder(  # type: ignore[attr-defined]
    parse_float=json_number).scan_once


def mysql_json(value: Any) -> Any:
    """MySQL binary JSON as python-mysql-replication's parser returns it, with bytes keys
    and strings decoded."""
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


def inet4_value(data: bytes) -> str:
    """MariaDB INET4: 4 bytes, as dotted text."""
    return str(ipaddress.IPv4Address(data))


def inet6_value(data: bytes) -> str:
    """MariaDB INET6: 16 bytes, as the server prints it (RFC 5952, with an embedded IPv4
    address in dotted form for the IPv4-mapped and IPv4-compatible ranges)."""
    address = ipaddress.IPv6Address(data)
    head, tail = data[:12], data[12:]
    if head == b"\0" * 10 + b"\xff\xff":
        return f"::ffff:{ipaddress.IPv4Address(tail)}"
    if head == b"\0" * 12 and tail[:2] != b"\0\0":
        return f"::{ipaddress.IPv4Address(tail)}"
    return address.compressed


def uuid_value(data: bytes) -> str:
    """MariaDB UUID: 16 bytes, as the canonical text."""
    text = data.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
