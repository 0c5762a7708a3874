"""The ``kafka`` source against a real Kafka-protocol server: the source contract, batches
per partition, offsets committed only when acknowledged, rebalances that hand partitions
over without loss or needless replay, the Debezium format and bad messages."""

from __future__ import annotations

import json
import queue
import re
import threading
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from meepo_kafka.kafka_source import KafkaSource

from meepo_core import UNCHANGED, Batch, Options, PipelineSettings, RowEvent, SourceError
from meepo_core.testing import SourceContract, make_context

from .conftest import is_real_cluster, publish, unique, wait_for

STAMP = datetime(2026, 1, 1, tzinfo=UTC)


def make_source(tmp_path: Path, bootstrap: str, topics: list[str], group: str,
                **options: Any) -> KafkaSource:
    return KafkaSource.from_options(Options(
        {"type": "kafka", "bootstrap_servers": bootstrap, "topics": topics, "group": group,
         **options}, "source", tmp_path))


def publish_each(tmp_path: Path, bootstrap: str, topic: str, events: list[RowEvent],
                 **options: Any) -> None:
    """Write ``events`` with the kafka sink, one batch each."""
    publish(tmp_path, bootstrap, *([event] for event in events), topic=topic, **options)


def versions(keys: int, rounds: int, first_sequence: int = 1) -> list[RowEvent]:
    """``rounds`` updates of each of ``keys`` rows, round by round, sequences growing."""
    out = []
    sequence = first_sequence
    for version in range(rounds):
        for key in range(keys):
            out.append(RowEvent("shop", "items", "update", key, {"id": key},
                                {"id": key, "v": version}, None, STAMP, None, sequence, ("id",)))
            sequence += 1
    return out


def drain(source: KafkaSource, tmp_path: Path, *, acknowledge: bool = True,
          batch_size: int = 1000) -> list[Batch]:
    context = make_context(tmp_path, settings=PipelineSettings(batch_size=batch_size))
    batches = []
    try:
        for batch in source.stream(None, context, once=True):
            batches.append(batch)
            if acknowledge:
                source.acknowledge(batch.position)
    finally:
        source.close()
    return batches


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in range(partitions)],
                                   timeout=10)
        return [tp.offset for tp in sorted(found, key=lambda tp: tp.partition)]
    finally:
        consumer.close()


class TestKafkaSourceContract(SourceContract):
    @pytest.fixture(autouse=True)
    def _topic(self, bootstrap: str, make_topic: Any) -> None:
        self.bootstrap = bootstrap
        self.topic = make_topic(1)  # the contract checks one global order
        self.group = unique("g")
        self.next_pk = 0

    def make_source(self) -> KafkaSource:
        return make_source(self.tmp_path, self.bootstrap, [self.topic], self.group)

    def produce(self, count: int) -> list[Any]:
        pks = list(range(self.next_pk, self.next_pk + count))
        self.next_pk += count
        publish_each(self.tmp_path, self.bootstrap, self.topic, [
            RowEvent("shop", "items", "write", pk, None, {"id": pk}, None, STAMP, None, pk + 1,
                     ("id",)) for pk in pks])
        return pks


