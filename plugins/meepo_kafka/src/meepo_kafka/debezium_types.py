"""Debezium's PostgreSQL type mapping: for each column definition, the Kafka Connect schema
Debezium declares and the function that turns meepo's value into what Debezium's JSON
converter writes for it.

The mapping is that of Debezium's PostgreSQL connector with its defaults
(``decimal.handling.mode=precise``, ``time.precision.mode=adaptive``,
``binary.handling.mode=bytes``, ``interval.handling.mode=numeric``), checked against
Debezium itself (the golden files of the tests). Every function here runs once per table
definition; the converters it returns run per value.
"""

from __future__ import annotations

import base64
import json
import math
import re
from binascii import b2a_base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Context, Decimal
from json.encoder import encode_basestring
from typing import Any

import orjson

from meepo_core import ColumnDefinition, dumps_exact

#: The fields every Debezium connector's ``source`` block starts with (the common part of
#: io.debezium.connector.*.Source); each connector's own fields follow.
SOURCE_COMMON_FIELDS: tuple[dict[str, Any], ...] = (
    {"type": "string", "optional": False, "field": "version"},
    {"type": "string", "optional": False, "field": "connector"},
    {"type": "string", "optional": False, "field": "name"},
    {"type": "int64", "optional": False, "field": "ts_ms"},
    {"type": "string", "optional": True, "name": "io.debezium.data.Enum", "version": 1,
     "parameters": {"allowed": "true,first,first_in_data_collection,"
                               "last_in_data_collection,last,false,incremental"},
     "default": "false", "field": "snapshot"},
    {"type": "string", "optional": False, "field": "db"},
    {"type": "string", "optional": True, "field": "sequence"},
    {"type": "int64", "optional": True, "field": "ts_us"},
    {"type": "int64", "optional": True, "field": "ts_ns"},
)

#: Debezium's ``unavailable.value.placeholder``: a column the source did not send.
UNAVAILABLE = "__debezium_unavailable_value"
_UNAVAILABLE_BYTES = base64.b64encode(UNAVAILABLE.encode()).decode("ascii")

Convert = Callable[[Any], Any]

_EPOCH = datetime(1970, 1, 1)
_EPOCH_DAY = date(1970, 1, 1)
#: Debezium's MicroDuration: a month is 365.25 / 12 days, a year 365.25 days.
_MICROS_PER_MONTH = 2_629_800_000_000
_MICROS_PER_DAY = 86_400_000_000
_MICROSECOND = timedelta(microseconds=1)
_MILLISECOND = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class FieldCodec:
    """One column as Debezium writes it: its Connect ``schema`` (JSON-ready, without the
    field name), ``convert`` for a value that is neither None nor UNCHANGED (None: the
    value as it is), what an unchanged TOAST value becomes, and the value Debezium puts
    for a NOT NULL column missing from an image that holds only the key."""

    name: str
    schema: dict[str, Any]
    convert: Convert | None
    unavailable: Any
    filler: Any


