"""The ``kafka`` sink's exactly-once mode against the Kafka-API test server: a batch and the
pipeline's position in one transaction, ``read_committed`` readers never see an aborted or
unfinished batch, the position comes back at start, and a second instance fences the
first. (The test server, noida-db, honours ``read_committed``, aborts and fencing; these
tests were checked against it, and run against a real cluster with
``$MEEPO_TEST_KAFKA_BOOTSTRAP``.)"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from meepo_kafka.kafka_sink import KafkaSink

from meepo_core import Batch, Options, RowEvent, SinkError, event_to_json
from meepo_core.testing import make_context, meepo_command, write_config

from .conftest import CLIENT_LOG, unique, wait_for

STAMP = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def change(pk: int, value: int) -> RowEvent:
    return RowEvent("shop", "items", "write", pk, None, {"id": pk, "v": value}, None, STAMP,
                    None, value, ("id",))


def read(bootstrap: str, topic: str, isolation: str = "read_committed") -> list[int]:
    """The ``v`` of every message a ``isolation`` reader sees in ``topic`` (one partition),
    read to the partition's end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reader"),
                         "enable.auto.commit": False, "isolation.level": isolation,
                         "logger": CLIENT_LOG})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10,
                                                   cached=False)
        consumer.assign([TopicPartition(topic, 0, low)])
        values: list[int] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                values.append(json.loads(message.value() or b"null")["after"]["v"])
            (position,) = consumer.position([TopicPartition(topic, 0)])
            if position.offset >= high:
                return values
        raise AssertionError(f"could not read {topic} to offset {high}")
    finally:
        consumer.close()


@pytest.fixture
def eo_options(bootstrap: str, make_topic: Any) -> dict[str, Any]:
    topic = make_topic(1)
    return {"type": "kafka", "bootstrap_servers": bootstrap, "topic": topic,
            "exactly_once": True, "transactional_id": unique("tx"),
            "positions_topic": unique("positions")}


def claimed(tmp_path: Path, options: dict[str, Any]) -> KafkaSink:
    """A sink that claimed pipeline ``orders`` and opened, as a pipeline run does."""
    sink = KafkaSink.from_options(Options(dict(options), "sinks[0]", tmp_path))
    sink.claim_position("orders")
    sink.open(make_context(tmp_path, "orders"))
    return sink


def test_batches_and_positions_commit_together_and_an_unfinished_one_never_shows(
    tmp_path: Path, bootstrap: str, eo_options: dict[str, Any]
) -> None:
    first = claimed(tmp_path, eo_options)
    assert first.claims_position and first.stored_position("orders") is None
    first.apply(Batch((change(1, 1), change(2, 2)), {"lsn": 10}))
    first.apply(Batch((change(3, 3),), {"lsn": 20}))
    # the process dies with a batch sent but its transaction not committed
    assert first.producer is not None
    first.producer.begin_transaction()
    first._send(Batch((change(4, 4),), {"lsn": 30}))
    topic = eo_options["topic"]
    assert read(bootstrap, topic, "read_uncommitted") == [1, 2, 3, 4]
    assert read(bootstrap, topic) == [1, 2, 3]

    second = KafkaSink.from_options(Options(dict(eo_options), "sinks[0]", tmp_path))
    assert second.claim_position("orders") == {"lsn": 20}  # the unfinished batch aborted
    second.open(make_context(tmp_path, "orders"))
    try:
        second.apply(Batch((change(4, 4),), {"lsn": 30}))
    finally:
        second.close()
    assert read(bootstrap, topic) == [1, 2, 3, 4]
    assert second.stored_position("orders") == {"lsn": 30}
    assert second.stored_position("another") is None


def test_a_second_instance_fences_the_first(
    tmp_path: Path, bootstrap: str, eo_options: dict[str, Any]
) -> None:
    first = claimed(tmp_path, eo_options)
    first.apply(Batch((change(1, 1),), {"lsn": 1}))
    second = claimed(tmp_path, eo_options)
    with pytest.raises(SinkError) as refused:
        first.apply(Batch((change(2, 2),), {"lsn": 2}))
    assert not refused.value.retryable
    assert "another instance of pipeline orders took over" in str(refused.value)
    assert "writes nothing more" in str(refused.value)
    second.apply(Batch((change(2, 20),), {"lsn": 2}))
    second.close()
    first.close()
    assert read(eo_options["bootstrap_servers"], eo_options["topic"]) == [1, 20]
    assert second.stored_position("orders") == {"lsn": 2}


def test_partition_offsets_only_move_forward(
    tmp_path: Path, eo_options: dict[str, Any]
) -> None:
    """A kafka source's batch behind the stored offsets (replayed after a rebalance) was
    applied already: it is not sent again."""
    sink = claimed(tmp_path, eo_options)
    try:
        sink.apply(Batch((change(1, 1),), {"offsets": {"in": {"0": 5}}}))
        sink.apply(Batch((change(2, 2),), {"offsets": {"in": {"1": 3}}}))
        sink.apply(Batch((change(1, 1),), {"offsets": {"in": {"0": 5}}}))
    finally:
        sink.close()
    assert read(eo_options["bootstrap_servers"], eo_options["topic"]) == [1, 2]
    assert sink.stored_position("orders") == {"offsets": {"in": {"0": 5, "1": 3}}}


