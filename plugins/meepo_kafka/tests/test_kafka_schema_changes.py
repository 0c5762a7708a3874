"""Schema changes through the ``kafka`` sink on a real Kafka API server (noida-db): the
Debezium format's schema change record on the schema change topic, nothing for PostgreSQL
changes (as Debezium), truncates as Debezium's ``skipped_operations`` says, and under
``exactly_once`` the schema change messages (both formats) inside the batch's transaction,
so a replay after an unfinished transaction leaves exactly one visible to ``read_committed``
readers."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from meepo_kafka.debezium_schema_changes import schema_change_record
from meepo_kafka.kafka_sink import KafkaSink

from meepo_core import Batch, ColumnDefinition, Options, RowEvent, SchemaChange, TableDefinition
from meepo_core.testing import make_context

from .conftest import CLIENT_LOG, read_topic, unique

STAMP = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
BINLOG = {"file": "mysql-bin.000002", "pos": 900}
BEFORE = TableDefinition((ColumnDefinition("id", "int(11)", False),), ("id",),
                         charset="utf8mb4")
AFTER = TableDefinition((ColumnDefinition("id", "int(11)", False),
                         ColumnDefinition("note", "varchar(20)", charset="utf8mb4")), ("id",),
                        charset="utf8mb4")


def row(pk: int, sequence: int, position: Any = None) -> RowEvent:
    return RowEvent("shop", "items", "write", pk, None, {"id": pk}, position, STAMP,
                    "0-1-9", sequence, ("id",))


def alter(position: Any = BINLOG, kind: Any = "alter") -> SchemaChange:
    return SchemaChange("shop", "items", kind, BEFORE, AFTER,
                        ddl="ALTER TABLE items ADD note varchar(20)", position=position,
                        committed_at=STAMP, txid="0-1-8", sequence=2)


def sink_for(tmp_path: Path, options: dict[str, Any], pipeline: str = "orders") -> KafkaSink:
    sink = KafkaSink.from_options(Options(dict(options), "sinks[0]", tmp_path))
    if sink.claims_position:
        sink.claim_position(pipeline)
    sink.open(make_context(tmp_path, pipeline))
    return sink


def payload(message: dict[str, Any]) -> Any:
    """A Debezium message's payload, with or without the JSON converter's schema (rows of
    events without column definitions are written schemaless)."""
    return message["payload"] if set(message) == {"schema", "payload"} else message


def without_times(document: Any) -> Any:
    """A record's JSON with its two times of capture (``ts_ms`` of the value) zeroed."""
    if isinstance(document, dict):
        return {k: 0 if k == "ts_ms" and isinstance(v, int) and "source" in document
                else without_times(v) for k, v in document.items()}
    if isinstance(document, list):
        return [without_times(item) for item in document]
    return document