def _schema(kind: str, optional: bool, name: str | None = None, *,
            parameters: dict[str, str] | None = None, doc: str | None = None,
            fields: list[dict[str, Any]] | None = None,
            items: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Connect schema with its keys in the order the JSON converter writes them."""
    schema: dict[str, Any] = {"type": kind}
    if items is not None:
        schema["items"] = items
    if fields is not None:
        schema["fields"] = fields
    schema["optional"] = optional
    if name is not None:
        schema["name"] = name
        schema["version"] = 1
    if doc is not None:
        schema["doc"] = doc
    if parameters is not None:
        schema["parameters"] = parameters
    return schema


# -- numbers ----------------------------------------------------------------------------

def java_double(value: float) -> Any:
    """A double as Java's ``Double.toString`` writes it (the JSON converter's way):
    ``1.0E10`` and ``1.0E-5`` outside [1e-3, 1e7), non-finite values as strings."""
    if not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    magnitude = abs(value)
    if magnitude == 0 or 1e-3 <= magnitude < 1e7:
        return value  # orjson writes these as Java does (shortest digits, one decimal)
    digits, exponent = _shortest(repr(value))
    mantissa = digits[0] + "." + (digits[1:] or "0")
    return orjson.Fragment(f"{'-' if value < 0 else ''}{mantissa}E{exponent}")


def java_float(value: float) -> Any:
    """A real (float32) as Java's ``Float.toString`` writes it: the shortest decimal that
    reads back as the same float32."""
    if not math.isfinite(value):
        return java_double(value)
    import struct

    single = struct.unpack("f", struct.pack("f", value))[0]
    for places in range(1, 10):
        text = f"{single:.{places}g}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == single:
            return java_double(float(text))
    return java_double(single)


def _shortest(text: str) -> tuple[str, int]:
    """(significant digits, decimal exponent of the first) of Python's repr of a float."""
    text = text.lstrip("-")
    mantissa, _, exp = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    exponent = int(exp or 0) + len(whole) - 1
    if whole.strip("0") == "":
        exponent = int(exp or 0) - (len(fraction) - len(fraction.lstrip("0"))) - 1
    return digits.rstrip("0") or "0", exponent


def _unscaled_bytes(unscaled: int) -> str:
    """Java's ``BigInteger.toByteArray`` (two's complement, big-endian, minimal), base64."""
    length = (unscaled + (unscaled < 0)).bit_length() // 8 + 1
    # binascii directly: base64.b64encode is a Python function around it (per value)
    return b2a_base64(unscaled.to_bytes(length, "big", signed=True),
                      newline=False).decode("ascii")


