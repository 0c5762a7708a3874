"""The ``debezium`` format: the envelope of a write, an update, a delete and a snapshot read
checked field by field against Debezium's documented MySQL change event, and the type
mapping the README documents."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from meepo_kafka.debezium import DebeziumFormat, debezium_value

from meepo_core import UNCHANGED, ColumnDefinition, RowEvent, TableDefinition

from .conftest import publish, read_topic

COMMITTED = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
WHERE = {"file": "binlog.000007", "pos": 4321}
BASE = (7 << 32) | 4321  # the mysql source's sequence of the first row of that rows event
ROW_1 = {"id": 1, "name": "Anne", "email": "annek@noanswer.org"}
ROW_2 = {"id": 1, "name": "Anne Marie", "email": "annek@noanswer.org"}


def change(action: Any, before: Any, after: Any, *, row: int = 0, txid: str | None = "0-1-42",
           position: Any = WHERE) -> RowEvent:
    return RowEvent("inventory", "customers", action, 1, before, after, position, COMMITTED,
                    txid, BASE + row if position else None, ("id",))


class AnyVersion:
    """Equal to any ``meepo-kafka X.Y.Z`` version string."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.startswith("meepo-kafka")


VERSION = AnyVersion()


def source_block(snapshot: str = "false", row: int = 0, gtid: str | None = "0-1-42") -> Any:
    """Debezium's documented MySQL ``source`` fields, with meepo's values."""
    return {"version": VERSION, "connector": "mysql", "name": "dbserver1",
            "ts_ms": 1772600767000, "snapshot": snapshot, "db": "inventory",
            "table": "customers", "server_id": 0, "gtid": gtid, "file": "binlog.000007",
            "pos": 4321, "row": row, "thread": None, "query": None}


