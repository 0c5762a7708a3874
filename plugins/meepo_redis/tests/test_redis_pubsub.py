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
from meepo_core.testing import SinkContract, make_context

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

    def snapshot(self) -> Any:
        return sorted(set(self.subscriber.drain()))

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
