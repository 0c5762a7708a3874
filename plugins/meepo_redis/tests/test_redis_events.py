"""The ``redis-events`` event store: guarded writes, replay queries, the CLI command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from meepo_redis.cli import parse_time
from meepo_redis.redis_events_sink import RedisEventsSink, pk_member

from meepo_core.events import Batch
from meepo_core.serialization import event_to_json
from meepo_core.testing import SinkContract, make_context, run_meepo, write_config

from .conftest import user_event

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
#: committed_at of the contract's events, as the sorted-set score.
STAMP_SECONDS = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


class TestRedisEventsContract(SinkContract):
    sink_type = "redis-events"

    @pytest.fixture(autouse=True)
    def _redis(self, redis_db: str, client: redis.Redis) -> None:
        self.url = redis_db
        self.client = client

    def sink_options(self) -> dict[str, Any]:
        return {"url": self.url, "ttl": 3600}

    def observable_state(self) -> Any:
        return {key: self.client.zrange(key, 0, -1, withscores=True)
                for key in sorted(self.client.keys("*"))}

    def poison_batch(self) -> None:
        return None  # any pk and time can be recorded

    def test_a_snapshot_row_is_recorded_under_its_read_name(self) -> None:
        row = {"id": 5, "name": "five"}
        self.apply_all([Batch((self.contract_event("read", 5, row),), 1)])
        assert self.observable_state() == {"meepo:events:items_read": [("5", STAMP_SECONDS)]}

    def test_contract_batches_record_each_name(self) -> None:
        self.apply_all(self.batches())
        state = self.observable_state()
        assert sorted(state) == ["meepo:events:items_delete", "meepo:events:items_update",
                                 "meepo:events:items_write"]
        assert [pk for pk, _ in state["meepo:events:items_update"]] == ["1", "2"]
        assert 3590 < self.client.ttl("meepo:events:items_write") <= 3600


def make_sink(url: str, tmp_path: Path, **options: Any) -> RedisEventsSink:
    sink = RedisEventsSink(url, **options)
    sink.open(make_context(tmp_path))
    return sink


def test_stale_timestamp_never_overwrites_a_newer_one(
    redis_db: str, client: redis.Redis, tmp_path: Path
) -> None:
    sink = make_sink(redis_db, tmp_path)
    try:
        sink.apply(Batch((user_event("update", 1, {"id": 1}, {"id": 1}, at=T0),), 1))
        # a late, replayed or out-of-order event for the same pk with an older time
        older = T0 - timedelta(minutes=5)
        sink.apply(Batch((user_event("update", 1, {"id": 1}, {"id": 1}, at=older),
                          user_event("update", 2, {"id": 2}, {"id": 2}, at=older)), 2))
        assert sink.store is not None
        assert sink.store.last_change("users_update", 1) == T0
        assert sink.store.last_change("users_update", 2) == older
        assert sink.store.record("users_update", 1, T0) is False  # equal is not newer
        assert sink.store.record("users_update", 1, T0 + timedelta(seconds=1)) is True
        assert sink.store.last_change("users_update", 1) == T0 + timedelta(seconds=1)
    finally:
        sink.close()
    newest = (T0 + timedelta(seconds=1)).timestamp()
    assert client.zscore("meepo:events:users_update", "1") == newest


def test_replay_since_and_between(redis_db: str, tmp_path: Path) -> None:
    sink = make_sink(redis_db, tmp_path)
    try:
        sink.apply(Batch(tuple(
            user_event("write", pk, None, {"id": pk}, at=T0 + timedelta(minutes=pk))
            for pk in range(1, 6)
        ), 1))
        sink.apply(Batch((user_event("write", 2, None, {"id": 2}, at=T0 + timedelta(hours=1)),),
                         2))
        store = sink.store
        assert store is not None
        assert [pk for pk, _ in store.replay("users_write", T0 + timedelta(minutes=3))] == [
            "3", "4", "5", "2"]
        between = store.replay("users_write", T0 + timedelta(minutes=2),
                               T0 + timedelta(minutes=4))
        assert between == [("3", T0 + timedelta(minutes=3)), ("4", T0 + timedelta(minutes=4))]
        assert store.last_change("users_write", 99) is None
        assert store.replay("users_delete", T0) == []
    finally:
        sink.close()


def test_day_partitions_and_ttl(redis_db: str, client: redis.Redis, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    yesterday = now - timedelta(days=1)
    sink = make_sink(redis_db, tmp_path, partition="day", ttl=7 * 86400, namespace="ev")
    try:
        sink.apply(Batch((user_event("update", 1, {"id": 1}, {"id": 1}, at=yesterday),
                          user_event("update", 2, {"id": 2}, {"id": 2}, at=yesterday),
                          user_event("update", 1, {"id": 1}, {"id": 1}, at=now)), 1))
        assert sorted(client.keys("*")) == sorted(
            [f"ev:{yesterday.date()}:users_update", f"ev:{now.date()}:users_update"])
        assert all(0 < client.ttl(k) <= 7 * 86400 for k in client.keys("*"))
        store = sink.store
        assert store is not None
        rows = store.replay("users_update", yesterday - timedelta(seconds=1))
        assert rows == [("2", yesterday), ("1", now)]  # pk 1 once, at its last change
        assert store.last_change("users_update", 1) == now
        with pytest.raises(ValueError, match="narrow"):
            store.replay("users_update", now - timedelta(days=1000))
    finally:
        sink.close()


def test_composite_pk_member_is_json() -> None:
    assert pk_member((1, "a")) == '[1,"a"]'
    assert pk_member(7) == "7"


def test_parse_time_forms() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    assert parse_time("1d", now=now) == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_time("90s", now=now) == now - timedelta(seconds=90)
    assert parse_time("2026-01-01T08:00:00+08:00") == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_time("2026-01-01") == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_time("0") == datetime(1970, 1, 1, tzinfo=UTC)


def test_replay_command_by_pipeline_and_by_url(
    redis_db: str, client: redis.Redis, tmp_path: Path
) -> None:
    events = [user_event("write", pk, None, {"id": pk}, at=T0 + timedelta(minutes=pk))
              for pk in (1, 2, 3)]
    (tmp_path / "log.jsonl").write_text("".join(event_to_json(e) + "\n" for e in events))
    write_config(tmp_path, {"audit": {
        "source": {"type": "jsonl", "path": "log.jsonl"},
        "sinks": [{"type": "print"}, {"type": "redis-events", "url": redis_db, "namespace": "ns"}],
        "checkpoint": "none",
    }})
    done = run_meepo("run", "audit", "--once", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    by_pipeline = run_meepo("redis", "replay", "audit", "users_write",
                            "--since", "2026-03-01T12:01:30Z", cwd=tmp_path)
    assert by_pipeline.returncode == 0, by_pipeline.stderr
    assert by_pipeline.stdout.splitlines() == [
        "2\t2026-03-01T12:02:00+00:00", "3\t2026-03-01T12:03:00+00:00"]
    by_url = run_meepo("redis", "replay", redis_db, "users_write", "--namespace", "ns",
                       "--since", "2026-03-01T12:00:00Z", "--until", "2026-03-01T12:01:00Z",
                       cwd=tmp_path)
    assert by_url.returncode == 0, by_url.stderr
    assert by_url.stdout.splitlines() == ["1\t2026-03-01T12:01:00+00:00"]
    last = run_meepo("redis", "last", "audit", "users_write", "3", cwd=tmp_path)
    assert last.stdout.strip() == "2026-03-01T12:03:00+00:00"
    bad = run_meepo("redis", "replay", "audit", "users_write", "--since", "yesterday-ish",
                    cwd=tmp_path)
    assert bad.returncode == 2 and "not a time" in bad.stderr
    assert client.exists("ns:users_write") == 1
