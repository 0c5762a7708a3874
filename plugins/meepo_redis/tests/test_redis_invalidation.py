"""The ``redis`` cache-invalidation sink against a real redis-server."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from meepo_redis.redis_sink import RedisSink

from meepo_core import UNCHANGED
from meepo_core.errors import ConfigError, SinkError
from meepo_core.events import Batch
from meepo_core.options import Options
from meepo_core.serialization import event_to_json
from meepo_core.testing import SinkContract, contract_row, make_context, run_meepo, write_config

from .conftest import user_event


class TestRedisSinkContract(SinkContract):
    sink_type = "redis"

    @pytest.fixture(autouse=True)
    def _redis(self, redis_db: str, client: redis.Redis) -> None:
        self.url = redis_db
        self.client = client

    def sink_options(self) -> dict[str, Any]:
        return {"url": self.url,
                "keys": {"meepo_contract.items": ["item:{id:d}", "item:name:{name}"]}}

    def poison_batch(self) -> Batch:
        """An id that the ``{id:d}`` format spec cannot render."""
        return Batch((self.contract_event("write", "x", {**contract_row(9, "x"), "id": "x"}),),
                     6)

    def prepare(self) -> None:
        for key in ("item:1", "item:2", "item:3", "item:4", "item:name:one", "item:name:deux",
                    "item:name:uno", "unrelated"):
            self.client.set(key, "cached")

    def observable_state(self) -> Any:
        return sorted(self.client.keys("*"))

    def test_contract_batches_invalidate_exactly_the_derived_keys(self) -> None:
        self.prepare()
        self.apply_all(self.batches())
        # item:4 was never changed; everything derived from an image is gone.
        assert self.observable_state() == ["item:4", "unrelated"]


def build(url: str, **options: Any) -> RedisSink:
    return RedisSink.from_options(Options({"type": "redis", "url": url, **options},
                                          "tool.meepo.pipelines.p.sinks[0]", Path.cwd()))


USERS: dict[str, Any] = {"shop.users": ["user:{id}", "user:email:{email}"],
                         "shop.orders": ["order:{id}"]}


def test_update_invalidates_keys_of_the_old_and_the_new_image(
    redis_db: str, client: redis.Redis, tmp_path: Path
) -> None:
    for key in ("user:7", "user:email:old@x.io", "user:email:new@x.io", "user:8"):
        client.set(key, "cached")
    sink = build(redis_db, keys=USERS)
    sink.open(make_context(tmp_path))
    try:
        sink.apply(Batch((user_event("update", 7, {"id": 7, "email": "old@x.io"},
                                     {"id": 7, "email": "new@x.io"}),), 1))
    finally:
        sink.close()
    assert sorted(client.keys("*")) == ["user:8"]


def test_a_snapshot_row_invalidates_the_keys_of_its_image(
    redis_db: str, client: redis.Redis, tmp_path: Path
) -> None:
    client.mset({"user:1": "c", "user:email:a@x.io": "c", "user:2": "c"})
    sink = build(redis_db, keys=USERS)
    sink.open(make_context(tmp_path))
    try:
        sink.apply(Batch((user_event("read", 1, None, {"id": 1, "email": "a@x.io"}),), 1))
    finally:
        sink.close()
    assert sorted(client.keys("*")) == ["user:2"]


def test_an_unchanged_column_renders_from_the_before_image(
    redis_db: str, client: redis.Redis, tmp_path: Path
) -> None:
    client.mset({"user:7": "c", "user:email:a@x.io": "c", "user:email:UNCHANGED": "c"})
    sink = build(redis_db, keys=USERS)
    sink.open(make_context(tmp_path))
    try:
        sink.apply(Batch((user_event("update", 7, {"id": 7, "email": "a@x.io", "bio": "old"},
                                     {"id": 7, "email": UNCHANGED, "bio": "new"}),), 1))
    finally:
        sink.close()
    assert client.keys("*") == ["user:email:UNCHANGED"]


def test_an_unchanged_column_no_image_holds_is_a_config_error(
    redis_db: str, client: redis.Redis, tmp_path: Path
) -> None:
    client.mset({"user:7": "c", "user:email:a@x.io": "c"})
    sink = build(redis_db, keys=USERS)
    sink.open(make_context(tmp_path))
    try:
        with pytest.raises(SinkError) as caught:
            sink.apply(Batch((user_event("update", 7, None, {"id": 7, "email": UNCHANGED}),), 1))
    finally:
        sink.close()
    assert caught.value.retryable is False
    assert str(caught.value) == (
        "tool.meepo.pipelines.p.sinks[0].keys.\"shop.users\"[1]: template 'user:email:{email}' "
        "uses column 'email', which the source left unchanged (not sent) in the after image of "
        "shop.users and the before image lacks; make the source log full row images (MySQL: "
        "binlog_row_image=FULL; PostgreSQL: REPLICA IDENTITY FULL)")
    assert sorted(client.keys("*")) == ["user:7", "user:email:a@x.io"]  # nothing applied


def test_write_and_delete_use_their_only_image(
    redis_db: str, client: redis.Redis, tmp_path: Path
) -> None:
    client.mset({"user:1": "c", "user:email:a@x.io": "c", "user:2": "c", "order:5": "c"})
    sink = build(redis_db, keys=USERS)
    sink.open(make_context(tmp_path))
    try:
        sink.apply(Batch((
            user_event("write", 1, None, {"id": 1, "email": "a@x.io"}),
            user_event("delete", 5, {"id": 5, "total": 3}, None, table="orders"),
            user_event("write", 3, None, {"id": 3}, table="not_configured"),
        ), 1))
    finally:
        sink.close()
    assert sorted(client.keys("*")) == ["user:2"]


def test_hash_fields_are_removed_with_hdel(
    redis_db: str, client: redis.Redis, tmp_path: Path
) -> None:
    client.hset("users", mapping={"1": "a", "2": "b"})
    client.hset("users:by_email", mapping={"a@x.io": "1", "old@x.io": "2", "b@x.io": "2"})
    sink = build(redis_db, hash_fields={
        "shop.users": {"users": ["{id}"], "users:by_email": ["{email}"]}})
    sink.open(make_context(tmp_path))
    try:
        sink.apply(Batch((user_event("update", 2, {"id": 2, "email": "old@x.io"},
                                     {"id": 2, "email": "b@x.io"}),), 1))
    finally:
        sink.close()
    assert client.hgetall("users") == {"1": "a"}
    assert client.hgetall("users:by_email") == {"a@x.io": "1"}


def test_prefix_is_prepended_to_every_key(
    redis_db: str, client: redis.Redis, tmp_path: Path
) -> None:
    client.mset({"app1:user:1": "c", "user:1": "c"})
    client.hset("app1:users", "1", "c")
    sink = build(redis_db, keys={"shop.users": ["user:{id}"]},
                 hash_fields={"shop.users": {"users": ["{id}"]}}, prefix="app1:")
    sink.open(make_context(tmp_path))
    try:
        sink.apply(Batch((user_event("write", 1, None, {"id": 1}),), 1))
    finally:
        sink.close()
    assert client.keys("*") == ["user:1"]  # only the prefixed ones went


def test_null_column_derives_no_key_and_format_specs_work(
    redis_db: str, client: redis.Redis, tmp_path: Path
) -> None:
    client.mset({"user:email:None": "c", "u:00000042": "c"})
    sink = build(redis_db, keys={"shop.users": ["user:email:{email}", "u:{id:08d}"]})
    sink.open(make_context(tmp_path))
    try:
        sink.apply(Batch((user_event("write", 42, None, {"id": 42, "email": None}),), 1))
    finally:
        sink.close()
    assert client.keys("*") == ["user:email:None"]


def test_missing_template_column_fails_at_the_first_event_naming_key_and_column(
    redis_db: str, client: redis.Redis, tmp_path: Path
) -> None:
    client.set("user:1", "c")
    sink = build(redis_db, keys={"shop.users": ["user:{id}", "user:email:{mail}"]})
    sink.open(make_context(tmp_path))
    try:
        with pytest.raises(SinkError) as caught:
            sink.apply(Batch((user_event("write", 1, None, {"id": 1, "email": "a"}),), 1))
    finally:
        sink.close()
    assert caught.value.retryable is False
    message = str(caught.value)
    assert message.startswith('tool.meepo.pipelines.p.sinks[0].keys."shop.users"[1]: ')
    assert "'mail'" in message and "columns: email, id" in message
    assert client.get("user:1") == "c"  # nothing of the batch was applied


def test_each_batch_is_one_round_trip(redis_db: str, client: redis.Redis, tmp_path: Path) -> None:
    sent: list[int] = []

    class CountingConnection(redis.Connection):
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            sent.append(1)
            super().send_packed_command(command, check_health)

    client.mset({f"user:{i}": "c" for i in range(200)})
    sink = build(redis_db, keys=USERS)
    sink.open(make_context(tmp_path))
    assert sink.client is not None
    sink.client.connection_pool.connection_class = CountingConnection
    events = tuple(
        user_event("update", i, {"id": i, "email": f"{i}@a"}, {"id": i, "email": f"{i}@b"})
        for i in range(200)
    )
    try:
        sink.client.ping()  # the connection handshake is not part of a batch
        sent.clear()
        sink.apply(Batch(events, 1))
        assert client.dbsize() == 0
        assert len(sent) == 1  # 200 events, 600 keys: one send, one reply
        sink.apply(Batch(events, 2))
        assert len(sent) == 2
    finally:
        sink.close()


def test_delay_ms_deletes_again_after_the_delay(
    redis_db: str, client: redis.Redis, tmp_path: Path
) -> None:
    client.set("user:1", "v1")
    sink = build(redis_db, keys={"shop.users": ["user:{id}"]}, delay_ms=1000)
    sink.open(make_context(tmp_path))
    try:
        began = time.monotonic()
        sink.apply(Batch((user_event("update", 1, {"id": 1}, {"id": 1}),), 1))
        assert client.get("user:1") is None  # first delete, synchronous
        client.set("user:1", "stale read from a lagging replica")  # the race it guards
        assert client.get("user:1") is not None
        while client.get("user:1") is not None and time.monotonic() - began < 10:
            time.sleep(0.02)
        elapsed = time.monotonic() - began
    finally:
        sink.close()
    assert client.get("user:1") is None
    assert 0.9 <= elapsed < 10


def test_close_runs_second_deletes_that_are_still_due(
    redis_db: str, client: redis.Redis, tmp_path: Path
) -> None:
    sink = build(redis_db, keys={"shop.users": ["user:{id}"]}, delay_ms=300)
    sink.open(make_context(tmp_path))
    sink.apply(Batch((user_event("write", 1, None, {"id": 1}),), 1))
    client.set("user:1", "stale")
    sink.close()  # graceful stop: waits for the scheduled second delete
    assert client.get("user:1") is None


@pytest.mark.parametrize(
    ("options", "key", "fragment"),
    [
        ({}, "keys", "required"),
        ({"keys": {"shop.users": "user:{}"}}, 'keys."shop.users"[0]', "positional field"),
        ({"keys": {"shop.users": [1]}}, 'keys."shop.users"[0]', "string template"),
        ({"keys": {"shop.users": []}}, 'keys."shop.users"', "list of key templates"),
        ({"keys": USERS, "delay_ms": -1}, "delay_ms", "at least 0"),
        ({"hash_fields": {"shop.users": ["{id}"]}}, 'hash_fields."shop.users"', "hash key"),
        ({"keys": USERS, "url": "http://x"}, "url", "not a Redis URL"),
    ],
)
def test_bad_options_name_the_key(options: dict[str, Any], key: str, fragment: str) -> None:
    raw = {"url": "redis://127.0.0.1:6379/0", **options}
    with pytest.raises(ConfigError) as caught:
        RedisSink.from_options(Options({"type": "redis", **raw}, "s[0]", Path.cwd()))
    assert caught.value.path == f"s[0].{key}"
    assert fragment in caught.value.reason


def test_cli_pipeline_drives_the_redis_sink_end_to_end(
    redis_db: str, client: redis.Redis, tmp_path: Path
) -> None:
    events = [
        user_event("write", 1, None, {"id": 1, "email": "a@x.io"}),
        user_event("update", 1, {"id": 1, "email": "a@x.io"}, {"id": 1, "email": "b@x.io"}),
        user_event("delete", 9, {"id": 9, "total": 1}, None, table="orders"),
    ]
    (tmp_path / "log.jsonl").write_text("".join(event_to_json(e) + "\n" for e in events))
    client.mset({"user:1": "c", "user:email:a@x.io": "c", "user:email:b@x.io": "c",
                 "order:9": "c", "order:10": "c"})
    write_config(tmp_path, {"inv": {
        "source": {"type": "jsonl", "path": "log.jsonl"},
        "sinks": [{"type": "redis", "url": redis_db, "keys": USERS}],
        "checkpoint": "none",
    }})
    done = run_meepo("run", "inv", "--once", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "3 events" in done.stderr
    assert client.keys("*") == ["order:10"]
    # a template naming a column the rows lack stops the run with exit 1 and the key path
    client.set("user:1", "c")
    write_config(tmp_path, {"inv": {
        "source": {"type": "jsonl", "path": "log.jsonl"},
        "sinks": [{"type": "redis", "url": redis_db, "keys": {"shop.users": ["u:{mail}"]}}],
        "checkpoint": "none",
    }})
    failed = run_meepo("run", "inv", "--once", cwd=tmp_path)
    assert failed.returncode == 1
    assert 'tool.meepo.pipelines.inv.sinks[0].keys."shop.users"[0]' in failed.stderr
    assert "'mail'" in failed.stderr
    assert json.loads(json.dumps(client.get("user:1"))) == "c"