def test_envelope_of_write_update_delete_and_read(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    topic = make_topic(1)
    began = time.time() * 1000
    publish(tmp_path, bootstrap, [
        change("write", None, ROW_1),
        change("update", ROW_1, ROW_2, row=1),
        change("delete", ROW_2, None, row=2, txid="binlog.000007:4000"),
        change("read", None, ROW_2, txid=None, position=None),
    ], topic=topic, format="debezium", server_name="dbserver1")
    records = read_topic(bootstrap, topic)
    assert [r.key for r in records] == [b'{"id":1}'] * 5
    assert records[3].value is None  # the tombstone: Debezium's tombstones.on.delete is on
    values = [r.json() for r in records[:3] + records[4:]]
    for value in values:
        assert began - 1000 <= value.pop("ts_ms") <= time.time() * 1000 + 1000
    assert values[0] == {"before": None, "after": ROW_1, "source": source_block(), "op": "c",
                         "transaction": None}
    assert values[1] == {"before": ROW_1, "after": ROW_2, "source": source_block(row=1),
                         "op": "u", "transaction": None}
    assert values[2] == {"before": ROW_2, "after": None,
                         "source": source_block(row=2, gtid=None), "op": "d",
                         "transaction": None}
    # a snapshot row: no binlog coordinates, so the common fields only
    assert values[3] == {"before": None, "after": ROW_2, "op": "r", "transaction": None,
                         "source": {"version": VERSION, "connector": "meepo",
                                    "name": "dbserver1", "ts_ms": 1772600767000,
                                    "snapshot": "true", "db": "inventory",
                                    "table": "customers"}}


def test_a_key_change_is_a_delete_and_a_create_as_in_debezium(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    topic = make_topic(1)
    publish(tmp_path, bootstrap, [
        RowEvent("shop", "t", "update", 2, {"id": 1}, {"id": 2}, WHERE, COMMITTED, None, BASE,
                 ("id",))], pipeline="orders", topic=topic, format="debezium", tombstones=True)
    records = read_topic(bootstrap, topic)
    assert [(r.key, r.json() and r.json()["op"]) for r in records] == [
        (b'{"id":1}', "d"), (b'{"id":1}', None), (b'{"id":2}', "c")]
    assert records[0].json()["source"]["name"] == "orders"  # the pipeline name by default


@pytest.mark.parametrize(("value", "expected"), [
    (Decimal("-12345.000100"), "-12345.000100"),
    (date(2026, 1, 1), 20454),
    (date(1969, 12, 31), -1),
    (datetime(2026, 1, 1, 0, 0, 0, 123456), 1767225600123456),
    (datetime(2026, 1, 1, 1, 0, 0, 5, tzinfo=UTC), "2026-01-01T01:00:00.000005Z"),
    (datetime(2026, 1, 1, 1, 0, tzinfo=UTC), "2026-01-01T01:00:00Z"),
    (timedelta(hours=-838, minutes=-59, seconds=-59), -3020399000000),
    (time_of_day(1, 2, 3, 4), 3723000004),
    (b"\x00\xff", "AP8="),
    ({"blue", "red"}, "blue,red"),
    (set(), ""),
    ({"a": [1, None]}, '{"a":[1,null]}'),
    ([1, "x"], '[1,"x"]'),
    (2**64 - 1, 18446744073709551615),
    (UNCHANGED, "__debezium_unavailable_value"),
    ("naïve", "naïve"),
    (True, True),
    (None, None),
    (0.25, 0.25),
    (math.inf, "Infinity"),
])
def test_type_mapping(value: Any, expected: Any) -> None:
    assert debezium_value(value) == expected


def test_nan_is_written_as_a_string() -> None:
    assert debezium_value(math.nan) == "NaN"


def test_postgresql_changes_carry_lsn_and_transaction_id() -> None:
    change = RowEvent("public", "users", "update", 5, {"id": 5}, {"id": 5, "v": UNCHANGED},
                      {"lsn": "16/B374D848"}, COMMITTED, "742", 99, ("id",))
    value = json.loads(DebeziumFormat("pg").value(change))
    assert value["after"] == {"id": 5, "v": "__debezium_unavailable_value"}
    assert value["source"] == {
        "version": VERSION, "connector": "postgresql", "name": "pg", "ts_ms": 1772600767000,
        "snapshot": "false", "db": "public", "table": "users", "schema": "public",
        "txId": 742, "lsn": (0x16 << 32) | 0xB374D848}


DEFINED = TableDefinition(
    (ColumnDefinition("id", "integer", nullable=False), ColumnDefinition("spot", "point")),
    ("id",), dialect="postgresql", database="shop", schema="public", table="items",
    replica_identity="default")


def test_skipped_operations_are_left_out_and_counted(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    topic = make_topic(1)
    definition = TableDefinition((ColumnDefinition("id", "integer", nullable=False),),
                                 ("id",), dialect="postgresql", database="shop",
                                 schema="public", table="items", replica_identity="default")
    sink = publish(tmp_path, bootstrap, [
        RowEvent("public", "items", action, 1, {"id": 1} if action != "write" else None,
                 {"id": 1} if action != "delete" else None, {"lsn": "0/10"}, COMMITTED, "7",
                 None, ("id",), definition=definition)
        for action in ("write", "update", "delete")],
        topic=topic, format="debezium", schemas=False,
        debezium={"skipped_operations": "c,u", "tombstones_on_delete": False})
    assert [r.json()["op"] for r in read_topic(bootstrap, topic)] == ["d"]
    assert sink.context is not None
    failures = sink.context.metrics.failures
    assert (failures[("sinks[0] kafka", "skipped_write")],
            failures[("sinks[0] kafka", "skipped_update")]) == (1, 1)


def test_a_column_type_without_a_mapping_is_dead_lettered_naming_it(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    topic = make_topic(1)
    sink = publish(tmp_path, bootstrap, [RowEvent(
        "public", "items", "write", 1, None, {"id": 1, "spot": "(1,2)"}, {"lsn": "0/10"},
        COMMITTED, "7", None, ("id",), definition=DEFINED)], topic=topic, format="debezium")
    assert read_topic(bootstrap, topic) == []
    assert sink.context is not None
    sink.context.dead_letters.sync()
    (dead,) = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert "column 'spot' has type 'point'" in dead["error"]


def test_events_without_definitions_are_schemaless_and_say_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dbz = DebeziumFormat("pg")
    first = json.loads(dbz.value(change("write", None, ROW_1)))
    dbz.value(change("update", ROW_1, ROW_2))
    assert "schema" not in first and first["op"] == "c"
    warnings = [r.getMessage() for r in caplog.records if "no column definitions" in
                r.getMessage()]
    assert warnings == ["events of inventory.customers carry no column definitions (the "
                        "postgres and mysql sources' do): written in the schemaless Debezium "
                        "envelope, without the JSON converter's schema"]
