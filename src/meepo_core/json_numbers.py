"""JSON documents whose numbers stay as written.

``json.loads`` turns every number with a fraction or an exponent into a float, so
``12345678901234567890.123456789`` loses digits, ``1e400`` becomes ``inf`` and ``1.10``
comes back ``1.1``. Sources that parse JSON columns (``json``/``jsonb``, MariaDB's JSON)
use :func:`loads_exact` instead: a number whose float prints differently from its text is
a :class:`JsonNumber`, a float (the same nearest double as before, for every computation,
comparison and ``json.dumps``) that keeps its text. Writers that must reproduce the
document's numbers exactly (the Debezium format writes the column's JSON text) use
:func:`dumps_exact`; the core's JSON encoding (:mod:`meepo_core.serialization`) keeps the
text too. Integers need nothing: Python's are exact.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import encode_basestring  # the C-accelerated string quoting of json
from typing import Any


class JsonNumber(float):
    """A JSON number whose float is not what was written: ``float(self)`` is its nearest
    double (``inf`` beyond the double range), ``text`` the number as written."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> JsonNumber:
        number = super().__new__(cls, text)
        number.text = text
        return number

    def __repr__(self) -> str:
        return f"JsonNumber({self.text!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (JsonNumber, (self.text,))


def json_number(text: str) -> float:
    """``parse_float`` for :mod:`json`: a float when it prints as ``text``, else a
    :class:`JsonNumber` that keeps ``text``."""
    value = float(text)
    return value if repr(value) == text else JsonNumber(text)


#: A decoder whose ``decode`` and ``scan_once`` give :class:`JsonNumber` for inexact numbers.
DECODER = json.JSONDecoder(parse_float=json_number)


def loads_exact(text: str) -> Any:
    """``json.loads(text)``, numbers kept as written (see :class:`JsonNumber`)."""
    return DECODER.decode(text)


def dumps_exact(value: Any, item_separator: str = ", ", key_separator: str = ": ") -> str:
    """``value`` as JSON text (non-ASCII kept, as ``ensure_ascii=False``), a
    :class:`JsonNumber` as its text; the separators are ``json.dumps``'s. Plain floats
    print as ``json.dumps`` prints them (non-finite ones as ``NaN``/``Infinity``, which
    are not JSON: no parsed document holds them)."""
    parts: list[str] = []
    try:
        _write(value, parts.append, item_separator, key_separator)
    except RecursionError:  # nested deeper than this walk goes: json's own encoder
        return json.dumps(value, ensure_ascii=False, separators=(item_separator, key_separator))
    return "".join(parts)


_SCALARS: dict[Any, str] = {True: "true", False: "false", None: "null"}


def _write(value: Any, out: Callable[[str], Any], item: str, key: str) -> None:
    kind = type(value)
    if kind is str:
        out(encode_basestring(value))
    elif kind is int:
        out(int.__repr__(value))
    elif kind is float and value - value == 0.0:  # finite (NaN and infinities give NaN)
        out(float.__repr__(value))
    elif kind is dict:
        out("{")
        first = True
        for name, member in value.items():
            if not first:
                out(item)
            first = False
            out(encode_basestring(name) if type(name) is str else json.dumps(str(name)))
            out(key)
            _write(member, out, item, key)
        out("}")
    elif kind is list or kind is tuple:
        out("[")
        for index, member in enumerate(value):
            if index:
                out(item)
            _write(member, out, item, key)
        out("]")
    elif kind is JsonNumber:
        out(value.text)
    elif value is None or kind is bool:
        out(_SCALARS[value])
    else:  # non-finite floats, subclasses, and anything else json knows
        out(json.dumps(value, ensure_ascii=False, separators=(item, key)))