def _decimal_at(scale: int) -> Convert:
    factor = 10 ** scale if scale >= 0 else 0

    def convert(value: Any) -> Any:
        number = value if isinstance(value, Decimal) else Decimal(_money_text(value))
        if factor:  # the hot path: a value with at most ``scale`` places, exactly
            try:
                numerator, denominator = number.as_integer_ratio()
            except (ValueError, OverflowError):
                return None  # NaN and infinities: Debezium writes null
            unscaled, rest = divmod(numerator * factor, denominator)
            if not rest:  # _unscaled_bytes(unscaled), inline: this runs per value
                return b2a_base64(unscaled.to_bytes(
                    (unscaled + (unscaled < 0)).bit_length() // 8 + 1, "big", signed=True),
                    newline=False).decode("ascii")
        elif not number.is_finite():
            return None
        return _unscaled_bytes(_unscaled(number, scale))
    return convert


#: Enough digits that scaleb() is exact for any decimal a column holds in practice.
_EXACT = Context(prec=100_000)


def _unscaled(number: Decimal, scale: int) -> int:
    """``number * 10**scale`` as an integer, exactly (rounded half up past ``scale``),
    whatever its digits: Decimal's default context rounds to 28 digits."""
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent + scale >= 0:  # no digits past the scale: exact in a wide context
        return int(number.scaleb(scale, _EXACT))
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    magnitude = int("".join(map(str, digits)) or "0")
    shift = exponent + scale
    if shift >= 0:
        magnitude *= int(10 ** shift)
    else:
        divisor = int(10 ** -shift)
        magnitude, rest = divmod(magnitude, divisor)
        magnitude += int(rest * 2 >= divisor)
    return -magnitude if sign else magnitude


def _variable_decimal(value: Any) -> Any:
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite():
        return None
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    unscaled = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    if exponent > 0:
        unscaled, exponent = unscaled * 10 ** exponent, 0
    return {"scale": -exponent, "value": _unscaled_bytes(unscaled)}


def _money_text(value: Any) -> str:
    """``"$1,234.50"`` / ``"-$5.50"`` (money as PostgreSQL prints it) -> ``"1234.50"``."""
    text = str(value).replace(",", "").replace("$", "")
    return "-" + text[1:-1] if text.startswith("(") else text


# -- time -------------------------------------------------------------------------------

def _days(value: Any) -> int:
    return int((value - _EPOCH_DAY).days)


def _time_micros(value: Any) -> int:
    if isinstance(value, time_of_day):
        return (((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000
                + value.microsecond)
    if isinstance(value, timedelta):
        return (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    hours, minutes, seconds = str(value).split(":")  # "24:00:00"
    return round((int(hours) * 3600 + int(minutes) * 60 + float(seconds)) * 1_000_000)


def _time_millis(value: Any) -> int:
    return _time_micros(value) // 1000


def _zoned_time(value: Any) -> str:
    """A time with time zone, moved to UTC, as ``HH:MM:SS[.fraction]Z`` (trailing zeros of
    the fraction dropped, as Java's ISO_LOCAL_TIME)."""
    micros = _time_micros(value.replace(tzinfo=None))
    offset = value.utcoffset()
    if offset is not None:
        micros -= (offset.days * 86_400 + offset.seconds) * 1_000_000 + offset.microseconds
    micros %= _MICROS_PER_DAY
    seconds, fraction = divmod(micros, 1_000_000)
    text = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    if fraction:
        text += "." + f"{fraction:06d}".rstrip("0")
    return text + "Z"


def _timestamp_micros(value: Any) -> int:
    return int((value - _EPOCH) // _MICROSECOND)  # exact: timedelta's own division


def _timestamp_millis(value: Any) -> int:
    return int((value - _EPOCH) // _MILLISECOND)  # floored, as micros // 1000


def _zoned_timestamp(digits: int) -> Convert:
    def convert(value: Any) -> Any:
        if not isinstance(value, datetime):
            return str(value)
        utc = value.astimezone(UTC)
        text = (f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
                f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}")
        if digits:
            text += "." + f"{utc.microsecond:06d}"[:digits].ljust(digits, "0")
        return text + "Z"
    return convert


_INTERVAL = re.compile(
    r"^P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)D)?"
    r"(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?)(\d+)(?:\.(\d+))?S)?)?$")


def _interval_micros(value: Any) -> int:
    """An interval as Debezium's MicroDuration: months of 30.4375 days."""
    if isinstance(value, timedelta):
        return (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    match = _INTERVAL.match(str(value))
    if match is None:
        raise ValueError(f"not an ISO 8601 interval: {value!r}")
    years, months, days, hours, minutes, minus, seconds, fraction = match.groups()
    micros = int((fraction or "").ljust(6, "0")[:6]) + 1_000_000 * int(seconds or 0)
    micros = -micros if minus else micros
    return (micros + (int(minutes or 0) * 60 + int(hours or 0) * 3600) * 1_000_000
            + int(days or 0) * _MICROS_PER_DAY
            + (int(years or 0) * 12 + int(months or 0)) * _MICROS_PER_MONTH)


# -- other ------------------------------------------------------------------------------

def _base64(value: Any) -> str:
    return base64.b64encode(bytes(value)).decode("ascii")


def _bits(value: Any) -> str:
    """A bit string (``"10100101"``) as Debezium's Bits: the number it spells, as
    little-endian bytes (Java's ``BitSet.toByteArray``)."""
    number = int(str(value), 2) if value != "" else 0
    return base64.b64encode(number.to_bytes((number.bit_length() + 7) // 8, "little")
                            ).decode("ascii")


def _json_text(value: Any) -> str:
    """A JSON value as PostgreSQL prints json(b): ``", "`` and ``": "`` separators, numbers
    as written (:class:`meepo_core.JsonNumber`). A string that holds an object or array is
    the document's text (what the postgres source gives for JSON nested deeper than Python
    decodes); any other string is a JSON string."""
    if isinstance(value, str):
        return value if value[:1] in ("{", "[") and _is_json(value) \
            else encode_basestring(value)
    return dumps_exact(value)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except RecursionError:
        return True  # too deep for Python, so it came from the server as a document
    except ValueError:
        return False
    return True


_INTEGERS = {"smallint": "int16", "integer": "int32", "bigint": "int64", "oid": "int64"}
_STRINGS = {"text", "character varying", "character", "name", "inet", "cidr", "macaddr",
            "macaddr8", "citext", '"char"', "tsvector", "tsquery", "ltree"}
_PLAIN = {"boolean": "boolean"}


@dataclass(frozen=True, slots=True)
class Modes:
    """Debezium's value-mapping settings (``*.handling.mode``, ``time.precision.mode``)."""

    decimal: str = "precise"
    time: str = "adaptive"
    binary: str = "bytes"
    bigint_unsigned: str = "long"  # MySQL's BIGINT UNSIGNED: "long" or "precise"


#: Debezium's defaults.
DEFAULT_MODES = Modes()


def field_codec(column: ColumnDefinition, *, key: bool = False,
                modes: Modes = DEFAULT_MODES) -> FieldCodec:
    """How Debezium declares and writes ``column`` (``key``: as a key field)."""
    optional = column.nullable and not key
    schema, convert = _mapping(column.base_type, column, optional, modes)
    # Debezium 3.6.3 writes an unchanged TOAST bytea as null in the base64 modes (the
    # placeholder text in hex mode, its bytes in bytes mode).
    unavailable = (None if column.base_type == "bytea" and modes.binary.startswith("base64")
                   else _unavailable(schema))
    return FieldCodec(column.name, schema, convert, unavailable, _filler(schema))


def _mapping(kind: str, column: ColumnDefinition, optional: bool,
             modes: Modes) -> tuple[dict[str, Any], Convert | None]:
    if kind.endswith("[]"):
        element = column.element or kind[:-2]
        item_schema, item_convert = _mapping(element, column, True, modes)
        return (_schema("array", optional, items=item_schema),
                _array(item_convert))
    if kind in ("numeric", "money") and modes.decimal != "precise":
        if modes.decimal == "double":
            return _schema("double", optional), _decimal_as_double
        return _schema("string", optional), _decimal_as_string
    if kind == "bytea" and modes.binary != "bytes":
        return _schema("string", optional), _BINARY_TEXT[modes.binary]
    if modes.time == "connect" and kind in _CONNECT_TIME:
        name, connect_kind, convert = _CONNECT_TIME[kind]
        return _schema(connect_kind, optional, name), convert
    if modes.time == "adaptive_time_microseconds" and kind == "time without time zone":
        return _schema("int64", optional, "io.debezium.time.MicroTime"), _time_micros
    if kind in _INTEGERS:
        return _schema(_INTEGERS[kind], optional), None
    if kind in _STRINGS:
        return _schema("string", optional), None
    if kind in _PLAIN:
        return _schema(_PLAIN[kind], optional), None
    if kind == "real":
        return _schema("float", optional), java_float
    if kind == "double precision":
        return _schema("double", optional), java_double
    if kind == "numeric":
        if column.precision is None:
            return (_schema("struct", optional, "io.debezium.data.VariableScaleDecimal",
                            doc="Variable scaled decimal",
                            fields=[{"type": "int32", "optional": False, "field": "scale"},
                                    {"type": "bytes", "optional": False, "field": "value"}]),
                    _variable_decimal)
        scale = column.scale or 0
        return (_schema("bytes", optional, "org.apache.kafka.connect.data.Decimal",
                        parameters={"scale": str(scale),
                                    "connect.decimal.precision": str(column.precision)}),
                _decimal_at(scale))
    if kind == "money":
        return (_schema("bytes", optional, "org.apache.kafka.connect.data.Decimal",
                        parameters={"scale": "2"}), _decimal_at(2))
    if kind == "bytea":
        return _schema("bytes", optional), _base64
    if kind == "date":
        return _schema("int32", optional, "io.debezium.time.Date"), _days
    if kind == "time without time zone":
        if column.precision is not None and column.precision <= 3:
            return _schema("int32", optional, "io.debezium.time.Time"), _time_millis
        return _schema("int64", optional, "io.debezium.time.MicroTime"), _time_micros
    if kind == "time with time zone":
        return _schema("string", optional, "io.debezium.time.ZonedTime"), _zoned_time
    if kind == "timestamp without time zone":
        if column.precision is not None and column.precision <= 3:
            return (_schema("int64", optional, "io.debezium.time.Timestamp"),
                    _timestamp_millis)
        return (_schema("int64", optional, "io.debezium.time.MicroTimestamp"),
                _timestamp_micros)
    if kind == "timestamp with time zone":
        digits = 6 if column.precision is None else column.precision
        return (_schema("string", optional, "io.debezium.time.ZonedTimestamp"),
                _zoned_timestamp(digits))
    if kind == "interval":
        return (_schema("int64", optional, "io.debezium.time.MicroDuration"),
                _interval_micros)
    if kind in ("json", "jsonb"):
        return _schema("string", optional, "io.debezium.data.Json"), _json_text
    if kind == "uuid":
        return _schema("string", optional, "io.debezium.data.Uuid"), None
    if kind == "xml":
        return _schema("string", optional, "io.debezium.data.Xml"), None
    if kind == "bit" and (column.length or 1) == 1:
        return _schema("boolean", optional), lambda v: str(v) == "1"
    if kind in ("bit", "bit varying"):
        length = column.length if column.length is not None else 2_147_483_647
        return (_schema("bytes", optional, "io.debezium.data.Bits",
                        parameters={"length": str(length)}), _bits)
    if column.enum_values:
        return (_schema("string", optional, "io.debezium.data.Enum",
                        parameters={"allowed": ",".join(column.enum_values)}), None)
    raise UnsupportedType(f"column {column.name!r} has type {kind!r}, which meepo's "
                          "Debezium format does not encode")


def _decimal_as_double(value: Any) -> Any:
    number = value if isinstance(value, Decimal) else Decimal(_money_text(value))
    return java_double(float(number))


def _decimal_as_string(value: Any) -> Any:
    number = value if isinstance(value, Decimal) else Decimal(_money_text(value))
    # Debezium spells numeric NaN in upper case in this mode
    return str(number) if number.is_finite() else ("NAN" if number.is_nan() else None)


_BINARY_TEXT: dict[str, Convert] = {
    "base64": _base64,
    "base64-url-safe": lambda v: base64.urlsafe_b64encode(bytes(v)).decode("ascii"),
    "hex": lambda v: bytes(v).hex(),
}

#: time.precision.mode=connect: Kafka Connect's own logical types, milliseconds.
_CONNECT_TIME: dict[str, tuple[str, str, Convert]] = {
    "date": ("org.apache.kafka.connect.data.Date", "int32", _days),
    "time without time zone": ("org.apache.kafka.connect.data.Time", "int32", _time_millis),
    "timestamp without time zone": ("org.apache.kafka.connect.data.Timestamp", "int64",
                                    _timestamp_millis),
}


class UnsupportedType(ValueError):
    """A column type this module has no Debezium mapping for."""


def _array(item: Convert | None) -> Convert:
    def convert(values: Any) -> Any:
        # Debezium writes each element of a multi-dimensional array as null.
        return [None if v is None or isinstance(v, list) else (v if item is None else item(v))
                for v in values]
    return convert


def _unavailable(schema: dict[str, Any]) -> Any:
    kind = schema["type"]
    if kind == "string":
        return UNAVAILABLE
    if kind == "bytes":
        return _UNAVAILABLE_BYTES
    if kind == "array" and schema["items"]["type"] == "string":
        return [UNAVAILABLE]
    return None


_FILLERS = {"string": "", "int16": 0, "int32": 0, "int64": 0, "float": 0.0, "double": 0.0,
            "boolean": False, "bytes": ""}


def _filler(schema: dict[str, Any]) -> Any:
    if schema["optional"]:
        return None
    if schema.get("name") == "io.debezium.data.VariableScaleDecimal":
        return {"scale": 0, "value": "AA=="}
    if schema.get("name") == "org.apache.kafka.connect.data.Decimal":
        return "AA=="
    if schema["type"] == "array":
        return []
    return _FILLERS.get(schema["type"])