def test_debezium_format_writes_the_schema_change_record_on_the_schema_change_topic(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    server = unique("dbz")
    schema_topic = make_topic(1, name=server)
    table_topic = make_topic(1)
    sink = sink_for(tmp_path, {"type": "kafka", "bootstrap_servers": bootstrap,
                               "topic": table_topic, "format": "debezium",
                               "server_name": server})
    rows = (row(1, 1, BINLOG), row(2, 3, BINLOG))
    postgres = alter({"lsn": "0/16B3748"})
    try:
        sink.apply(Batch(rows, 1, schema_changes=((1, alter()), (1, postgres))))
    finally:
        sink.close()
    (record,) = read_topic(bootstrap, schema_topic)  # the PostgreSQL change: nothing
    assert record.partition == 0
    made = schema_change_record(alter(), server, version=getattr(sink.format, "version", ""),
                                now_ms=0)
    assert made is not None
    key, value = made
    assert record.key == key
    assert without_times(json.loads(record.value or b"")) == without_times(json.loads(value))
    assert json.loads(record.value or b"")["payload"]["ts_ms"] > 0
    headers = dict(record.header_items)
    assert json.loads(headers["__debezium.context.connectorName"] or b"")["payload"] == "mysql"
    assert json.loads(headers["__debezium.context.connectorLogicalName"] or b"")[
        "payload"] == server
    assert headers["meepo.sequence"] == b"2"
    assert json.loads(headers["meepo.position"] or b"") == BINLOG
    assert [payload(json.loads(r.value or b""))["after"]["id"]
            for r in read_topic(bootstrap, table_topic)] == [1, 2]
    assert sink.context is not None and sink.context.metrics.failures == {}


def test_a_truncate_is_left_out_by_default_and_written_as_t_when_asked(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    table_topic = make_topic(1)
    base = {"type": "kafka", "bootstrap_servers": bootstrap, "topic": table_topic,
            "format": "debezium", "server_name": unique("dbz")}
    truncate = alter(kind="truncate")
    sink = sink_for(tmp_path, base)
    try:
        sink.apply(Batch((row(1, 1, BINLOG),), 1, schema_changes=((1, truncate),)))
    finally:
        sink.close()
    assert sink.context is not None
    assert sink.context.metrics.failures[(sink.label, "skipped_truncate")] == 1
    assert len(read_topic(bootstrap, table_topic)) == 1
    sink = sink_for(tmp_path, {**base, "debezium": {"skipped_operations": "none"}})
    try:
        sink.apply(Batch((), 2, schema_changes=((0, truncate),)))
    finally:
        sink.close()
    records = read_topic(bootstrap, table_topic)
    assert len(records) == 2 and records[1].key is None
    message = json.loads(records[1].value or b"")
    assert (message["op"], message["before"], message["after"]) == ("t", None, None)
    assert (message["source"]["db"], message["source"]["table"]) == ("shop", "items")


def read_values(bootstrap: str, topic: str, isolation: str) -> list[dict[str, Any]]:
    """Every message value a ``isolation`` reader sees in ``topic`` (one partition)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reader"),
                         "enable.auto.commit": False, "isolation.level": isolation,
                         "logger": CLIENT_LOG})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10,
                                                   cached=False)
        if high <= low:  # for read_committed: the stable offset, before any open transaction
            return []
        consumer.assign([TopicPartition(topic, 0, low)])
        values: list[dict[str, Any]] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                values.append(json.loads(message.value() or b"null"))
            (position,) = consumer.position([TopicPartition(topic, 0)])
            if position.offset >= high:
                return values
        raise AssertionError(f"could not read {topic} to offset {high}")
    finally:
        consumer.close()


@pytest.mark.parametrize("message_format", ["meepo", "debezium"])
def test_under_exactly_once_a_replayed_schema_change_is_seen_once(
    tmp_path: Path, bootstrap: str, make_topic: Any, message_format: str
) -> None:
    """The batch with a schema change is sent in a transaction that never commits (the
    process dies); the next instance fences it (aborting it) and sends the batch again:
    ``read_committed`` readers see the schema change once, in its place."""
    server = unique("dbz")
    table_topic = make_topic(1)
    schema_topic = make_topic(1, name=server) if message_format == "debezium" else table_topic
    options = {"type": "kafka", "bootstrap_servers": bootstrap, "topic": table_topic,
               "format": message_format, "server_name": server, "exactly_once": True,
               "transactional_id": unique("tx"), "positions_topic": unique("positions")}
    if message_format == "meepo":
        del options["server_name"]
    batch = Batch((row(1, 1, BINLOG), row(2, 3, BINLOG)), {"file": "f.1", "pos": 5},
                  schema_changes=((1, alter()),))
    first = sink_for(tmp_path, options)
    assert first.producer is not None
    first.producer.begin_transaction()
    first.send_batch(batch)  # sent and acknowledged, never committed
    assert len(read_values(bootstrap, schema_topic, "read_uncommitted")) == (
        3 if message_format == "meepo" else 1)
    assert read_values(bootstrap, schema_topic, "read_committed") == []

    second = sink_for(tmp_path, options)  # fences the first: its transaction is aborted
    try:
        second.apply(batch)
    finally:
        second.close()
    committed = read_values(bootstrap, schema_topic, "read_committed")
    if message_format == "meepo":
        assert [v["action"] for v in committed] == ["write", "schema", "write"]
        assert committed[1]["ddl"] == "ALTER TABLE items ADD note varchar(20)"
    else:
        assert [v["payload"]["ddl"] for v in committed] == [
            "ALTER TABLE items ADD note varchar(20)"]
        rows = read_values(bootstrap, table_topic, "read_committed")
        assert [payload(v)["after"]["id"] for v in rows] == [1, 2]
    assert second.stored_position("orders") == {"file": "f.1", "pos": 5}


def test_under_exactly_once_a_refused_row_leaves_the_schema_change_in_the_batch(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    """A row the cluster refuses aborts the transaction; the batch sent again without it
    still carries the schema change."""
    topic = make_topic(1)
    options = {"type": "kafka", "bootstrap_servers": bootstrap, "topic": topic,
               "exactly_once": True, "transactional_id": unique("tx"),
               "positions_topic": unique("positions"),
               "config": {"message.max.bytes": 2000}}
    big = RowEvent("shop", "items", "write", 9, None, {"id": 9, "blob": "x" * 5000}, None,
                   STAMP, None, 4, ("id",))
    sink = sink_for(tmp_path, options)
    try:
        sink.apply(Batch((row(1, 1), big, row(2, 5)), {"lsn": 5},
                         schema_changes=((2, alter(None)),)))
    finally:
        sink.close()
    committed = read_values(bootstrap, topic, "read_committed")
    assert [(v["action"], v.get("pk")) for v in committed] == [
        ("write", 1), ("schema", None), ("write", 2)]
    assert [event.pk for event in sink.refused] == [9]


def test_check_names_a_missing_schema_change_topic_when_auto_creation_is_off(
    tmp_path: Path, bootstrap: str
) -> None:
    from confluent_kafka.admin import AdminClient
    from meepo_kafka.cluster import auto_create, fetch_metadata

    missing = unique("dbz")
    sink = KafkaSink.from_options(Options(
        {"type": "kafka", "bootstrap_servers": bootstrap, "format": "debezium",
         "server_name": missing}, "sinks[0]", tmp_path))
    problems = sink.check()
    client = AdminClient({"bootstrap.servers": bootstrap})
    if auto_create(client, fetch_metadata(client, bootstrap, "k")) == "true":
        assert problems == []  # created on the first schema change, as any topic
    else:
        assert len(problems) == 1 and missing in problems[0]


def test_a_postgres_schema_change_shows_only_in_the_next_messages_schema(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    """As Debezium's PostgreSQL connector: no schema change record anywhere; the change
    event after an ``ADD COLUMN`` declares the new column in its schema."""
    server = unique("dbz")
    schema_topic = make_topic(1, name=server)
    topic = make_topic(1)
    where = {"dialect": "postgresql", "database": "shop", "schema": "public",
             "table": "items", "replica_identity": "default"}
    old = TableDefinition((ColumnDefinition("id", "integer", nullable=False),), ("id",),
                          **where)
    new = TableDefinition((ColumnDefinition("id", "integer", nullable=False),
                           ColumnDefinition("note", "text")), ("id",), **where)

    def write(pk: int, definition: TableDefinition) -> RowEvent:
        after = {"id": pk, "note": "n"} if definition is new else {"id": pk}
        return RowEvent("public", "items", "write", pk, None, after, {"lsn": "0/10"}, STAMP,
                        "7", pk, ("id",), definition=definition)

    added = SchemaChange("public", "items", "alter", old, new, position={"lsn": "0/10"},
                         committed_at=STAMP)
    sink = sink_for(tmp_path, {"type": "kafka", "bootstrap_servers": bootstrap,
                               "topic": topic, "format": "debezium", "server_name": server})
    try:
        sink.apply(Batch((write(1, old), write(2, new)), 1, schema_changes=((1, added),)))
    finally:
        sink.close()
    assert read_values(bootstrap, schema_topic, "read_uncommitted") == []
    first, second = read_values(bootstrap, topic, "read_uncommitted")

    def after_fields(message: dict[str, Any]) -> list[str]:
        (after,) = [f for f in message["schema"]["fields"] if f["field"] == "after"]
        return [f["field"] for f in after["fields"]]

    assert after_fields(first) == ["id"] and after_fields(second) == ["id", "note"]
    assert second["payload"]["after"] == {"id": 2, "note": "n"}
    assert sink.context is not None and sink.context.metrics.failures == {}


def test_a_truncate_after_rows_with_definitions_has_their_envelope_schema(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    topic = make_topic(1)
    definition = TableDefinition((ColumnDefinition("id", "integer", nullable=False),),
                                 ("id",), dialect="postgresql", database="shop",
                                 schema="public", table="items")
    written = RowEvent("shop", "items", "write", 1, None, {"id": 1}, BINLOG, STAMP, None, 1,
                       ("id",), definition=definition)
    sink = sink_for(tmp_path, {"type": "kafka", "bootstrap_servers": bootstrap,
                               "topic": topic, "format": "debezium",
                               "server_name": unique("dbz"),
                               "debezium": {"skipped_operations": "none"}})
    try:
        sink.apply(Batch((written,), 1, schema_changes=((1, alter(kind="truncate")),)))
    finally:
        sink.close()
    row, truncate = [json.loads(r.value or b"") for r in read_topic(bootstrap, topic)]
    assert truncate["schema"] == row["schema"]
    assert [truncate["payload"][k] for k in ("before", "after", "op", "transaction")] == [
        None, None, "t", None]
    assert list(truncate["payload"]) == list(row["payload"])
