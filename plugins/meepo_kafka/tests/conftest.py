"""Shared helpers of the meepo-kafka tests: topics on the session Kafka server (noida-db, or
the cluster named by ``$MEEPO_TEST_KAFKA_BOOTSTRAP``) and readers of what they hold."""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from meepo_kafka.kafka_sink import KafkaSink
from meepo_testkit.servers import ExternalKafka

from meepo_core import Batch, Options, RowEvent
from meepo_core.testing import make_context

#: librdkafka's logs of the tests' own clients (not stderr, where they outlive the server).
CLIENT_LOG = logging.getLogger("kafka-test-clients")

#: Why a test runs only against a real cluster; each names the noida-db gap it hits.
NOIDA_NO_SESSION_EXPIRY = (
    "noida-db 0.2 does not expire the session of a member that died without leaving, and a "
    "rebalance that waits for one hands the same partitions to two members; set "
    "MEEPO_TEST_KAFKA_BOOTSTRAP to run it against a real cluster")


def is_real_cluster(server: Any) -> bool:
    return isinstance(server, ExternalKafka)


@dataclass(frozen=True)
class Record:
    """One message as a consumer sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes | None]
    header_items: tuple[tuple[str, bytes | None], ...] = ()  # in order, repeats kept

    def json(self) -> Any:
        return json.loads(self.value) if self.value is not None else None


@pytest.fixture
def bootstrap(kafka_server: Any) -> str:
    kafka_server.start()
    address: str = kafka_server.bootstrap
    return address


@pytest.fixture
def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "logger": CLIENT_LOG})


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_topic(admin: AdminClient) -> Iterator[Callable[..., str]]:
    """``make_topic(partitions=1, name=None, **config)`` creates a topic, deleted after."""
    made: list[str] = []

    def make(partitions: int = 1, name: str | None = None, **config: str) -> str:
        topic = name or unique()
        futures = admin.create_topics([NewTopic(topic, partitions, 1, config=config)])
        futures[topic].result(timeout=30)
        made.append(topic)
        wait_for(lambda: topic in admin.list_topics(timeout=10).topics, 10, f"topic {topic}")
        return topic

    yield make
    if made:
        for future in admin.delete_topics(made).values():
            with contextlib.suppress(Exception):  # best effort
                future.result(timeout=30)


def publish(tmp_path: Path, bootstrap: str, *batches: Sequence[RowEvent],
            pipeline: str = "contract", sink_class: type[KafkaSink] = KafkaSink,
            label: str = "sinks[0]", **options: Any) -> KafkaSink:
    """Open a ``kafka`` sink with ``options``, apply each of ``batches`` as one batch, and
    close it; returns the sink (``sink.context`` holds its dead letters)."""
    sink = sink_class.from_options(Options(
        {"type": "kafka", "bootstrap_servers": bootstrap, **options}, label, tmp_path))
    sink.open(make_context(tmp_path, pipeline=pipeline))
    try:
        for index, events in enumerate(batches):
            sink.apply(Batch(tuple(events), index))
    finally:
        sink.close()
    return sink


def read_topic(bootstrap: str, topic: str, *, timeout: float = 20) -> list[Record]:
    """Every message in ``topic`` now, by partition then offset (no consumer group)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reader"),
                         "enable.auto.commit": False, "logger": CLIENT_LOG})
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                for p in partitions}
        wanted = {p: high for p, (low, high) in ends.items() if high > low}
        consumer.assign([TopicPartition(topic, p, ends[p][0]) for p in wanted])
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        while any(wanted.values()) and time.monotonic() < deadline:
            for message in consumer.consume(500, 0.5):
                if message.error() is not None:
                    continue
                records.append(Record(message.topic(), message.partition(), message.offset(),
                                      message.key(), message.value(),
                                      dict(message.headers() or []),
                                      tuple(message.headers() or ())))
                if message.offset() + 1 >= wanted[message.partition()]:
                    wanted[message.partition()] = 0
        assert not any(wanted.values()), f"could not read all of {topic}: {wanted}"
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)
