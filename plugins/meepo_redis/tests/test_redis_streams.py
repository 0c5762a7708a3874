"""The ``redis-stream`` sink and source, in one process against a real redis-server."""

from __future__ import annotations

import json
import threading
import zlib
from pathlib import Path
from typing import Any

import pytest
import redis
from meepo_redis.redis_stream import partition_of
from meepo_redis.redis_stream_sink import RedisStreamSink
from meepo_redis.redis_stream_source import RedisStreamSource

from meepo_core import UNCHANGED
from meepo_core.errors import SinkError
from meepo_core.events import Batch, RowEvent
from meepo_core.serialization import event_from_json
from meepo_core.settings import PipelineSettings
from meepo_core.testing import SinkContract, SourceContract, contract_row, make_context

from .conftest import user_event


def produce(url: str, tmp_path: Path, events: list[RowEvent], partitions: int = 4,
            stream: str = "meepo:stream") -> None:
    sink = RedisStreamSink(url, stream, partitions, dedupe=False)
    sink.open(make_context(tmp_path))
    try:
        sink.apply(Batch(tuple(events), 1))
    finally:
        sink.close()


class TestRedisStreamSinkContract(SinkContract):
    sink_type = "redis-stream"

    @pytest.fixture(autouse=True)
    def _redis(self, redis_db: str, client: redis.Redis) -> None:
        self.url = redis_db
        self.client = client

    def sink_options(self) -> dict[str, Any]:
        return {"url": self.url, "partitions": 3, "maxlen": 1000}

    def observable_state(self) -> Any:
        return {p: [fields["event"] for _, fields in self.client.xrange(f"meepo:stream:{p}")]
                for p in range(3)}

    def poison_batch(self) -> Batch:
        """A value JSON cannot carry."""
        return Batch((self.contract_event(
            "write", 9, {**contract_row(9, "poison"), "price": complex(1, 2)}),), 6)

    def test_snapshot_rows_and_unchanged_values_reach_the_stream_source(self) -> None:
        batch = self.read_and_unchanged_batch()
        self.apply_all([batch])
        read, update = batch.events
        source = RedisStreamSource(self.url)
        try:
            delivered = [e for b in source.stream(None, make_context(self.tmp_path), once=True)
                         for e in b.events]
        finally:
            source.close()
        assert delivered == [read, update]
        assert delivered[1].after is not None and delivered[1].after["price"] is UNCHANGED

    def test_each_key_lands_in_one_partition_in_order(self) -> None:
        batches = self.batches()
        self.apply_all(batches)
        state = self.observable_state()
        events = [e for b in batches for e in b.events]
        assert sum(len(v) for v in state.values()) == len(events)
        for event in events:
            assert contains(state[partition_of(event, 3)], event)
        for entries in state.values():
            seqs = [json.loads(e)["sequence"] for e in entries]
            assert seqs == sorted(seqs)


def test_snapshot_rows_sharing_a_sequence_are_all_appended(
    redis_db: str, client: redis.Redis, tmp_path: Path
) -> None:
    chunk = [user_event("read", pk, None, {"id": pk}, sequence=50) for pk in (1, 2, 3)]
    later = user_event("update", 1, {"id": 1}, {"id": 1, "v": 2}, sequence=51)
    sink = RedisStreamSink(redis_db, "s", partitions=1)
    sink.open(make_context(tmp_path))
    try:
        sink.apply(Batch(tuple(chunk), 1))
        sink.apply(Batch((later,), 2))
        sink.apply(Batch(tuple(chunk), 1))  # replayed after the later change: skipped
        sink.apply(Batch((later,), 2))
    finally:
        sink.close()
    appended = [event_from_json(fields["event"]) for _, fields in client.xrange("s:0")]
    assert appended == [*chunk, later]


def contains(entries: list[str], event: RowEvent) -> bool:
    return any(event_from_json(e) == event for e in entries)


def test_partition_hash_is_stable_across_processes() -> None:
    event = user_event("write", 42, None, {"id": 42})
    # crc32 of '["shop","users",42]' — a fixed value, not Python's per-process salted hash
    assert partition_of(event, 8) == partition_of(user_event("delete", 42, {"id": 42}, None), 8)
    assert [partition_of(user_event("write", pk, None, {}), 8) for pk in range(6)] == [
        partition_of(user_event("write", pk, None, {}), 8) for pk in range(6)]
    assert partition_of(event, 8) == zlib.crc32(b'["shop","users",42]') % 8


def test_maxlen_is_approximate_bound(redis_db: str, client: redis.Redis, tmp_path: Path) -> None:
    sink = RedisStreamSink(redis_db, "s", partitions=1, maxlen=100, dedupe=False)
    sink.open(make_context(tmp_path))
    try:
        for start in range(0, 1000, 50):
            sink.apply(Batch(tuple(user_event("write", i, None, {"id": i})
                                   for i in range(start, start + 50)), 1))
    finally:
        sink.close()
    assert 100 <= client.xlen("s:0") < 1000


