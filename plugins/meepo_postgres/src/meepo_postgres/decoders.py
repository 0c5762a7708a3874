"""Row decoders generated per relation: one Insert, Update or Delete message of a followed
table to its :class:`~meepo_core.RowEvent` in one call.

For each :class:`~meepo_postgres.relations.TablePlan` a small Python function is generated
per message kind, with everything that depends on the relation folded in: the column
count, one unrolled block per column that reads its TupleData entry (kind byte, length,
value) into a local variable, the column's conversion written out (``int``, ``float``,
``bool`` and the date/time types straight from the message's bytes or text, other
converters called), the images as dict displays and the primary key as an expression. Per
event there is then no loop over columns, no list of values and no image built by
``zip``.

Each generated function handles the common shapes only: an Insert, an Update without an
old row (REPLICA IDENTITY DEFAULT or USING INDEX, key unchanged) and a Delete carrying the
key (``K``). Any other shape (an old row ``O`` or ``K`` in an Update, a full old row in a
Delete, a column count or value kind other than expected) raises :class:`Fallback`, and
the caller decodes the message with :func:`~meepo_postgres.pgoutput.read_tuple` and the
plan's methods, the reference this module must agree with event for event (values, their
types, images, keys). A converter that raises :class:`~meepo_postgres.values.ValueTooDeep`
raises it from here without its column: the caller decodes that message the reference
way too, which names the column.

The generated source holds no text from the server as code: column names appear as
``repr()`` literals, every other name is generated.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from meepo_core import UNCHANGED, RowEvent

from .pgoutput import DELETE, INSERT, KEY_TUPLE, NEW_TUPLE, UPDATE
from .relations import TablePlan
from .values import (
    Converter,
    to_bool,
    to_date,
    to_time,
    to_timestamp,
    to_timestamptz,
    to_timetz,
)

#: ``decode(data, position, committed_at, txid, sequence) -> RowEvent`` for one message
#: kind of one relation; raises :class:`Fallback` for shapes it does not handle.
RowDecoder = Callable[[bytes, dict[str, str], Any, "str | None", int], RowEvent]


class Fallback(Exception):
    """The message is not of a shape the generated decoder handles: decode it with
    :func:`~meepo_postgres.pgoutput.read_tuple`."""


#: Conversions written out, by converter: the expression of the value from ``raw`` (the
#: value's bytes). ``int`` and ``float`` take bytes as they take text.
_FROM_BYTES: dict[Any, str] = {int: "int(raw)", float: "float(raw)", to_bool: "raw == b't'"}
#: Conversions that keep the text when Python cannot hold the value (the converter's own
#: ``try``/``except ValueError``), by converter: the parsing function's generated name.
_OR_TEXT: dict[Any, str] = {
    to_date: "_date_iso", to_time: "_time_iso", to_timetz: "_time_iso",
    to_timestamp: "_datetime_iso", to_timestamptz: "_datetime_iso",
}

_ACTIONS = {INSERT: "write", UPDATE: "update", DELETE: "delete"}


def _value_lines(index: int, converter: Converter | None) -> list[str]:
    """The lines that set ``v{index}`` from a text value between ``start`` and ``pos``."""
    target = f"v{index}"
    if converter is None:
        return [f"{target} = data[start:pos].decode()"]
    if converter in _FROM_BYTES:
        return ["raw = data[start:pos]", f"{target} = {_FROM_BYTES[converter]}"]
    if converter in _OR_TEXT:
        return [
            "text = data[start:pos].decode()",
            "try:",
            f"    {target} = {_OR_TEXT[converter]}(text)",
            "except ValueError:",
            f"    {target} = text",
        ]
    if converter is Decimal:
        return [f"{target} = _Decimal(data[start:pos].decode())"]
    return [f"{target} = c{index}(data[start:pos].decode())"]


def _column_lines(index: int, converter: Converter | None) -> list[str]:
    """One TupleData entry at ``pos`` into ``v{index}``, ``pos`` moved past it (as
    :func:`~meepo_postgres.pgoutput.read_tuple` reads it)."""
    value = ["    " + line for line in _value_lines(index, converter)]
    return [
        "kind = data[pos]",
        "if kind == 116:",  # t: text
        "    start = pos + 5",
        "    pos = start + _unpack(data, pos + 1)[0]",
        *value,
        "elif kind == 110:",  # n: NULL
        f"    v{index} = None",
        "    pos += 1",
        "elif kind == 117:",  # u: unchanged TOAST
        f"    v{index} = _UNCHANGED",
        "    pos += 1",
        "else:",
        "    raise _Fallback",
    ]


def _image(plan: TablePlan, indexes: Any) -> str:
    shown = [i for i in indexes if plan.visible is None or i in plan.visible]
    return "{" + ", ".join(f"{plan.columns[i]!r}: v{i}" for i in shown) + "}"


def _pk(plan: TablePlan) -> str:
    key = plan.key
    if len(key) == 1:
        return f"v{key[0]}"
    if not key:
        key = plan.visible if plan.visible is not None else tuple(range(len(plan.columns)))
    return "(" + "".join(f"v{i}, " for i in key) + ")"


def compile_decoders(plan: TablePlan) -> dict[int, RowDecoder]:
    """The generated decoders of a followed plan, by message kind (``INSERT``, ``UPDATE``,
    ``DELETE``). Events are those the reference decoding gives (see the module docstring);
    ``definition`` is the plan's, shared."""
    count = len(plan.columns)
    head = len(plan.columns).to_bytes(2, "big")
    body: list[str] = []
    for index, converter in enumerate(plan.converters):
        body += _column_lines(index, converter)
    everything = range(count)
    shapes = {  # kind: (the tuple's marker, before, after)
        INSERT: (NEW_TUPLE, "None", _image(plan, everything)),
        UPDATE: (NEW_TUPLE, _image(plan, plan.identity), _image(plan, everything)),
        DELETE: (KEY_TUPLE, _image(plan, plan.identity), "None"),
    }
    lines = []
    for kind, (marker, before, after) in shapes.items():
        lines += [
            f"def decode_{kind}(data, where, committed_at, txid, seq):",
            f"    if data[5:8] != {bytes((marker,)) + head!r}:",
            "        raise _Fallback",
            "    pos = 8",
            *["    " + line for line in body],
            f"    return _event(_schema, _table, {_ACTIONS[kind]!r}, {_pk(plan)}, {before}, "
            f"{after}, where, committed_at, txid, seq, _pk_columns, None, _definition)",
        ]
    namespace: dict[str, Any] = {
        "_unpack": struct.Struct(">I").unpack_from, "_UNCHANGED": UNCHANGED,
        "_Fallback": Fallback, "_event": RowEvent.trusted, "_Decimal": Decimal,
        "_date_iso": date.fromisoformat, "_time_iso": time.fromisoformat,
        "_datetime_iso": datetime.fromisoformat, "_schema": plan.schema,
        "_table": plan.table, "_pk_columns": plan.pk_columns, "_definition": plan.definition,
        **{f"c{i}": converter for i, converter in enumerate(plan.converters)},
    }
    text = "\n".join(lines) + "\n"
    exec(compile(text, f"<meepo pgoutput decoder for {plan.qualified}>", "exec"), namespace)
    return {kind: namespace[f"decode_{kind}"] for kind in shapes}
