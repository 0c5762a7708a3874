"""The ``kafka`` sink against a real Kafka-protocol server: keys, partitions, order, the
meepo format's exactness, headers, tombstones, refusals and retries."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message
from meepo_kafka.format_choice import make_format
from meepo_kafka.kafka_sink import KafkaSink
from meepo_testkit.servers import KafkaServer

from meepo_core import UNCHANGED, Batch, Options, RowEvent, SinkError
from meepo_core.serialization import event_from_json, event_to_json
from meepo_core.testing import SinkContract, make_context

from .conftest import Record, publish, read_topic, unique

STAMP = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def event(action: Any, pk: Any, before: Any = None, after: Any = None, *, sequence: int = 1,
          table: str = "items", columns: tuple[str, ...] | None = ("id",),
          position: Any = None) -> RowEvent:
    return RowEvent("shop", table, action, pk, before, after, position, STAMP, "0-1-7",
                    sequence, columns)


def open_sink(tmp_path: Path, bootstrap: str, **options: Any) -> KafkaSink:
    sink = KafkaSink.from_options(Options({"type": "kafka", "bootstrap_servers": bootstrap,
                                           **options}, "sinks[0]", tmp_path))
    sink.open(make_context(tmp_path))
    return sink


def dead_letters(sink: KafkaSink) -> list[dict[str, Any]]:
    """The dead letters ``sink`` recorded (made durable first, as the runner does)."""
    assert sink.context is not None
    store = sink.context.dead_letters
    store.sync()
    path = store.path  # type: ignore[attr-defined]
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def latest_per_key(records: list[Record]) -> dict[tuple[str, bytes | None], Any]:
    """What a compacted topic keeps: each key's last value; a tombstone removes the key."""
    state: dict[tuple[str, bytes | None], Any] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        if record.value is None:
            state.pop((record.topic, record.key), None)
        else:
            state[(record.topic, record.key)] = record.json()
    return state


class TestKafkaSinkContract(SinkContract):
    sink_type = "kafka"

    @pytest.fixture(autouse=True)
    def _topic(self, bootstrap: str, make_topic: Any) -> None:
        self.bootstrap = bootstrap
        self.prefix = unique("c") + "."
        self.topic = make_topic(3, name=f"{self.prefix}{self.schema}.{self.table}")

    def sink_options(self) -> dict[str, Any]:
        return {"bootstrap_servers": self.bootstrap, "topic_prefix": self.prefix,
                "tombstones": True, "config": {"message.max.bytes": 100_000}}

    def observable_state(self) -> Any:
        return latest_per_key(read_topic(self.bootstrap, self.topic))

    def poison_batch(self) -> Batch | None:
        """A row too large for the producer's message.max.bytes: refused for good."""
        return Batch((self.contract_event("write", 99, {"id": 99, "name": "x" * 200_000}),))