def test_changing_the_partition_count_is_refused(redis_db: str, tmp_path: Path) -> None:
    produce(redis_db, tmp_path, [user_event("write", 1, None, {"id": 1})], partitions=4)
    sink = RedisStreamSink(redis_db, partitions=8)
    with pytest.raises(SinkError, match="already has 4 partitions") as caught:
        sink.open(make_context(tmp_path))
    assert caught.value.retryable is False
    assert sink.check() == [
        "partitions: stream 'meepo:stream' has 4 partitions, not 8; use the same count or a "
        "new stream name"]


class TestRedisStreamSourceContract(SourceContract):
    """One partition, so the contract's global order applies (the guarantee is per key)."""

    @pytest.fixture(autouse=True)
    def _redis(self, redis_db: str) -> None:
        self.url = redis_db
        self.next_pk = 0

    def make_source(self) -> RedisStreamSource:
        return RedisStreamSource(self.url, lease_ms=1000)

    def produce(self, count: int) -> list[Any]:
        pks = list(range(self.next_pk, self.next_pk + count))
        self.next_pk += count
        produce(self.url, self.tmp_path,
                [user_event("write", pk, None, {"id": pk}) for pk in pks], partitions=1)
        return pks


def test_entries_stay_pending_until_acknowledged(
    redis_db: str, client: redis.Redis, tmp_path: Path
) -> None:
    events = [user_event("update", pk % 5, {"id": pk % 5}, {"id": pk % 5, "v": pk})
              for pk in range(40)]
    produce(redis_db, tmp_path, events)
    source = RedisStreamSource(redis_db, lease_ms=2000)
    context = make_context(tmp_path, settings=PipelineSettings(batch_size=8))
    got: list[Batch] = []
    try:
        for batch in source.stream(None, context, once=True):
            got.append(batch)
        pending = sum(client.xpending(f"meepo:stream:{p}", "meepo")["pending"] for p in range(4))
        assert pending == 40  # delivered, not yet applied: nothing acked
        source.acknowledge(got[1].position)
        left = sum(client.xpending(f"meepo:stream:{p}", "meepo")["pending"] for p in range(4))
        assert left == 40 - len(got[0]) - len(got[1])
        source.acknowledge(got[-1].position)
        assert sum(client.xpending(f"meepo:stream:{p}", "meepo")["pending"]
                   for p in range(4)) == 0
    finally:
        source.close()
    delivered = [e for b in got for e in b.events]
    assert sorted(delivered, key=lambda e: e.after["v"]) == events  # type: ignore[index]
    for key in range(5):  # per-key order
        versions = [e.after["v"] for e in delivered if e.pk == key]  # type: ignore[index]
        assert versions == sorted(versions) and len(versions) == 8


def test_unacked_entries_of_a_closed_consumer_are_claimed_by_the_next(
    redis_db: str, client: redis.Redis, tmp_path: Path
) -> None:
    produce(redis_db, tmp_path, [user_event("write", pk, None, {"id": pk}) for pk in range(20)])
    first = RedisStreamSource(redis_db, lease_ms=1000, consumer="first")
    try:
        list(first.stream(None, make_context(tmp_path), once=True))
    finally:
        first.close()  # never acknowledged: as if its sinks failed before the checkpoint
    produce(redis_db, tmp_path, [user_event("write", pk, None, {"id": pk}) for pk in (20, 21)])
    second = RedisStreamSource(redis_db, lease_ms=1000, consumer="second")
    try:
        batches = list(second.stream(None, make_context(tmp_path), once=True))
        pks = sorted(e.pk for b in batches for e in b.events)
        assert pks == list(range(22))
        second.acknowledge(batches[-1].position)
    finally:
        second.close()
    assert sum(client.xpending(f"meepo:stream:{p}", "meepo")["pending"] for p in range(4)) == 0


def test_two_sources_split_the_partitions(redis_db: str, client: redis.Redis,
                                          tmp_path: Path) -> None:
    produce(redis_db, tmp_path, [user_event("write", pk, None, {"id": pk}) for pk in range(8)])
    contexts = [make_context(tmp_path / "a"), make_context(tmp_path / "b")]
    sources = [RedisStreamSource(redis_db, lease_ms=1500, consumer=n) for n in ("a", "b")]
    seen: dict[str, list[Any]] = {"a": [], "b": []}

    def run(source: RedisStreamSource, index: int) -> None:
        for batch in source.stream(None, contexts[index], once=False):
            seen[source.consumer] += [e.pk for e in batch.events]
            source.acknowledge(batch.position)

    threads = [threading.Thread(target=run, args=(s, i)) for i, s in enumerate(sources)]
    try:
        for thread in threads:
            thread.start()
        deadline = threading.Event()
        for _ in range(100):
            owners = {client.get(f"meepo:stream:{p}:lease:meepo") for p in range(4)}
            if owners == {"a", "b"} and len(seen["a"]) + len(seen["b"]) >= 8:
                break
            deadline.wait(0.1)
        assert owners == {"a", "b"}
        assert sorted(seen["a"] + seen["b"]) == list(range(8))
    finally:
        for context in contexts:
            context.stopping.set()
        for thread in threads:
            thread.join(timeout=10)
        for source in sources:
            source.close()
    assert not any(t.is_alive() for t in threads)
    assert client.keys("meepo:stream:*:lease:meepo") == []  # released on close
