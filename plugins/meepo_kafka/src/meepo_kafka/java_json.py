"""JSON text as Kafka Connect's JsonConverter writes it from Java, where that differs from
what orjson writes: Java 17's float text, and characters outside the Basic Multilingual
Plane as escaped surrogate pairs (Jackson's way)."""

from __future__ import annotations

import math
import struct
from typing import Any

import orjson

from .debezium_types import java_float

#: JDK 17's FloatingDecimal.insignificantDigitsNumber.
_INSIGNIFICANT = (0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6, 6, 7, 7,
                  7, 8, 8, 8, 9, 9, 9, 9, 10, 10, 10, 11, 11, 11, 12, 12, 12, 12, 13, 13, 13,
                  14, 14, 14, 15, 15, 15, 15, 16, 16, 16, 17, 17, 17, 18, 18, 18, 19)


def jdk17_float(value: Any) -> Any:
    """A FLOAT as Java 17's ``Float.toString`` writes it (Debezium's MySQL connector keeps
    FLOAT a Java float). Java before 19 writes a whole number of 1e7 or more below 2**63
    with all its exact digits but the ones its precision cannot tell apart (``123456792``
    is ``1.23456792E8``, where the shortest form is ``1.2345679E8``); else the shortest."""
    if not math.isfinite(value):
        return java_float(value)
    single = struct.unpack("f", struct.pack("f", value))[0]
    if single != int(single) or not 1e7 <= abs(single) < 2.0 ** 63:
        return java_float(value)
    exponent = ((struct.unpack("I", struct.pack("f", single))[0] >> 23) & 0xFF) - 127
    p2 = exponent - 25  # binExp - nSignificantBits - 1
    insignificant = _INSIGNIFICANT[p2] if 1 < p2 < len(_INSIGNIFICANT) else 0
    number = abs(int(single))
    if insignificant:
        power = 10 ** insignificant
        number, residue = divmod(number, power)
        number += residue >= power // 2
    digits = str(number)
    decimal_exponent = len(digits) - 1 + insignificant
    digits = digits.rstrip("0") or "0"
    sign = "-" if single < 0 else ""
    return orjson.Fragment(f"{sign}{digits[0]}.{digits[1:] or '0'}E{decimal_exponent}")


#: The lead bytes of 4-byte UTF-8 sequences: the characters outside the Basic
#: Multilingual Plane.
_LEADS = (b"\xf0", b"\xf1", b"\xf2", b"\xf3", b"\xf4")


def _surrogates(encoded: bytes) -> bytes:
    code = ord(encoded.decode("utf-8")) - 0x10000
    return b"\\u%04X\\u%04X" % (0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF))


def escape_supplementary(data: bytes) -> bytes:
    """JSON as Kafka Connect's JsonConverter (Jackson) writes it: a character outside the
    Basic Multilingual Plane as an escaped surrogate pair (``\\uD83D\\uDE80``).

    Byte searches (memchr speed) find them; most messages have none and cost one
    ``isascii`` or five searches."""
    if data.isascii() or not (b"\xf0" in data or b"\xf1" in data or b"\xf2" in data
                              or b"\xf3" in data or b"\xf4" in data):
        return data
    parts: list[bytes] = []
    start = 0
    while True:
        found = [at for at in (data.find(lead, start) for lead in _LEADS) if at >= 0]
        if not found:
            break
        at = min(found)
        parts += (data[start:at], _surrogates(data[at:at + 4]))
        start = at + 4
    parts.append(data[start:])
    return b"".join(parts)
