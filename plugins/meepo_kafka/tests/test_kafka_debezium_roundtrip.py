"""The way back: a meepo event of the postgres source, written in Debezium's format and
read by the ``kafka`` source's decoder, is the same event again, for every PostgreSQL type
the format maps exactly (properties over generated rows, with schemas on and off for the
key; values need the schema to know their types).

Not round trips by design (the README's type table says why): numeric NaN and infinities
(Debezium writes null), money (read back as a Decimal), bit(1) (a boolean), a time with
time zone (back in UTC, the same time without its offset),
bit varying's leading zeros, intervals with months (Debezium's months are 30.4375 days),
and the before image of an update under REPLICA IDENTITY DEFAULT (Debezium writes null);
the tables here use REPLICA IDENTITY FULL.
"""

from __future__ import annotations

import json
import math
import struct
from datetime import UTC, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from meepo_kafka.debezium import DebeziumFormat
from meepo_kafka.formats import NotARowChange

from meepo_core import UNCHANGED, ColumnDefinition, RowEvent, TableDefinition

from .debezium_golden import GOLDEN

SMALL = st.integers(-(2**15), 2**15 - 1)
TEXT = st.text().filter(lambda t: t != "__debezium_unavailable_value")
NAIVE = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=4)


def as_postgres_prints_real(value: float) -> float:
    """A real as meepo's postgres source gives it: PostgreSQL (12+) prints the shortest
    decimal that reads back as the same float32, and the source parses that text."""
    if not math.isfinite(value):
        return value
    single = struct.unpack("f", struct.pack("f", value))[0]
    for places in range(1, 10):
        text = f"{single:.{places}g}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == single:
            return float(text)
    return float(single)


def millis(value: Any) -> Any:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


#: column -> (definition, values meepo's postgres source gives for it)
COLUMNS: dict[str, tuple[ColumnDefinition, st.SearchStrategy[Any]]] = {
    "c_int2": (ColumnDefinition("c_int2", "smallint"), SMALL),
    "c_int4": (ColumnDefinition("c_int4", "integer"), st.integers(-(2**31), 2**31 - 1)),
    "c_int8": (ColumnDefinition("c_int8", "bigint"), st.integers(-(2**63), 2**63 - 1)),
    "c_num": (ColumnDefinition("c_num", "numeric", precision=12, scale=3),
              st.decimals(min_value=-(10**9), max_value=10**9, places=3)),
    "c_num_free": (ColumnDefinition("c_num_free", "numeric"),
                   st.decimals(allow_nan=False, allow_infinity=False)),
    "c_float4": (ColumnDefinition("c_float4", "real"),
                 st.floats(width=32).map(as_postgres_prints_real)),
    "c_float8": (ColumnDefinition("c_float8", "double precision"), st.floats()),
    "c_text": (ColumnDefinition("c_text", "text"), TEXT),
    "c_bytea": (ColumnDefinition("c_bytea", "bytea"),
                st.binary().filter(lambda b: b != b"__debezium_unavailable_value")),
    "c_bool": (ColumnDefinition("c_bool", "boolean"), st.booleans()),
    "c_date": (ColumnDefinition("c_date", "date"), st.dates()),
    "c_time0": (ColumnDefinition("c_time0", "time without time zone", precision=0),
                st.times().map(lambda t: t.replace(microsecond=0))),
    "c_time3": (ColumnDefinition("c_time3", "time without time zone", precision=3),
                st.times().map(millis)),
    "c_time6": (ColumnDefinition("c_time6", "time without time zone"), st.times()),
    "c_timetz": (ColumnDefinition("c_timetz", "time with time zone"),
                 st.times(timezones=OFFSETS)),
    "c_ts3": (ColumnDefinition("c_ts3", "timestamp without time zone", precision=3),
              NAIVE.map(millis)),
    "c_ts6": (ColumnDefinition("c_ts6", "timestamp without time zone"), NAIVE),
    "c_tstz": (ColumnDefinition("c_tstz", "timestamp with time zone"),
               NAIVE.map(lambda d: d.replace(tzinfo=UTC))),
    "c_interval": (ColumnDefinition("c_interval", "interval"),
                   st.timedeltas(min_value=timedelta(days=-36500),
                                 max_value=timedelta(days=36500))),
    "c_json": (ColumnDefinition("c_json", "jsonb"), JSON),
    "c_uuid": (ColumnDefinition("c_uuid", "uuid"), st.uuids().map(str)),
    "c_int_arr": (ColumnDefinition("c_int_arr", "integer[]", element="integer"),
                  st.lists(st.none() | st.integers(-(2**31), 2**31 - 1), max_size=4)),
    "c_text_arr": (ColumnDefinition("c_text_arr", "text[]", element="text"),
                   st.lists(st.none() | TEXT, max_size=4)),
    "c_bit8": (ColumnDefinition("c_bit8", "bit", length=8),
               st.text("01", min_size=8, max_size=8)),
    "c_mood": (ColumnDefinition("c_mood", "inv.mood", enum_values=("sad", "ok", "happy")),
               st.sampled_from(["sad", "ok", "happy"])),
    "c_inet": (ColumnDefinition("c_inet", "inet"), st.ip_addresses().map(str)),
}
KEY = ColumnDefinition("id", "integer", nullable=False)
DEFINITION = TableDefinition((KEY, *(column for column, _ in COLUMNS.values())), ("id",),
                             dialect="postgresql", database="shop", schema="inv",
                             table="types", replica_identity="full")