def test_every_change_of_a_row_goes_to_one_partition_in_order(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    topic = make_topic(4)
    sink = open_sink(tmp_path, bootstrap, topic=topic)
    sequence = 0
    try:
        for version in range(5):
            batch = []
            for key in range(40):
                sequence += 1
                batch.append(event("update", key, {"id": key, "v": version - 1},
                                   {"id": key, "v": version}, sequence=sequence))
            sink.apply(Batch(tuple(batch), version))
    finally:
        sink.close()
    records = read_topic(bootstrap, topic)
    assert len(records) == 200
    partitions: dict[bytes | None, set[int]] = defaultdict(set)
    versions: dict[bytes | None, list[int]] = defaultdict(list)
    for record in records:  # by partition, then offset
        partitions[record.key].add(record.partition)
        versions[record.key].append(record.json()["after"]["v"])
    assert set(partitions) == {json.dumps({"id": k}, separators=(",", ":")).encode()
                               for k in range(40)}
    assert all(len(found) == 1 for found in partitions.values())
    assert len({p for found in partitions.values() for p in found}) == 4  # spread out
    assert all(v == [0, 1, 2, 3, 4] for v in versions.values())


def test_headers_carry_sequence_and_position(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    topic = make_topic()
    where = {"file": "binlog.000003", "pos": 1234}
    publish(tmp_path, bootstrap, [
        event("write", 1, None, {"id": 1}, sequence=2**40 + 5, position=where),
        event("write", 2, None, {"id": 2}, sequence=None)], topic=topic)
    first, second = read_topic(bootstrap, topic)
    assert first.headers["meepo.sequence"] == str(2**40 + 5).encode()
    assert json.loads(first.headers["meepo.position"] or b"") == where
    assert "meepo.sequence" not in second.headers and "meepo.position" not in second.headers


EXACT_VALUES: dict[str, Any] = {
    "dec": Decimal("12345678901234567890.000000001"),
    "blob": bytes(range(256)),
    "naive": datetime(2026, 2, 3, 4, 5, 6, 789012),
    "aware": datetime(2026, 2, 3, 4, 5, 6, 7, tzinfo=UTC),
    "aware_whole": datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC),
    "offset": datetime(2026, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
    "first": datetime(1, 1, 1, 0, 0, 0, 1),
    "last": datetime(9999, 12, 31, 23, 59, 59, 999999),
    "day": date(1, 1, 1),
    "clock": time(23, 59, 59, 999999),
    "span": timedelta(hours=-838, seconds=1),
    "tags": {"b", "a"},
    "doc": {"$date": "not a date", "nested": [1, {"$x": None}]},
    "huge": 2**70,
    "unsigned": 2**64 - 1,
    "small": 0.1,
    "big": 1e300,
    "text": "naïve 🚀 \u0000 \"quoted\"",
    "toast": UNCHANGED,
    "flag": True,
    "nothing": None,
}


@pytest.mark.parametrize("name", sorted(EXACT_VALUES))
def test_meepo_format_carries_every_value_exactly(
    name: str, tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    topic = make_topic()
    original = event("update", 1, {"id": 1, name: None}, {"id": 1, name: EXACT_VALUES[name]})
    publish(tmp_path, bootstrap, [original], topic=topic)
    (record,) = read_topic(bootstrap, topic)
    assert record.value is not None
    assert event_from_json(record.value.decode()) == original
    assert json.loads(record.value) == json.loads(event_to_json(original))  # same document


def test_non_finite_floats_round_trip(tmp_path: Path, bootstrap: str, make_topic: Any) -> None:
    topic = make_topic()
    original = event("write", 1, None, {"id": 1, "nan": math.nan, "inf": -math.inf})
    publish(tmp_path, bootstrap, [original], topic=topic)
    (record,) = read_topic(bootstrap, topic)
    assert record.value is not None
    after = event_from_json(record.value.decode()).after or {}
    assert math.isnan(after["nan"]) and after["inf"] == -math.inf


def test_keys_name_their_columns(tmp_path: Path, bootstrap: str, make_topic: Any) -> None:
    topic = make_topic()
    publish(tmp_path, bootstrap, [
        event("write", (7, "x"), None, {"a": 7, "b": "x"}, columns=("a", "b")),
        event("write", 8, None, {"id": 8}, columns=None),
        event("write", Decimal("1.50"), None, {"id": Decimal("1.50")})], topic=topic)
    keys = [json.loads(r.key or b"") for r in read_topic(bootstrap, topic)]
    assert keys == [{"a": 7, "b": "x"}, {"pk": 8}, {"id": {"$decimal": "1.50"}}]


@pytest.mark.parametrize(("pk", "column"), [
    (7, "id"), (-3, "id"), (2**64 + 1, "id"), (0, 'quo"te é\\'), (True, "flag"), ("7", "id")])
def test_single_column_keys_are_the_json_of_their_column_and_value(pk: Any, column: str) -> None:
    """Integer keys take a shortcut past the JSON encoder: same bytes as the encoder's."""
    key = make_format("meepo").key(event("write", pk, None, {column: pk}, columns=(column,)))
    assert key == json.dumps({column: pk}, ensure_ascii=False, separators=(",", ":")).encode()


def test_key_change_is_a_delete_of_the_old_key_then_a_write_of_the_new(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    topic = make_topic(4)
    publish(tmp_path, bootstrap, [
        event("update", 2, {"id": 1, "v": "a"}, {"id": 2, "v": "a"}, sequence=9)],
        topic=topic, tombstones=True)
    records = sorted(read_topic(bootstrap, topic), key=lambda r: r.key or b"")
    old = [r for r in records if r.key == b'{"id":1}']
    new = [r for r in records if r.key == b'{"id":2}']
    assert [r.value is None for r in old] == [False, True]  # the delete, then its tombstone
    deleted = old[0].json()
    assert (deleted["action"], deleted["pk"], deleted["after"]) == ("delete", 1, None)
    assert deleted["before"] == {"id": 1, "v": "a"} and deleted["sequence"] == 9
    (written,) = [r.json() for r in new]
    assert (written["action"], written["pk"], written["before"]) == ("write", 2, None)
    assert written["sequence"] == 9


def test_tombstone_follows_each_delete(tmp_path: Path, bootstrap: str, make_topic: Any) -> None:
    topic = make_topic()
    publish(tmp_path, bootstrap, [event("write", 1, None, {"id": 1}),
                                  event("delete", 1, {"id": 1}, None, sequence=2)],
            topic=topic, tombstones=True)
    records = read_topic(bootstrap, topic)
    assert [(r.key, r.value is None) for r in records] == [
        (b'{"id":1}', False), (b'{"id":1}', False), (b'{"id":1}', True)]
    assert records[2].headers["meepo.sequence"] == b"2"


def test_topics_follow_the_template_prefix_and_overrides(
    tmp_path: Path, bootstrap: str, admin: Any
) -> None:
    prefix = unique("p")
    publish(tmp_path, bootstrap, [event("write", 1, None, {"id": 1}, table="items"),
                                  event("write", 1, None, {"id": 1}, table="special"),
                                  event("write", 1, None, {"id": 1}, table="odd$name")],
            topic="cdc-{table}", topic_prefix=prefix + ".",
            topics={"shop.special": prefix + "-special"})
    topics = admin.list_topics(timeout=10).topics
    assert {f"{prefix}.cdc-items", f"{prefix}-special", f"{prefix}.cdc-odd_name"} <= set(topics)
    (odd,) = read_topic(bootstrap, f"{prefix}.cdc-odd_name")
    assert odd.json()["table"] == "odd$name"


def test_a_route_transforms_destination_is_the_topic(
    tmp_path: Path, bootstrap: str, admin: Any
) -> None:
    routed = unique("routed")
    publish(tmp_path, bootstrap, [
        dataclasses.replace(event("write", 1, None, {"id": 1}), destination=routed),
        dataclasses.replace(event("write", 3, None, {"id": 3}), destination=routed + "$odd"),
        event("write", 2, None, {"id": 2})], topic_prefix=routed + ".")
    (record,) = read_topic(bootstrap, routed)  # the whole topic name, no prefix
    assert record.json()["after"] == {"id": 1}
    (odd,) = read_topic(bootstrap, routed + "_odd")  # made legal as table topics are
    assert odd.json()["after"] == {"id": 3}
    (other,) = read_topic(bootstrap, f"{routed}.shop.items")
    assert other.json()["after"] == {"id": 2}


def test_too_large_messages_go_to_dead_letters_and_the_rest_arrive_in_order(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    topic = make_topic(1, **{"max.message.bytes": "3000"})
    sink = publish(tmp_path, bootstrap, [
        event("write", 1, None, {"id": 1, "v": 1}, sequence=1),
        # random hex: too large for the topic even compressed (the sink sends lz4 batches)
        event("write", 2, None, {"id": 2, "v": random.Random(2).randbytes(4000).hex()},
              sequence=2),
        event("update", 1, {"id": 1, "v": 1}, {"id": 1, "v": 2}, sequence=3),
        event("write", 3, None, {"id": 3, "v": 3}, sequence=4)], topic=topic)
    (dead,) = dead_letters(sink)
    assert dead["event"]["pk"] == 2 and "MSG_SIZE_TOO_LARGE" in dead["error"]
    assert dead["error"].endswith(
        "(the broker refused it: larger than the topic's max.message.bytes, or the broker's "
        "message.max.bytes when the topic sets none; raise that setting, or make the row "
        "smaller)"), dead["error"]
    assert dead["sink"] == "sinks[0] kafka"
    state = latest_per_key(read_topic(bootstrap, topic))
    assert {key: value["after"]["v"] for (_, key), value in state.items()} == {
        b'{"id":1}': 2, b'{"id":3}': 3}


def test_a_message_over_the_producers_limit_goes_to_dead_letters(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    topic = make_topic()
    sink = publish(tmp_path, bootstrap, [event("write", 1, None, {"id": 1, "v": "x" * 3000}),
                                         event("write", 2, None, {"id": 2}, sequence=2)],
                   topic=topic, config={"message.max.bytes": 1000})
    (dead,) = dead_letters(sink)
    assert dead["event"]["pk"] == 1 and "MSG_SIZE_TOO_LARGE" in dead["error"]
    assert dead["error"].endswith(
        "(this producer refused it before sending: larger than its message.max.bytes, 1000 "
        'bytes; raise config."message.max.bytes" of the sink, up to the topic\'s '
        "max.message.bytes)"), dead["error"]
    assert "topic's max.message.bytes" not in dead["error"].split("(")[0]
    assert [r.json()["pk"] for r in read_topic(bootstrap, topic)] == [2]


class FakeTopicAuthorizationReports(KafkaSink):
    """FAKE delivery reports: the test server enforces no ACLs, so this sink turns the
    broker's real acknowledgement of every message to topic ``refused_topic`` into the
    TOPIC_AUTHORIZATION_FAILED report a secured cluster sends."""

    refused_topic = ""

    def producer_config(self) -> dict[str, Any]:
        return {**super().producer_config(), "delivery.report.only.error": False}

    def _report(self, error: KafkaError | None, message: Message) -> None:
        if error is None and message.topic() == self.refused_topic:
            error = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)
        super()._report(error, message)


def test_unauthorized_topic_goes_to_dead_letters_with_the_reason_fake(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    allowed, refused = make_topic(), make_topic()
    FakeTopicAuthorizationReports.refused_topic = refused
    sink = publish(tmp_path, bootstrap, [event("write", 1, None, {"id": 1}),
                                         event("write", 1, None, {"id": 1}, table="secret")],
                   sink_class=FakeTopicAuthorizationReports, label="sinks[1]",
                   topics={"shop.items": allowed, "shop.secret": refused})
    (dead,) = dead_letters(sink)
    assert dead["event"]["table"] == "secret" and dead["sink"] == "sinks[1] kafka"
    assert "TOPIC_AUTHORIZATION_FAILED" in dead["error"] and refused in dead["error"]
    assert [r.json()["table"] for r in read_topic(bootstrap, allowed)] == ["items"]


def test_unencodable_values_go_to_dead_letters(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    topic = make_topic()
    sink = publish(tmp_path, bootstrap, [event("write", 1, None, {"id": 1, "odd": object()}),
                                         event("write", 2, None, {"id": 2}, sequence=2)],
                   topic=topic, format="debezium")
    (dead,) = dead_letters(sink)
    assert str(dead["event"]["pk"]) == "1" and "cannot encode as debezium" in dead["error"]
    assert [json.loads(r.key or b"") for r in read_topic(bootstrap, topic)] == [{"id": 2}]


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize("format", ["meepo", "debezium"])
def test_deeply_nested_values_arrive_or_go_to_dead_letters(
    format: str, tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    """orjson writes 255 levels at most: 300 and 900 levels (JSON documents a source can
    decode) take the standard encoder and arrive; 20,000 levels (nothing can write them)
    are a dead letter naming the event, and the events around them still arrive."""
    topic = make_topic()
    values = {1: nested(300), 2: nested(20_000), 3: nested(900), 4: [4]}
    sink = publish(tmp_path, bootstrap, [event("write", pk, None, {"id": pk, "doc": doc},
                                               sequence=pk) for pk, doc in values.items()],
                   topic=topic, format=format)
    (dead,) = dead_letters(sink)
    assert dead["event"]["pk"] in (2, "2")
    assert dead["error"].startswith(f"cannot encode as {format}: maximum recursion depth")
    arrived = {json.loads(r.key or b"")["id"]: r.json() for r in read_topic(bootstrap, topic)}
    assert sorted(arrived) == [1, 3, 4]
    for pk in (1, 3, 4):
        if format == "meepo":
            assert arrived[pk]["after"]["doc"] == values[pk]
        else:
            envelope = arrived[pk].get("payload", arrived[pk])  # with schemas or without
            assert json.loads(envelope["after"]["doc"]) == values[pk]  # JSON as its text


def test_broker_outage_raises_a_retryable_error_and_the_retry_delivers(
    tmp_path: Path
) -> None:
    with KafkaServer(tmp_path / "kafka") as server:
        topic = unique()
        sink = open_sink(tmp_path, server.bootstrap, topic=topic, delivery_timeout=2)
        try:
            sink.apply(Batch((event("write", 1, None, {"id": 1}),), 1))
            server.stop()
            batch = Batch((event("write", 2, None, {"id": 2}, sequence=2),), 2)
            with pytest.raises(SinkError) as raised:
                sink.apply(batch)
            assert raised.value.retryable
            assert "sent again" in str(raised.value)
            server.start()
            sink.apply(batch)  # what the runner does: the same batch again
        finally:
            sink.close()
        keys = {r.key for r in read_topic(server.bootstrap, topic)}
        assert b'{"id":2}' in keys
    assert dead_letters(sink) == []


def test_unreachable_brokers_fail_open_naming_the_key(tmp_path: Path) -> None:
    from meepo_testkit.servers.base import free_port

    sink = KafkaSink.from_options(Options(
        {"type": "kafka", "bootstrap_servers": f"127.0.0.1:{free_port()}"},
        "tool.meepo.pipelines.p.sinks[0]", tmp_path))
    with pytest.raises(SinkError) as raised:
        sink.open(make_context(tmp_path))
    assert not raised.value.retryable
    assert str(raised.value).startswith(
        "tool.meepo.pipelines.p.sinks[0].bootstrap_servers: cannot reach Kafka at 127.0.0.1:")
    problems = sink.check()
    assert len(problems) == 1 and "cannot reach Kafka" in problems[0]


def test_check_names_missing_override_topics_when_auto_creation_is_off_or_unknown(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    existing = make_topic()
    missing = unique("missing")
    sink = KafkaSink.from_options(Options(
        {"type": "kafka", "bootstrap_servers": bootstrap,
         "topics": {"shop.a": existing, "shop.b": missing}}, "sinks[0]", tmp_path))
    problems = sink.check()
    # noida-db (like Kafka's default) has auto.create.topics.enable=true: a missing topic
    # will be created on first write, so it is not a problem for the sink
    from confluent_kafka.admin import AdminClient
    from meepo_kafka.cluster import auto_create, fetch_metadata

    client = AdminClient({"bootstrap.servers": bootstrap})
    setting = auto_create(client, fetch_metadata(client, bootstrap, "k"))
    if setting == "true":
        assert problems == []
    else:
        assert len(problems) == 1 and missing in problems[0]
        assert "auto.create.topics.enable is" in problems[0]


def test_meepo_format_sends_a_schema_change_in_its_place_among_the_rows(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    from meepo_core import SchemaChange, schema_change_from_dict
    from meepo_core.testing.schema_contract import CONTRACT_DEFINITION, EVOLVED_DEFINITION

    topic = make_topic()  # one partition: the log's order is the order sent
    change = SchemaChange("shop", "items", "alter", CONTRACT_DEFINITION, EVOLVED_DEFINITION,
                          ddl="ALTER TABLE items ADD note varchar(40)", committed_at=STAMP,
                          sequence=2)
    rows = (event("write", 1, after={"id": 1}, sequence=1),
            event("write", 2, after={"id": 2, "note": "n"}, sequence=3))
    sink = open_sink(tmp_path, bootstrap, topic=topic)
    try:
        sink.apply(Batch(rows, 1, schema_changes=((1, change),)))
    finally:
        sink.close()
    records = sorted(read_topic(bootstrap, topic), key=lambda r: (r.partition, r.offset))
    values = [json.loads(r.value or b"null") for r in records]
    assert [v["action"] for v in values] == ["write", "schema", "write"]
    schema_messages = [v for v in values if v["action"] == "schema"]
    assert [schema_change_from_dict(v) for v in schema_messages] == [change]
    (message,) = [r for r in records if json.loads(r.value or b"null")["action"] == "schema"]
    assert json.loads(message.key or b"null") == {"table": "shop.items"}
    assert dict(message.headers or [])["meepo.sequence"] == b"2"
    assert dead_letters(sink) == []