def test_a_refused_message_is_dead_lettered_and_the_rest_commit_once(
    tmp_path: Path, eo_options: dict[str, Any]
) -> None:
    options = {**eo_options, "config": {"message.max.bytes": 2000}}
    sink = claimed(tmp_path, options)
    big = RowEvent("shop", "items", "write", 9, None, {"id": 9, "v": 9, "blob": "x" * 5000},
                   None, STAMP, None, 9, ("id",))
    try:
        sink.apply(Batch((change(1, 1), big, change(2, 2)), {"lsn": 5}))
    finally:
        sink.close()
    assert read(eo_options["bootstrap_servers"], eo_options["topic"]) == [1, 2]
    assert [event.pk for event in sink.refused] == [9]
    assert sink.stored_position("orders") == {"lsn": 5}


def test_check_finds_transactions_without_fencing_a_running_instance(
    tmp_path: Path, eo_options: dict[str, Any]
) -> None:
    running = claimed(tmp_path, eo_options)
    checker = KafkaSink.from_options(Options(dict(eo_options), "sinks[0]", tmp_path))
    assert checker.check() == []
    assert checker.stored_position("orders") is None  # reading does not fence either
    running.apply(Batch((change(1, 1),), {"lsn": 1}))  # still the owner
    running.close()
    assert read(eo_options["bootstrap_servers"], eo_options["topic"]) == [1]


def test_a_source_transaction_split_over_batches_is_one_kafka_transaction(
    tmp_path: Path, bootstrap: str, eo_options: dict[str, Any]
) -> None:
    """Only the last batch of a large source transaction carries its position: the ones
    before it stay in the open transaction; a stop before the last aborts them all."""
    topic = eo_options["topic"]
    first = claimed(tmp_path, eo_options)
    first.apply(Batch((change(1, 1),), {"lsn": 1}))
    first.apply(Batch((change(2, 2),), None))
    first.apply(Batch((change(3, 3),), None))
    assert read(bootstrap, topic, "read_uncommitted") == [1, 2, 3]
    assert read(bootstrap, topic) == [1]
    first.close()  # stopped before the transaction's last batch

    second = claimed(tmp_path, eo_options)
    assert second.stored_position("orders") == {"lsn": 1}
    try:
        second.apply(Batch((change(2, 2),), None))
        second.apply(Batch((change(3, 3),), None))
        second.apply(Batch((change(4, 4),), {"lsn": 2}))
    finally:
        second.close()
    assert read(bootstrap, topic) == [1, 2, 3, 4]
    assert second.stored_position("orders") == {"lsn": 2}


def test_a_second_meepo_run_fences_the_first_which_exits_with_one_line(
    tmp_path: Path, bootstrap: str, eo_options: dict[str, Any]
) -> None:
    """Two ``meepo run`` of one pipeline (a jsonl log that keeps growing -> kafka): the
    second takes over, the first stops with exit 1 and one line saying why, and a
    ``read_committed`` reader sees every event once."""
    log = tmp_path / "log.jsonl"

    def append(first: int, count: int) -> None:
        with log.open("a") as handle:
            for value in range(first, first + count):
                handle.write(event_to_json(change(value, value)) + "\n")

    append(1, 20)
    write_config(tmp_path, {"eo": {
        "source": {"type": "jsonl", "path": str(log)},
        "sinks": [eo_options], "batch_size": 5, "status_interval": 0,
    }})
    errors = [(tmp_path / f"run-{n}.log").open("wb") for n in (1, 2)]
    first = subprocess.Popen(meepo_command("run", "eo"), cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=errors[0])
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: read(bootstrap, eo_options["topic"]) == list(range(1, 21)), 60,
                 "the first run to publish the log")
        second = subprocess.Popen(meepo_command("run", "eo"), cwd=tmp_path,
                                  stdout=subprocess.DEVNULL, stderr=errors[1])
        wait_for(lambda: b"starting from" in (tmp_path / "run-2.log").read_bytes(), 60,
                 "the second run to take over")
        append(21, 20)
        assert first.wait(60) == 1
        wait_for(lambda: len(read(bootstrap, eo_options["topic"])) >= 40, 60,
                 "the second run to publish the rest")
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
        for handle in errors:
            handle.close()
    assert read(bootstrap, eo_options["topic"]) == list(range(1, 41))
    lines = [line for line in (tmp_path / "run-1.log").read_text().splitlines()
             if line.startswith("meepo: error")]
    assert len(lines) == 1, (tmp_path / "run-1.log").read_text()[-3000:]
    assert "another instance of pipeline eo took over" in lines[0]