#: columns PostgreSQL can leave out of an update as unchanged TOAST values
TOASTABLE = ("c_text", "c_bytea", "c_json", "c_text_arr")


@st.composite
def rows(draw: st.DrawFn) -> dict[str, Any]:
    row: dict[str, Any] = {"id": draw(st.integers(-(2**31), 2**31 - 1))}
    for name, (_, values) in COLUMNS.items():
        row[name] = draw(st.none() | values)
    return row


def utc_micros(value: time) -> int:
    offset = value.utcoffset() or timedelta()
    naive = timedelta(hours=value.hour, minutes=value.minute, seconds=value.second,
                      microseconds=value.microsecond)
    return ((naive - offset) // timedelta(microseconds=1)) % 86_400_000_000


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN, and times with time zone equal when they are the same
    time in UTC (Debezium writes them in UTC: the offset is not kept)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, time) and isinstance(b, time) and b.tzinfo is not None:
        return a.tzinfo is UTC and utc_micros(a) == utc_micros(b)
    return type(a) is type(b) and a == b if not isinstance(a, list) else (
        isinstance(b, list) and len(a) == len(b)
        and all(same(x, y) for x, y in zip(a, b, strict=True)))


def assert_same_row(got: Any, wanted: Any) -> None:
    if wanted is None:
        assert got is None
        return
    assert list(got) == list(wanted)
    for column, value in wanted.items():
        assert same(got[column], value), f"{column}: {got[column]!r} != {value!r}"


@settings(max_examples=40, deadline=None)
@given(before=rows(), after=rows(), action=st.sampled_from(["write", "update", "delete", "read"]),
       schemas=st.booleans(), unchanged=st.sets(st.sampled_from(TOASTABLE)),
       micros=st.integers(0, 2**52))
def test_meepo_event_to_debezium_and_back_is_the_identity(
        before: dict[str, Any], after: dict[str, Any], action: str, schemas: bool,
        unchanged: set[str], micros: int) -> None:
    after["id"] = before["id"]
    if action == "update":
        after.update(dict.fromkeys(unchanged, UNCHANGED))
    event = RowEvent.trusted(
        "inv", "types", action, after["id"],  # type: ignore[arg-type]
        before if action in ("update", "delete") else None,
        None if action == "delete" else after, {"lsn": "0/16B3748"},
        datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros),
        "741", None, ("id",), definition=DEFINITION)
    dbz = DebeziumFormat("dbz", schemas=True)
    key = DebeziumFormat("dbz", schemas=schemas).key(event)
    back = dbz.decode(key, dbz.value(event), None)
    assert back is not None
    assert (back.schema, back.table, back.action, back.pk, back.pk_columns, back.txid) == (
        "inv", "types", action, event.pk, ("id",), "741")
    if action != "read":  # a snapshot row's source.ts_* is when it was read
        assert back.committed_at == event.committed_at
    assert_same_row(back.before, event.before)
    assert_same_row(back.after, event.after)


def test_values_the_format_writes_null_or_differently_are_documented() -> None:
    """The exceptions listed in the module docstring, as they come back."""
    columns = (KEY, ColumnDefinition("n", "numeric"), ColumnDefinition("m", "money"),
               ColumnDefinition("b", "bit", length=1), ColumnDefinition("i", "interval"))
    definition = TableDefinition(columns, ("id",), dialect="postgresql", database="shop",
                                 schema="inv", table="odd", replica_identity="full")
    event = RowEvent.trusted("inv", "odd", "write", 1, None,
                             {"id": 1, "n": Decimal("NaN"), "m": "$1,234.50", "b": "1",
                              "i": "P1M"}, None, datetime.now(UTC), None, None, ("id",),
                             definition=definition)
    dbz = DebeziumFormat("dbz")
    back = dbz.decode(dbz.key(event), dbz.value(event), None)
    assert back is not None and back.after == {
        "id": 1, "n": None, "m": Decimal("1234.50"), "b": True,
        "i": timedelta(microseconds=2_629_800_000_000)}


@pytest.mark.parametrize(("variant", "kind"), [("transactions", "transaction"),
                                               ("heartbeats", "heartbeat")])
def test_transaction_and_heartbeat_records_are_not_row_changes(variant: str,
                                                               kind: str) -> None:
    """Debezium's own transaction and heartbeat records (from the golden files) are
    recognised, so a worker subscribed to ``^dbz\\..*`` counts them instead of stopping."""
    records = [json.loads(line) for line in
               (GOLDEN / f"postgres_{variant}.jsonl").read_text().splitlines()]
    metadata = [r for r in records if r["topic"] == "dbz.transaction"
                or r["topic"].startswith("__debezium-heartbeat.")]
    assert metadata
    for record in metadata:
        with pytest.raises(NotARowChange, match=kind):
            DebeziumFormat("dbz").decode(record["key"].encode(), record["value"].encode(),
                                         None)
