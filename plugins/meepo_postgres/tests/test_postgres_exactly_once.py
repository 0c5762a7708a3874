"""Exactly-once into a PostgreSQL ``sql`` replica: while a writer commits changes, ``meepo
run`` (postgres source -> sql sink with ``exactly_once``) is SIGKILLed at random points and
restarted. An append-only change table in the replica, filled by a trigger with one row per
row the sink inserts, updates or deletes, must then hold every committed change exactly
once, in commit order: a replayed batch would show as a second row.

The issue's soak is 3 minutes and 20 kills; CI runs ``MEEPO_EO_KILLS`` (default 6) runs of
1.5-4.5 s each. ``MEEPO_EO_KILLS=20`` with ``MEEPO_EO_SECONDS=6,12`` is the full soak."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from meepo_testkit.crash import ChangeWriter, Commit, kill_at_random_points

from meepo_core.testing import meepo_command, run_meepo, write_config

pytest.importorskip("meepo_sqlalchemy", reason="needs meepo-sqlalchemy (the sql sink)")

KILLS = int(os.environ.get("MEEPO_EO_KILLS", "6"))
SECONDS = tuple(float(s) for s in os.environ.get("MEEPO_EO_SECONDS", "1.5,4.5").split(","))
#: The trigger's operation names as the writer records changes.
ACTIONS = {"INSERT": "write", "UPDATE": "update", "DELETE": "delete"}


@contextmanager
def transactions(harness: Any) -> Iterator[Commit]:
    with harness.server.connect() as conn:
        conn.execute(f"SET search_path = {harness.schema}")

        def commit(statements: list[tuple[str, tuple[Any, ...]]]) -> None:
            for sql, parameters in statements:
                conn.execute(sql, parameters)
            conn.commit()

        yield commit


def prepare_replica(harness: Any, replica: str) -> None:
    """``replica.t`` like the source's ``t``, and ``replica.t_changes``: one row per row
    change the sink makes, in commit order (``n``)."""
    harness.execute(
        f"CREATE SCHEMA {replica}",
        f"CREATE TABLE {replica}.t (id INT PRIMARY KEY, v INT, note TEXT)",
        f"CREATE TABLE {replica}.t_changes (n BIGSERIAL PRIMARY KEY, op TEXT, id INT, v INT)",
        f"CREATE FUNCTION {replica}.log_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN IF TG_OP = 'DELETE' THEN INSERT INTO {replica}.t_changes (op, id, v) "
        f"VALUES (TG_OP, OLD.id, NULL); ELSE INSERT INTO {replica}.t_changes (op, id, v) "
        "VALUES (TG_OP, NEW.id, NEW.v); END IF; RETURN NULL; END $$",
        f"CREATE TRIGGER log_change AFTER INSERT OR UPDATE OR DELETE ON {replica}.t "
        f"FOR EACH ROW EXECUTE FUNCTION {replica}.log_change()",
    )


@pytest.mark.slow
def test_sigkill_at_random_points_applies_every_change_exactly_once(
    harness: Any, tmp_path: Path
) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT, note TEXT)")
    replica = f"{harness.schema}_replica"
    prepare_replica(harness, replica)
    write_config(tmp_path, {"eo": {
        "source": harness.options(tables=[f"{harness.schema}.t"]),
        "sinks": [{"type": "sql", "url": harness.server.url, "schema": replica,
                   "exactly_once": True}],
        "batch_size": 40, "batch_wait": 0.05, "status_interval": 0,
    }})
    created = run_meepo("run", "eo", "--once", cwd=tmp_path)  # slot, publication, start
    assert created.returncode == 0, created.stderr
    writer = ChangeWriter(lambda: transactions(harness))
    writer.start()
    try:
        kills = kill_at_random_points(meepo_command("run", "eo"), tmp_path, runs=KILLS,
                                      rng=random.Random(23), seconds=(SECONDS[0], SECONDS[1]))
    finally:
        writer.stop.set()
        writer.join(10)
    assert writer.error is None, writer.error
    assert kills >= KILLS - 1, (tmp_path / "run.log").read_text()[-3000:]
    final = run_meepo("run", "eo", "--once", cwd=tmp_path, timeout=120)
    assert final.returncode == 0, final.stderr

    applied = [(ACTIONS[op], pk, v) for op, pk, v in harness.query(
        f"SELECT op, id, v FROM {replica}.t_changes ORDER BY n")]
    assert len(writer.changes) > 200
    replayed = len(applied) - len(writer.changes)
    assert replayed <= 0, f"{replayed} changes applied more than once"
    assert applied == writer.changes  # each exactly once, in commit order


def read_committed(bootstrap: str, topic: str) -> list[tuple[str, int, int | None, int]]:
    """``(action, id, v, partition)`` of every row message a ``read_committed`` consumer
    sees in ``topic``, by partition and offset, read to each partition's end (schema
    change messages, ``"action": "schema"``, left out)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{topic}",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10,
                                                  cached=False) for p in partitions}
        consumer.assign([TopicPartition(topic, p, low) for p, (low, _) in ends.items()])
        found: list[tuple[int, int, tuple[str, int, int | None, int]]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for message in consumer.consume(500, 0.2):
                if message.error() is None and message.value() is not None:
                    event = json.loads(message.value())
                    if event["action"] == "schema":  # a schema change message, not a row
                        continue
                    v = (event["after"] or {}).get("v") if event["action"] != "delete" else None
                    found.append((message.partition(), message.offset(),
                                  (event["action"], event["pk"], v, message.partition())))
            reached = consumer.position([TopicPartition(topic, p) for p in partitions])
            if all(tp.offset >= ends[tp.partition][1] for tp in reached):
                return [change for _, _, change in sorted(found)]
        raise AssertionError(f"could not read {topic} to its end")
    finally:
        consumer.close()


@pytest.mark.slow
def test_sigkill_at_random_points_publishes_every_change_exactly_once_to_kafka(
    harness: Any, tmp_path: Path, kafka_server: Any
) -> None:
    """The same into a ``kafka`` sink with ``exactly_once``: a ``read_committed`` consumer
    sees each change once, every key's changes in commit order."""
    pytest.importorskip("meepo_kafka", reason="needs meepo-kafka (the kafka sink)")
    from confluent_kafka.admin import AdminClient, NewTopic

    kafka_server.start()
    bootstrap = kafka_server.bootstrap
    topic = f"eo-{harness.schema}".replace("_", "-")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(timeout=30)
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT, note TEXT)")
    write_config(tmp_path, {"eo": {
        "source": harness.options(tables=[f"{harness.schema}.t"]),
        "sinks": [{"type": "kafka", "bootstrap_servers": bootstrap, "topic": topic,
                   "exactly_once": True, "transactional_id": f"tx-{topic}",
                   "positions_topic": f"positions-{topic}"}],
        "batch_size": 40, "batch_wait": 0.05, "status_interval": 0,
    }})
    created = run_meepo("run", "eo", "--once", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    writer = ChangeWriter(lambda: transactions(harness))
    writer.start()
    try:
        kills = kill_at_random_points(meepo_command("run", "eo"), tmp_path, runs=KILLS,
                                      rng=random.Random(29), seconds=(SECONDS[0], SECONDS[1]))
    finally:
        writer.stop.set()
        writer.join(10)
    assert writer.error is None, writer.error
    assert kills >= KILLS - 1, (tmp_path / "run.log").read_text()[-3000:]
    final = run_meepo("run", "eo", "--once", cwd=tmp_path, timeout=120)
    assert final.returncode == 0, final.stderr

    seen = read_committed(bootstrap, topic)
    assert len(writer.changes) > 200
    assert len(seen) == len(writer.changes), "a change is missing or seen twice"
    for key in {pk for _, pk, _ in writer.changes}:  # per key: exactly once, in order
        expected = [change for change in writer.changes if change[1] == key]
        got = [(action, pk, v) for action, pk, v, _ in seen if pk == key]
        assert got == expected, key
        assert len({partition for _, pk, _, partition in seen if pk == key}) == 1
