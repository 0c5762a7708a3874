"""Generated code for the per-event part of a table's Debezium messages.

:func:`compile_row` turns one table definition's column converters
(:class:`~meepo_kafka.debezium_types.FieldCodec`) into one Python function that writes an
image in Debezium's encoding: the loop over the columns is unrolled, each column's
converter, filler and placeholder are bound as constants, and the row is built in one
dict display. A generic loop does the same work with a tuple unpacking, four tests and a
dict store per column; the generated function does one ``get`` and one or two identity
tests per column (the row is a good part of a message's cost).

The generated source holds no user text as code: column names appear as ``repr()``
literals, every other name is generated.

:func:`source_template` splits a serialised ``source`` block around the fields that change
between the events of one transaction, so each event costs one ``bytes % values``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from meepo_core import UNCHANGED

from .debezium_types import FieldCodec

#: ``row(image) -> the image in Debezium's encoding``, None for None.
RowWriter = Callable[[Mapping[str, Any] | None], dict[str, Any] | None]

_MISSING: Any = object()


def compile_row(fields: Sequence[FieldCodec]) -> RowWriter:
    """The function that writes an image of the table whose columns are ``fields``, every
    column in their order: a column the image lacks (a key-only old row) gets the field's
    filler, an unchanged TOAST value (:data:`~meepo_core.UNCHANGED`) its placeholder, None
    stays None, any other value goes through the field's converter (if it has one)."""
    constants: dict[str, Any] = {"MISSING": _MISSING, "UNCHANGED": UNCHANGED}

    def constant(prefix: str, index: int, value: Any) -> str:
        if value is None:
            return "None"
        name = f"{prefix}{index}"
        constants[name] = value
        return name

    reads: list[str] = []
    items: list[str] = []
    for index, field in enumerate(fields):
        value = f"v{index}"
        convert = None if field.convert is None else constant("convert", index, field.convert)
        unavailable = constant("unavailable", index, field.unavailable)
        filler = None if field.filler is None else constant("filler", index, field.filler)
        # Without a filler a missing column reads as None, which it is written as anyway.
        default = "" if filler is None else ", MISSING"
        reads.append(f"    {value} = get({field.name!r}{default})")
        if convert is None and filler is None:
            expression = f"{value} if {value} is not UNCHANGED else {unavailable}"
        elif convert is None:
            expression = (f"{value} if {value} is not MISSING and {value} is not UNCHANGED "
                          f"else ({filler} if {value} is MISSING else {unavailable})")
        elif filler is None:
            expression = (f"None if {value} is None else ({unavailable} if {value} is "
                          f"UNCHANGED else {convert}({value}))")
        else:
            expression = (f"None if {value} is None else ({filler} if {value} is MISSING "
                          f"else ({unavailable} if {value} is UNCHANGED else "
                          f"{convert}({value})))")
        items.append(f"        {field.name!r}: {expression},")
    source = "\n".join([
        "def row(image):",
        "    if image is None:",
        "        return None",
        "    get = image.get",
        *reads,
        "    return {",
        *items,
        "    }",
    ])
    namespace = dict(constants)
    exec(compile(source, "<debezium row>", "exec"), namespace)
    row: RowWriter = namespace["row"]
    return row


def source_template(block: dict[str, Any], varying: Sequence[tuple[str, bytes]]) -> bytes:
    """``block`` serialised as a ``bytes % values`` template: the value of each field named
    in ``varying`` is replaced by its format (``b"%d"``, a string's quoted form...), the rest
    is written once; ``%`` in the written text is escaped. The values go in the order of
    the fields in ``block``."""
    marked = dict(block)
    for index, (name, _) in enumerate(varying):
        # a control character cannot appear in orjson's output: the marks are unambiguous
        marked[name] = orjson.Fragment(b"\x00%d\x00" % index)
    text = orjson.dumps(marked).replace(b"%", b"%%")
    for index, (_, form) in enumerate(varying):
        text = text.replace(b"\x00%d\x00" % index, form)
    return text
