"""The ``redis-pubsub`` sink, observed by a real subscriber."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from meepo_redis.redis_pubsub_sink import RedisPubSubSink

from meepo_core.events import Batch, RowEvent
from meepo_core.serialization import event_from_json
from meepo_core.testing import SinkContract, contract_row, make_context

from .conftest import user_event


class Subscriber:
    """A real Redis subscriber on a pattern; ``drain`` returns what arrived so far."""

    def __init__(self, url: str, pattern: str) -> None:
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe(pattern)
        self.pubsub.get_message(timeout=2)  # the subscribe confirmation
        self.received: list[tuple[str, str]] = []

    def drain(self, quiet: float = 0.3) -> list[tuple[str, str]]:
        while (message := self.pubsub.get_message(timeout=quiet)) is not None:
            self.received.append((message["channel"], message["data"]))
        return self.received

    def close(self) -> None:
        self.pubsub.close()
        self.client.close()


@pytest.fixture
def subscriber(redis_db: str) -> Iterator[Subscriber]:
    sub = Subscriber(redis_db, "meepo:*")
    yield sub
    sub.close()


class TestRedisPubSubContract(SinkContract):
    """Pub/sub keeps no state; the observable state is the set of distinct messages a
    subscriber received (replays publish again; subscribers de-duplicate)."""

    sink_type = "redis-pubsub"

    @pytest.fixture(autouse=True)
    def _redis(self, redis_db: str, subscriber: Subscriber) -> None:
        self.url = redis_db
        self.subscriber = subscriber

    def sink_options(self) -> dict[str, Any]:
        return {"url": self.url}

    def observable_state(self) -> Any:
        return sorted(set(self.subscriber.drain()))

    def poison_batch(self) -> Batch:
        """A value JSON cannot carry."""
        return Batch((self.contract_event(
            "write", 9, {**contract_row(9, "poison"), "price": complex(1, 2)}),), 6)

    def test_snapshot_rows_and_unchanged_values_arrive_as_sent(self) -> None:
        batch = self.read_and_unchanged_batch()
        self.apply_all([batch])
        read, update = batch.events
        received = self.subscriber.drain()
        assert [channel for channel, _ in received] == ["meepo:items", "meepo:items"]
        assert [event_from_json(data) for _, data in received] == [read, update]
        assert json.loads(received[1][1])["after"]["price"] == {"$unchanged": True}

    def test_every_event_arrives_in_order_on_its_table_channel(self) -> None:
        batches = self.batches()
        self.apply_all(batches)
        received = self.subscriber.drain()
        expected = [e for b in batches for e in b.events]
        assert [channel for channel, _ in received] == ["meepo:items"] * len(expected)
        assert [event_from_json(data) for _, data in received] == expected


def test_channel_template_and_subscriber_count(
    redis_db: str, subscriber: Subscriber, tmp_path: Path
) -> None:
    sink = RedisPubSubSink(redis_db, "meepo:{schema}:{name}")
    sink.open(make_context(tmp_path))
    try:
        sink.apply(Batch((user_event("write", 1, None, {"id": 1}),
                          user_event("delete", 2, {"id": 2}, None, table="orders")), 1))
    finally:
        sink.close()
    received = subscriber.drain()
    assert [c for c, _ in received] == ["meepo:shop:users_write", "meepo:shop:orders_delete"]
    assert json.loads(received[1][1])["before"] == {"id": 2}


def test_unencodable_value_goes_to_the_dead_letters(
    redis_db: str, subscriber: Subscriber, tmp_path: Path
) -> None:
    context = make_context(tmp_path)
    sink = RedisPubSubSink(redis_db)
    sink.open(context)
    bad = RowEvent("shop", "users", "write", 1, None, {"id": 1, "blob": object()}, None,
                   datetime(2026, 1, 1, tzinfo=UTC))
    try:
        sink.apply(Batch((user_event("write", 2, None, {"id": 2}), bad), 1))
    finally:
        sink.close()
    context.dead_letters.close()
    assert [json.loads(m)["pk"] for _, m in subscriber.drain()] == [2]
    letters = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert len(letters) == 1 and letters[0]["event"]["name"] == "users_write"
    assert "cannot encode as JSON" in letters[0]["error"]
    assert "object" in letters[0]["event"]["after"]
    assert context.metrics.failures[(sink.label, "dead_letter")] == 1


def test_deep_values_are_published_or_dead_lettered_never_raised(
    redis_db: str, subscriber: Subscriber, tmp_path: Path
) -> None:
    """900 levels (a JSON column a source can decode) are published whole; 20,000 levels
    (no JSON encoder writes them) are a dead letter; the batch goes on around them."""
    def nested(depth: int) -> list[Any]:
        value: list[Any] = []
        for _ in range(depth - 1):
            value = [value]
        return value

    context = make_context(tmp_path)
    sink = RedisPubSubSink(redis_db)
    sink.open(context)
    try:
        sink.apply(Batch(tuple(user_event("write", pk, None, {"id": pk, "doc": nested(depth)})
                               for pk, depth in ((1, 900), (2, 20_000), (3, 1))), 1))
    finally:
        sink.close()
    context.dead_letters.close()
    published = [json.loads(m) for _, m in subscriber.drain()]
    assert [(m["pk"], m["after"]["doc"]) for m in published] == [(1, nested(900)), (3, [])]
    letters = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert [letter["event"]["pk"] for letter in letters] == ["2"]
    assert letters[0]["error"].startswith("cannot encode as JSON: maximum recursion depth")
