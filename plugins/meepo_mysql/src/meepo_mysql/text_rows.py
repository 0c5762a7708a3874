"""Rows of a text-protocol result set, parsed by code generated once per result.

A snapshot chunk is a plain ``SELECT``; pymysql parses each row field by field through
method calls (``read_length_coded_string``, then ``decode`` and the field type's converter),
which is most of a chunk's cost. :func:`row_parser` writes that same work out for the
result's columns, once, as one function of the row packet's bytes. The values are exactly
pymysql's: every column goes through the decoding and converter pymysql chose for it;
only integers and floats skip the ASCII decode (``int``/``float`` take the bytes as they
are) and DATETIME/TIMESTAMP values in the server's two usual shapes are built directly,
anything else going through pymysql's own ``convert_datetime``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, cast

from pymysql.converters import convert_datetime

#: pymysql's per-column (encoding or None, converter or None), from its result.
Columns = Sequence[tuple[str | None, Callable[[Any], Any] | None]]
RowParser = Callable[[bytes], tuple[Any, ...]]

_TAKE_BYTES = (int, float)
_from_iso = datetime.fromisoformat  # converters that read the digits from bytes as from str


def fast_datetime(raw: bytes) -> Any:
    """``convert_datetime(raw.decode("ascii"))``, built directly for the server's
    ``YYYY-MM-DD HH:MM:SS`` and ``YYYY-MM-DD HH:MM:SS.ffffff``."""
    size = len(raw)
    if (size == 19 or (size == 26 and raw[19] == 46)) and raw[4] == 45 and raw[7] == 45 \
            and raw[10] == 32 and raw[13] == 58 and raw[16] == 58:
        try:
            return _from_iso(raw.decode("ascii"))  # in C; same fields for these shapes
        except ValueError:
            pass  # a zero or otherwise invalid date: pymysql decides
    return convert_datetime(raw.decode("ascii"))


def long_field(data: bytes, at: int) -> tuple[bytes, int]:
    """The field at ``at`` whose length prefix is 0xFC, 0xFD or 0xFE; and where the next
    field starts."""
    prefix = data[at]
    width = {0xFC: 2, 0xFD: 3, 0xFE: 8}.get(prefix)
    if width is None:
        raise ValueError(f"unexpected length prefix 0x{prefix:02x} in a row")
    start = at + 1 + width
    end = start + int.from_bytes(data[at + 1:start], "little")
    return data[start:end], end


def row_parser(columns: Columns) -> RowParser:
    """A function from a row packet's bytes to the row's values, as pymysql gives them.
    Raises IndexError for a packet with fewer fields than ``columns``. Built once per
    shape of result (every chunk of a table has the same)."""
    return _parser(tuple(columns))


@functools.lru_cache(maxsize=256)
def _parser(columns: tuple[tuple[str | None, Callable[[Any], Any] | None], ...]) -> RowParser:
    namespace: dict[str, Any] = {"long_field": long_field}
    lines = ["def parse(data):", "    at = 0"]
    names = []
    for i, (encoding, convert) in enumerate(columns):
        value = f"v{i}"
        names.append(value)
        lines += [
            "    size = data[at]",
            "    if size < 251:",
            f"        {value} = data[at + 1:at + 1 + size]",
            "        at += 1 + size",
            "    elif size == 251:",
            f"        {value} = None",
            "        at += 1",
            "    else:",
            f"        {value}, at = long_field(data, at)",
        ]
        if convert is convert_datetime:
            namespace[f"convert{i}"] = fast_datetime
            call = f"convert{i}({value})"
        elif convert in _TAKE_BYTES:
            namespace[f"convert{i}"] = convert
            call = f"convert{i}({value})"
        else:
            call = value if encoding is None else f"{value}.decode({encoding!r})"
            if convert is not None:
                namespace[f"convert{i}"] = convert
                call = f"convert{i}({call})"
        if call != value:
            lines += [f"    if {value} is not None:", f"        {value} = {call}"]
    lines.append(f"    return ({''.join(name + ', ' for name in names)})")
    exec("\n".join(lines), namespace)  # only generated names and repr()-quoted encodings
    return cast(RowParser, namespace["parse"])
