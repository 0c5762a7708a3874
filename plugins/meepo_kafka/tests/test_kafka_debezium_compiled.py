"""The generated row writers and the per-transaction templates of the Debezium codecs
write what the plain construction writes: every column's converter, filler and
placeholder through the generated function, and whole messages (PostgreSQL and MySQL,
schemas on and off) equal to ``orjson.dumps`` of the envelope built from the codec's
``row`` and ``source``, whatever the names hold (quotes, ``%``, characters outside the
Basic Multilingual Plane)."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any, Literal

import orjson
import pytest
from meepo_kafka import debezium_mysql
from meepo_kafka.debezium_codec import OPS, TableCodec
from meepo_kafka.debezium_compiled import compile_row, source_template
from meepo_kafka.debezium_mysql_codec import MySQLTableCodec
from meepo_kafka.debezium_types import field_codec
from meepo_kafka.java_json import escape_supplementary

from meepo_core import UNCHANGED, ColumnDefinition, RowEvent, TableDefinition

ODD = "we'ird \"na%me\\\n🚀"
PG_COLUMNS = (
    ColumnDefinition("id", "integer", nullable=False),
    ColumnDefinition(ODD, "text", nullable=False),
    ColumnDefinition("price", "numeric(10,2)", nullable=False, precision=10, scale=2),
    ColumnDefinition("qty", "integer"),
    ColumnDefinition("at", "timestamp without time zone"),
    ColumnDefinition("note", "text"),
    ColumnDefinition("blob", "bytea", nullable=False),
)
MYSQL_COLUMNS = (
    ColumnDefinition("id", "int(11)", nullable=False),
    ColumnDefinition(ODD, "varchar(20)"),
    ColumnDefinition("price", "decimal(10,2)", precision=10, scale=2),
    ColumnDefinition("at", "datetime"),
    ColumnDefinition("n", "int(11)", nullable=False, default="7"),
)
START = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
NOW = 1_765_000_000_123_456_789
_MISSING = object()
Action = Literal["write", "update", "delete", "read"]


class _Frozen(datetime):
    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _Frozen:
        return cls(2026, 3, 4, 5, 6, 7, 891_000, tzinfo=tz)


def _reference_row(codec: TableCodec, image: Mapping[str, Any] | None) -> Any:
    """The plain loop the generated function replaces."""
    if image is None:
        return None
    out: dict[str, Any] = {}
    for field in codec.fields:
        value = image.get(field.name, _MISSING)
        if value is None:
            out[field.name] = None
        elif value is _MISSING:
            out[field.name] = field.filler
        elif value is UNCHANGED:
            out[field.name] = field.unavailable
        else:
            out[field.name] = value if field.convert is None else field.convert(value)
    return out


def _value(rng: random.Random, column: ColumnDefinition) -> Any:
    if rng.random() < 0.15:
        return None
    kind = column.type
    if "int" in kind:
        return rng.randint(-2**31, 2**31 - 1)
    if kind.startswith(("numeric", "decimal")):
        return Decimal(rng.randint(-10**8, 10**8)).scaleb(-2)
    if kind.startswith(("timestamp", "datetime")):
        return datetime(2000, 1, 1) + timedelta(microseconds=rng.randint(0, 10**16))
    if kind == "bytea":
        return rng.randbytes(rng.randint(0, 9))
    return rng.choice(["", "x", ODD, "%d%s%%", "é"])


def _image(rng: random.Random, columns: tuple[ColumnDefinition, ...]) -> dict[str, Any]:
    image = {}
    for column in columns:
        draw = rng.random()
        if draw < 0.1:
            continue  # missing: the filler
        image[column.name] = UNCHANGED if draw < 0.2 else _value(rng, column)
    return image


def test_the_generated_row_writes_what_the_loop_writes() -> None:
    rng = random.Random(7)
    definition = TableDefinition(PG_COLUMNS, ("id",), dialect="postgresql")
    codec = TableCodec(definition, "pg", "v", True)
    assert codec.row(None) is None
    for _ in range(2000):
        image = _image(rng, PG_COLUMNS)
        assert codec.row(image) == _reference_row(codec, image)
        assert list(codec.row(image) or ()) == [c.name for c in PG_COLUMNS]


def test_a_row_without_columns_and_a_name_that_is_code_stay_data() -> None:
    assert compile_row([])({"a": 1}) == {}
    name = "x'] ; import os ; a = ['"
    row = compile_row([field_codec(ColumnDefinition(name, "text"))])
    assert row({name: "v"}) == {name: "v"}


def test_a_source_template_escapes_percent_signs() -> None:
    template = source_template({"a": "100%", "n": 0, "b": "%s"}, (("n", b"%d"),))
    assert template % 42 == b'{"a":"100%","n":42,"b":"%s"}'


def _events(dialect: str, definition: TableDefinition) -> list[RowEvent]:
    rng = random.Random(dialect)
    columns = definition.columns
    events = []
    for index in range(300):
        action: Action = rng.choice(["write", "update", "delete", "read"])
        before = None if action in ("write", "read") else _image(rng, columns)
        after = None if action == "delete" else _image(rng, columns)
        tx = index // 7
        if dialect == "postgresql":
            position: Any = rng.choice([{"lsn": f"{tx:X}/{index * 40:X}"}, {"lsn": "bad"},
                                        {"lsn": f"{tx:X}/{index * 40:X}"}, None])
            sequence = None
        else:
            position = rng.choice([{"file": "binlog.000003", "pos": 4 + tx * 90},
                                   {"file": "binlog.000004", "pos": 4 + tx * 90}, {}])
            sequence = rng.choice([(3 << 32 | 4 + tx * 90) + index % 3, None, index])
        events.append(RowEvent(
            "shop", "items", action, rng.randint(-5, 5), before, after, position,
            START + timedelta(seconds=tx), rng.choice([str(tx), f"0-1-{tx}", None]),
            sequence, ("id",), definition=definition))
    return events


@pytest.mark.parametrize("schemas", [True, False])
@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])
def test_messages_equal_the_envelope_dumped_whole(dialect: str, schemas: bool,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    columns = PG_COLUMNS if dialect == "postgresql" else MYSQL_COLUMNS
    kind = TableCodec if dialect == "postgresql" else MySQLTableCodec
    definition = TableDefinition(columns, ("id",), dialect=dialect, database="shop🚀",
                                 schema="public", table="it%ems",
                                 replica_identity=random.Random(dialect).choice(
                                     ["default", "full"]))
    monkeypatch.setattr(time, "time_ns", lambda: NOW)
    monkeypatch.setattr(debezium_mysql, "datetime", _Frozen)  # a MySQL read's ts_ms
    codec = kind(definition, "serv%er 🚀", "v1%", schemas)
    reference = kind(definition, "serv%er 🚀", "v1%", schemas)
    for event in _events(dialect, definition):
        transaction = None if event.txid is None else {
            "id": f"{event.txid}:1", "total_order": 1, "data_collection_order": 1}
        action = event.action
        payload = {
            "before": None if action == "update" and not reference.full_identity
            else reference.row(event.before),
            "after": reference.row(event.after), "source": reference.source(event),
            "transaction": transaction, "op": OPS[action], "ts_ms": NOW // 1_000_000,
            "ts_us": NOW // 1000, "ts_ns": NOW}
        document = {"schema": reference.value_schema, "payload": payload} if schemas \
            else payload
        expected = orjson.dumps(document)
        if dialect != "postgresql":
            expected = escape_supplementary(expected)
        assert codec.value(event, transaction) == expected, event
        plain = orjson.dumps({"schema": reference.key_schema, "payload": {"id": event.pk}}
                             if schemas else {"id": event.pk})
        assert codec.key(event.pk) == (plain if dialect == "postgresql"
                                       else escape_supplementary(plain))
