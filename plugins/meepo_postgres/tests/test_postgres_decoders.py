"""The generated row decoders agree with the reference decoding (read_tuple and the plan's
methods), event for event, and hand every other shape back (no server needed)."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from meepo_postgres.decoders import Fallback, compile_decoders
from meepo_postgres.pgoutput import DELETE, INSERT, UPDATE, read_tuple
from meepo_postgres.relations import TablePlan
from meepo_postgres.values import (
    SCALARS,
    ArrayConverter,
    ValueTooDeep,
    to_bool,
    to_bytes,
    to_date,
    to_interval,
    to_json,
    to_time,
    to_timestamp,
    to_timestamptz,
    to_timetz,
)

from meepo_core import RowEvent
from meepo_core.events import Action

NAMES = ("id", "name", "price", "qty", "created", "active", "note", "day", "at", "tz",
         "ratio", "doc", "tags")
CONVERTERS = (int, None, Decimal, int, to_timestamp, to_bool, None, to_date, to_time,
              to_timestamptz, float, to_json, ArrayConverter(int))
ROW = ["7", "naïve ☃ name", "12.50", None, "2026-01-01 03:25:45.5", "t", "toast", "infinity",
       "24:00:00", "2026-01-01 00:00:00+00", "NaN", '{"a": [1, 1.10]}', "{1,NULL,3}"]
WHERE = {"lsn": "0/1"}
AT = datetime(2026, 1, 1, tzinfo=UTC)
OID = struct.pack(">I", 16384)


def entry(value: Any) -> bytes:
    if value is None:
        return b"n"
    if value == "UNCHANGED":
        return b"u"
    data: bytes = value.encode()
    return b"t" + struct.pack(">I", len(data)) + data


def tuple_data(values: list[Any]) -> bytes:
    return struct.pack(">H", len(values)) + b"".join(entry(v) for v in values)


def plan(**fields: Any) -> TablePlan:
    settings: dict[str, Any] = {"key": (0,), "identity": (0,), "pk_columns": ("id",), **fields}
    return TablePlan("public", "t", True, NAMES, CONVERTERS, **settings)


def reference(kind: int, data: bytes, p: TablePlan) -> RowEvent:
    """The stream's reference decoding of the shapes the generated code handles."""
    values = read_tuple(data, 6, p.converters)[0]
    action: Action = "write" if kind == INSERT else "update" if kind == UPDATE else "delete"
    before = None if kind == INSERT else p.identity_image(values)
    after = None if kind == DELETE else p.image(values)
    return RowEvent.trusted(p.schema, p.table, action, p.pk(values), before, after, WHERE, AT,
                            "9", 3, p.pk_columns, definition=p.definition)


PLANS = {
    "single key": plan(),
    "composite key": plan(key=(3, 0), identity=(0, 3), pk_columns=("qty", "id")),
    "no key": plan(key=(), identity=(), pk_columns=NAMES),
    "hidden columns": plan(visible=(0, 2, 6), key=(), identity=(0, 1)),
}


@pytest.mark.parametrize("name", PLANS)
@pytest.mark.parametrize("row", [ROW, [*ROW[:6], "UNCHANGED", *ROW[7:]], [ROW[0]] + [None] * 12])
def test_generated_decoders_give_the_reference_events(name: str, row: list[Any]) -> None:
    p = PLANS[name]
    decoders = compile_decoders(p)
    for kind, marker in ((INSERT, b"N"), (UPDATE, b"N"), (DELETE, b"K")):
        data = bytes((kind,)) + OID + marker + tuple_data(row)
        got = decoders[kind](data, WHERE, AT, "9", 3)
        assert repr(got) == repr(reference(kind, data, p))
        assert [type(v) for v in (got.after or got.before or {}).values()] == [
            type(v) for v in ((reference(kind, data, p).after or
                               reference(kind, data, p).before or {}).values())]


def test_every_scalar_converter_is_decoded_as_the_reference_does() -> None:
    names = tuple(f"c{i}" for i in range(len(SCALARS)))
    texts = {int: "42", float: "-Infinity", to_bool: "f", Decimal: "NaN", None: "x\x00y",
             to_bytes: "\\x00ff", to_json: "1.10", to_interval: "P1DT2H", to_time: "12:30:00",
             to_timetz: "12:30:00+02", to_timestamp: "2026-02-03 04:05:06",
             to_timestamptz: "2026-02-03 04:05:06+00", to_date: "2026-02-03"}
    converters = tuple(SCALARS.values())
    row = [texts[c] for c in converters]
    p = TablePlan("s", "t", True, names, converters, key=(), identity=(), pk_columns=names)
    data = b"I" + OID + b"N" + tuple_data(row)
    got = compile_decoders(p)[INSERT](data, WHERE, AT, "9", 3)
    assert repr(got) == repr(reference(INSERT, data, p))


def test_other_shapes_fall_back() -> None:
    decoders = compile_decoders(plan())
    key = b"K" + tuple_data([ROW[0]] + [None] * 12)
    new = b"N" + tuple_data(ROW)
    shapes = [
        (UPDATE, b"U" + OID + key + new),  # the key changed
        (UPDATE, b"U" + OID + b"O" + tuple_data(ROW) + new),  # REPLICA IDENTITY FULL
        (DELETE, b"D" + OID + b"O" + tuple_data(ROW)),
        (INSERT, b"I" + OID + b"N" + tuple_data(ROW[:12])),  # another column count
        (INSERT, b"I" + OID + b"N" + struct.pack(">H", 13) + b"b" + b"\0" * 10),  # binary
    ]
    for kind, data in shapes:
        with pytest.raises(Fallback):
            decoders[kind](data, WHERE, AT, "9", 3)


def test_a_value_too_deep_is_raised_for_the_reference_path_to_name() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    data = b"I" + OID + b"N" + tuple_data([*ROW[:11], deep, ROW[12]])
    with pytest.raises(ValueTooDeep):
        compile_decoders(plan())[INSERT](data, WHERE, AT, "9", 3)
    with pytest.raises(ValueTooDeep) as caught:
        read_tuple(data, 6, CONVERTERS)
    assert caught.value.column == 11


def test_column_names_are_literals_not_code() -> None:
    names = ("id", "x'): pass\nimport os  #", '"""')
    p = TablePlan("s", "t", True, names, (int, None, None), key=(0,), identity=(0,),
                  pk_columns=("id",))
    data = b"I" + OID + b"N" + tuple_data(["1", "a", "b"])
    assert compile_decoders(p)[INSERT](data, WHERE, AT, None, 1).after == dict(
        zip(names, [1, "a", "b"], strict=True))