def test_batches_hold_one_partition_in_offset_order(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    topic = make_topic(4)
    publish_each(tmp_path, bootstrap, topic, versions(30, 4))
    batches = drain(make_source(tmp_path, bootstrap, [topic], unique("g")), tmp_path,
                    batch_size=25)
    events = [event for batch in batches for event in batch.events]
    assert len(events) == 120
    partition_of: dict[Any, int] = {}
    for batch in batches:
        (offsets,) = batch.position["offsets"].values()
        assert batch.position["group"] and offsets  # cumulative, per partition
        assert len({e.pk for e in batch.events}) <= 25
    # every key's versions arrive in order; a batch never mixes partitions (the keys of a
    # batch all hash to one partition: check against where the keys are)
    seen: dict[Any, list[int]] = defaultdict(list)
    for event in events:
        seen[event.pk].append((event.after or {})["v"])
    assert all(found == [0, 1, 2, 3] for found in seen.values())
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("r"),
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    deadline = time.monotonic() + 20
    while len(partition_of) < 30 and time.monotonic() < deadline:
        for message in consumer.consume(100, 0.5):
            if message.error() is None:
                partition_of[json.loads(message.key())["id"]] = message.partition()
    consumer.close()
    for batch in batches:
        assert len({partition_of[e.pk] for e in batch.events}) <= 1


def test_offsets_are_committed_only_when_acknowledged(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    topic = make_topic(1)
    group = unique("g")
    publish_each(tmp_path, bootstrap, topic, versions(10, 1))
    unacknowledged = drain(make_source(tmp_path, bootstrap, [topic], group), tmp_path,
                           acknowledge=False, batch_size=4)
    assert sum(len(b) for b in unacknowledged) == 10
    assert committed(bootstrap, group, topic, 1) == [-1001]  # nothing committed

    source = make_source(tmp_path, bootstrap, [topic], group)
    context = make_context(tmp_path, settings=PipelineSettings(batch_size=4))
    stream = source.stream(None, context, once=True)
    first = next(stream)
    assert [e.pk for e in first.events] == [0, 1, 2, 3]  # replayed from the start
    source.acknowledge(first.position)
    stream.close()
    source.close()
    assert committed(bootstrap, group, topic, 1) == [4]

    rest = drain(make_source(tmp_path, bootstrap, [topic], group), tmp_path)
    assert [e.pk for b in rest for e in b.events] == [4, 5, 6, 7, 8, 9]
    assert committed(bootstrap, group, topic, 1) == [10]


class Worker:
    """A source run the way the runner runs it: a reader thread hands batches over a queue
    to an applier thread that "applies" them (records their events after ``apply_seconds``)
    and acknowledges their positions, unless ``acknowledge`` is off."""

    def __init__(self, source: KafkaSource, tmp_path: Path, *, apply_seconds: float = 0.0,
                 acknowledge: bool = True, batch_size: int = 10) -> None:
        self.source = source
        self.context = make_context(tmp_path, settings=PipelineSettings(batch_size=batch_size))
        self.apply_seconds = apply_seconds
        self.acknowledge = acknowledge
        self.applied: list[RowEvent] = []
        self.timeline: list[tuple[float, RowEvent]] = []  # (when applied, event)
        self.received: list[Batch] = []
        self.errors: list[BaseException] = []
        self._queue: queue.Queue[Batch | None] = queue.Queue()
        self._threads = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=self._apply, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _read(self) -> None:
        try:
            for batch in self.source.stream(None, self.context, once=False):
                self.received.append(batch)
                self._queue.put(batch)
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            self._queue.put(None)

    def _apply(self) -> None:
        while (batch := self._queue.get()) is not None:
            time.sleep(self.apply_seconds)
            self.applied.extend(batch.events)
            now = time.monotonic()
            self.timeline.extend((now, event) for event in batch.events)
            if self.acknowledge:
                self.source.acknowledge(batch.position)

    def keys(self) -> set[tuple[Any, int | None]]:
        return {(e.pk, e.sequence) for e in self.applied}

    def stop(self) -> None:
        self.context.stopping.set()
        for thread in self._threads:
            thread.join(20)
        self.source.close()
        assert not self.errors, self.errors


def assert_in_order_without_gaps(timeline: list[tuple[float, RowEvent]],
                                 everything: list[RowEvent]) -> None:
    """Per key, in the order the workers applied them, every change is either the key's
    next one or a replay of an earlier one: never one out of order that skips ahead. And
    every key ends on its last change."""
    versions_of: dict[Any, list[int | None]] = defaultdict(list)
    for event in everything:
        versions_of[event.pk].append(event.sequence)
    reached: dict[Any, int] = defaultdict(lambda: -1)
    for _, event in sorted(timeline, key=lambda item: item[0]):
        index = versions_of[event.pk].index(event.sequence)
        assert index <= reached[event.pk] + 1, (
            f"key {event.pk}: change {index} applied right after change {reached[event.pk]}")
        reached[event.pk] = index
    assert all(reached[key] == len(found) - 1 for key, found in versions_of.items())


def test_a_joining_worker_gets_partitions_only_after_the_sinks_applied_them(
    tmp_path: Path, kafka_server: Any, bootstrap: str, make_topic: Any
) -> None:
    topic = make_topic(4)
    group = unique("g")
    everything = versions(40, 10)
    publish_each(tmp_path, bootstrap, topic, everything[:200])
    a = Worker(make_source(tmp_path, bootstrap, [topic], group), tmp_path, apply_seconds=0.05)
    b: Worker | None = None
    try:
        wait_for(lambda: len(a.applied) >= 40, 30, "worker A to apply some events")
        # B joins while A has batches in flight: A's revoke waits for them to be applied
        b = Worker(make_source(tmp_path, bootstrap, [topic], group), tmp_path,
                   apply_seconds=0.05)
        publish_each(tmp_path, bootstrap, topic, everything[200:])
        expected = {(e.pk, e.sequence) for e in everything}
        wait_for(lambda: a.keys() | b.keys() >= expected, 60, "every event applied")
        assert b.applied, "B never got partitions"
    finally:
        a.stop()
        if b is not None:
            b.stop()
    assert_in_order_without_gaps(a.timeline + b.timeline, everything)
    if is_real_cluster(kafka_server):
        # Kafka accepts the commit made while the partitions are revoked: the next owner
        # starts exactly after what was applied, nothing is applied twice
        assert not a.keys() & b.keys(), "a message was applied by both workers"
        assert len(a.applied) + len(b.applied) == len(everything)
    # (noida-db 0.2 refuses commits made in the revoke callback with ILLEGAL_GENERATION,
    # so there the next owner replays what was applied since the last periodic commit)
    assert sum(committed(bootstrap, group, topic, 4)) == len(everything)  # all committed


def test_batches_not_applied_within_revoke_timeout_are_abandoned_to_replay(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    topic = make_topic(2)
    group = unique("g")
    everything = versions(20, 3)
    publish_each(tmp_path, bootstrap, topic, everything)
    stuck_source = make_source(tmp_path, bootstrap, [topic], group, revoke_timeout=1)
    stuck = Worker(stuck_source, tmp_path, acknowledge=False)  # its sinks never finish
    helper: Worker | None = None
    try:
        wait_for(lambda: len(stuck.applied) == len(everything), 30, "the stuck worker to read")
        late = stuck.received[-1].position
        helper = Worker(make_source(tmp_path, bootstrap, [topic], group), tmp_path)
        # after revoke_timeout the stuck worker lets go; the helper replays what it needs
        wait_for(lambda: len(helper.applied) > 0, 60, "the helper to get partitions")
        stuck_source.acknowledge(late)  # too late: from before the rebalance, ignored
        time.sleep(1)
    finally:
        stuck.stop()
        if helper is not None:
            helper.stop()
    offsets = committed(bootstrap, group, topic, 2)
    replayed = {(e.pk, e.sequence) for e in helper.applied}
    # the helper committed what it applied; the stuck worker committed nothing
    assert sum(o for o in offsets if o > 0) == len(helper.applied)
    assert replayed <= {(e.pk, e.sequence) for e in everything}
    assert replayed, "abandoned messages were not replayed"


def test_a_worker_waiting_to_join_says_so_and_why(
    tmp_path: Path, bootstrap: str, make_topic: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """B joins while A's revoke waits (up to revoke_timeout) for sinks that never finish:
    the group cannot let B in before A rejoins. After a few seconds B says it waits, and
    that the group waits for A to rejoin, with the static group.instance.id way out."""
    topic = make_topic(2)
    group = unique("g")
    publish_each(tmp_path, bootstrap, topic, versions(10, 1))
    stuck = Worker(make_source(tmp_path, bootstrap, [topic], group, revoke_timeout=12,
                               config={"client.id": "worker-a"}), tmp_path, acknowledge=False)
    joining: Worker | None = None
    caplog.set_level("INFO", logger="meepo.kafka")
    try:
        wait_for(lambda: len(stuck.applied) == 10, 30, "worker A to read")
        began = time.monotonic()
        joining = Worker(make_source(tmp_path, bootstrap, [topic], group,
                                     config={"client.id": "worker-b"}), tmp_path)
        wait_for(lambda: any("waiting" in r.getMessage() for r in caplog.records), 30,
                 "the notice")
        noticed = time.monotonic() - began
    finally:
        stuck.stop()
        if joining is not None:
            joining.stop()
    (notice,) = [r.getMessage() for r in caplog.records if "waiting" in r.getMessage()]
    assert 5 <= noticed < 12, noticed  # a few seconds in, while the wait lasts
    assert re.match(rf"kafka source {group}: waiting [5-9]s to join consumer group "
                    rf"'{group}': the group is rebalancing and waits for its members to "
                    r"rejoin: worker-a on 127\.0\.0\.1\. ", notice), notice
    assert notice.endswith('give each worker its own static config."group.instance.id" so '
                           "that a restarted worker takes its place at once"), notice


def test_latest_start_skips_what_is_already_there(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    topic = make_topic(1)
    publish_each(tmp_path, bootstrap, topic, versions(5, 1))
    assert drain(make_source(tmp_path, bootstrap, [topic], unique("g"), start="latest"),
                 tmp_path) == []


def test_a_regex_subscribes_to_every_matching_topic(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    prefix = unique("rx")
    first, second = make_topic(1, name=f"{prefix}.a"), make_topic(1, name=f"{prefix}.b")
    publish_each(tmp_path, bootstrap, first, versions(2, 1))
    publish_each(tmp_path, bootstrap, second, versions(3, 1, 100))
    source = make_source(tmp_path, bootstrap, [f"^{prefix}\\..*"], unique("g"))
    events = [e for b in drain(source, tmp_path) for e in b.events]
    assert sorted(e.sequence or 0 for e in events) == [1, 2, 100, 101, 102]


# -- formats ---------------------------------------------------------------------------


def test_debezium_round_trip_takes_the_sequence_from_the_header(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    topic = make_topic(1)
    where = {"file": "binlog.000002", "pos": 400}
    written = [
        RowEvent("shop", "items", "write", 1, None, {"id": 1, "name": "é"}, where, STAMP,
                 "0-1-5", (2 << 32) | 400, ("id",)),
        RowEvent("shop", "items", "update", 1, {"id": 1, "name": "é"},
                 {"id": 1, "name": "f"}, where, STAMP, "0-1-6", (2 << 32) | 401, ("id",)),
        RowEvent("shop", "items", "delete", 1, {"id": 1, "name": "f"}, None, where, STAMP,
                 "0-1-7", (2 << 32) | 402, ("id",)),
        RowEvent("shop", "items", "read", 2, None, {"id": 2, "name": "g"}, None, STAMP,
                 None, None, ("id",)),
    ]
    publish_each(tmp_path, bootstrap, topic, written, format="debezium", tombstones=True)
    source = make_source(tmp_path, bootstrap, [topic], unique("g"), format="debezium")
    events = [e for b in drain(source, tmp_path) for e in b.events]
    assert events == written  # plain values survive the schemaless envelope exactly


def debezium_message(op: str, before: Any, after: Any) -> dict[str, Any]:
    """A message as Debezium's MySQL connector writes it with the JSON converter's default
    (schemas enabled), following the documented envelope and logical types."""
    def column(field: str, kind: str, name: str | None = None, **extra: Any) -> dict[str, Any]:
        return {"type": kind, "optional": True, "field": field,
                **({"name": name} if name else {}), **extra}

    row = {"type": "struct", "optional": True, "name": "dbserver1.inventory.orders.Value",
           "fields": [
               column("id", "int32"),
               column("order_date", "int32", "io.debezium.time.Date"),
               column("created", "int64", "io.debezium.time.MicroTimestamp"),
               column("seen", "int64", "io.debezium.time.Timestamp"),
               column("updated", "string", "io.debezium.time.ZonedTimestamp"),
               column("span", "int64", "io.debezium.time.MicroTime"),
               column("price", "bytes", "org.apache.kafka.connect.data.Decimal",
                      parameters={"scale": "2", "connect.decimal.precision": "10"}),
               column("doc", "string", "io.debezium.data.Json"),
               column("tags", "string", "io.debezium.data.EnumSet"),
               column("raw", "bytes"),
               column("note", "string"),
           ]}
    return {
        "schema": {"type": "struct", "name": "dbserver1.inventory.orders.Envelope", "fields": [
            {**row, "field": "before"}, {**row, "field": "after"},
            {"type": "struct", "field": "source", "fields": []},
            {"type": "string", "field": "op"}, {"type": "int64", "field": "ts_ms"}]},
        "payload": {
            "before": before, "after": after,
            "source": {"version": "2.5.4.Final", "connector": "mysql", "name": "dbserver1",
                       "ts_ms": 1767225600000, "snapshot": "false", "db": "inventory",
                       "table": "orders", "server_id": 223344, "gtid": None,
                       "file": "mysql-bin.000003", "pos": 484, "row": 0, "thread": 7,
                       "query": None},
            "op": op, "ts_ms": 1767225600123, "transaction": None,
        },
    }


DEBEZIUM_ROW = {"id": 1004, "order_date": 20454, "created": 1767225600123456,
                "seen": 1767225600123, "updated": "2026-01-01T00:00:00.5Z",
                "span": -3600000001, "price": "MDk=", "doc": '{"a": [1, 2.5]}',
                "tags": "a,b", "raw": "AAH/", "note": "__debezium_unavailable_value"}
DECODED_ROW = {"id": 1004, "order_date": date(2026, 1, 1),
               "created": datetime(2026, 1, 1, 0, 0, 0, 123456),
               "seen": datetime(2026, 1, 1, 0, 0, 0, 123000),
               "updated": datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC),
               "span": -timedelta(hours=1, microseconds=1), "price": Decimal("123.45"),
               "doc": {"a": [1, 2.5]}, "tags": {"a", "b"}, "raw": b"\x00\x01\xff",
               "note": UNCHANGED}


def test_debeziums_own_messages_are_read_with_their_logical_types(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    topic = make_topic(1)
    key = {"schema": {"type": "struct", "fields": [{"type": "int32", "field": "id"}]},
           "payload": {"id": 1004}}
    producer = Producer({"bootstrap.servers": bootstrap})
    for op, before, after in (("c", None, DEBEZIUM_ROW), ("u", DEBEZIUM_ROW, DEBEZIUM_ROW),
                              ("d", DEBEZIUM_ROW, None), ("r", None, DEBEZIUM_ROW),
                              ("t", None, None)):
        producer.produce(topic, json.dumps(debezium_message(op, before, after)),
                         json.dumps(key))
    producer.produce(topic, None, json.dumps(key))  # tombstone
    assert producer.flush(10) == 0
    source = make_source(tmp_path, bootstrap, [topic], unique("g"), format="debezium")
    context = make_context(tmp_path)
    events = []
    for batch in source.stream(None, context, once=True):
        events.extend(batch.events)
        source.acknowledge(batch.position)
    source.close()
    assert [e.action for e in events] == ["write", "update", "delete", "read"]
    write = events[0]
    assert (write.schema, write.table, write.pk, write.pk_columns) == (
        "inventory", "orders", 1004, ("id",))
    assert write.after == DECODED_ROW and write.before is None
    assert events[1].before == DECODED_ROW == events[1].after
    assert events[2].after is None and events[2].before == DECODED_ROW
    assert write.committed_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert write.sequence is None  # Debezium has no meepo.sequence header
    assert context.metrics.failures[("source", "truncate_not_delivered")] == 1


def test_a_message_in_another_format_stops_with_the_offset_to_skip(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    topic = make_topic(1)
    publish_each(tmp_path, bootstrap, topic, versions(2, 1))
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, b"not json at all", b"k")
    producer.flush(10)
    group = unique("g")
    source = make_source(tmp_path, bootstrap, [topic], group)
    with pytest.raises(SourceError) as raised:
        drain(source, tmp_path, batch_size=1)
    message = str(raised.value)
    assert f"message {topic}[0]@2 is not a meepo event" in message
    assert f"--reset-offsets --topic {topic}:0 --to-offset 3" in message
    assert committed(bootstrap, group, topic, 1) == [2]  # what was applied, no further


# -- check and bad input ---------------------------------------------------------------


def test_check_names_missing_topics_and_whether_auto_creation_is_on(
    tmp_path: Path, bootstrap: str, make_topic: Any
) -> None:
    present = make_topic(1)
    missing = unique("missing")
    source = make_source(tmp_path, bootstrap, [present, missing, "^nothing-matches-.*"],
                         unique("g"))
    problems = source.check()
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"topics: topic {missing!r} does not exist; the broker's "
                                  "auto.create.topics.enable is ")
    assert "true" in problems[0] or "false" in problems[0]
    assert problems[1] == "topics: no topic matches '^nothing-matches-.*' yet"
    assert make_source(tmp_path, bootstrap, [present], unique("g")).check() == []


def test_unreachable_brokers_raise_naming_the_key(tmp_path: Path) -> None:
    from meepo_testkit.servers.base import free_port

    source = KafkaSource.from_options(Options(
        {"type": "kafka", "bootstrap_servers": f"127.0.0.1:{free_port()}", "topics": ["t"],
         "group": "g"}, "tool.meepo.pipelines.w.source", tmp_path))
    with pytest.raises(SourceError, match=r"^tool\.meepo\.pipelines\.w\.source\."
                                          r"bootstrap_servers: cannot reach Kafka"):
        list(source.stream(None, make_context(tmp_path), once=True))
