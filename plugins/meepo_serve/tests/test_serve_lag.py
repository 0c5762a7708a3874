"""Lag behind a stalled sink, against the truth: a Redis sink behind a proxy that the test
pauses, while a writer commits one change every 0.1 s."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from meepo_testkit.proxy import TcpProxy

from .conftest import Service, append_events, jsonl_pipeline, wait_for, write_config

pytestmark = pytest.mark.integration  # the redis sink comes from meepo-redis
redis = pytest.importorskip("redis", reason="the lag test's sink is meepo-redis's")

#: The issue asks for 60 s; CI runs 10 s (MEEPO_TEST_STALL_SECONDS=60 for the full length).
STALL_SECONDS = float(os.environ.get("MEEPO_TEST_STALL_SECONDS", "10"))


def test_reported_lag_follows_a_stalled_sink_and_returns_to_zero(
        tmp_path: Path, redis_db: str, serve: Callable[..., Service]) -> None:
    client = redis.Redis.from_url(redis_db)
    host, port = client.connection_pool.connection_kwargs["host"], client.connection_pool.\
        connection_kwargs["port"]
    proxy = TcpProxy(host, port)
    source = tmp_path / "orders.in.jsonl"
    source.touch()
    pipeline = jsonl_pipeline(tmp_path, "orders")
    pipeline["sinks"] = [{"type": "redis", "url": f"redis://127.0.0.1:{proxy.port}/0",
                          "keys": {"s.t": ["t:{id}"]}}]
    service = serve(write_config(tmp_path, {"orders": pipeline}))
    committed: dict[int, float] = {}  # pk -> commit time
    done = threading.Event()

    def write() -> None:
        pk = 1
        while not done.is_set():
            client.set(f"t:{pk}", 1)  # the sink deletes it when it applies the change
            committed[pk] = time.time()
            append_events(source, pk, 1)
            pk += 1
            time.sleep(0.1)

    def truth() -> float:
        """Now minus the commit time of the oldest change whose key is still there."""
        now = time.time()
        pending = [pk for pk in sorted(committed) if client.exists(f"t:{pk}")]
        return now - committed[pending[0]] if pending else 0.0

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(2)
        assert service.status("orders")["lag_seconds"] < 1
        proxy.pause()
        stalled_at = time.monotonic()
        errors = []
        while time.monotonic() - stalled_at < STALL_SECONDS:
            time.sleep(1)
            expected = truth()
            reported = service.status("orders")["lag_seconds"]
            errors.append(reported - expected)
        proxy.resume()
        print(f"lag error while stalled for {STALL_SECONDS:.0f}s: "
              f"{min(errors):+.2f}..{max(errors):+.2f}s; last truth {expected:.1f}s")
        assert expected > STALL_SECONDS - 2  # the sink really was behind
        assert all(abs(error) <= 1 for error in errors), errors
        wait_for(lambda: service.status("orders")["lag_seconds"] < 0.5, timeout=30,
                 what="lag back to about 0")
        assert truth() < 1
    finally:
        done.set()
        writer.join()
        proxy.close()


def test_sigterm_with_a_hung_sink_still_ends_within_stop_timeout(
        tmp_path: Path, redis_db: str, serve: Callable[..., Service]) -> None:
    client = redis.Redis.from_url(redis_db)
    kwargs = client.connection_pool.connection_kwargs
    proxy = TcpProxy(kwargs["host"], kwargs["port"])
    try:
        source = tmp_path / "orders.in.jsonl"
        source.touch()
        pipeline = jsonl_pipeline(tmp_path, "orders")
        pipeline["sinks"] = [{"type": "redis", "url": f"redis://127.0.0.1:{proxy.port}/0",
                              "keys": {"s.t": ["t:{id}"]}}]
        others = {"users": jsonl_pipeline(tmp_path, "users")}
        append_events(tmp_path / "users.in.jsonl", 1, 3)
        config = write_config(tmp_path, {"orders": pipeline, **others},
                              serve={"stop_timeout": 3})
        service = serve(config)
        append_events(source, 1, 1)
        wait_for(lambda: service.status("orders")["checkpoint"] is not None)
        proxy.pause()  # the sink hangs in its next apply (socket timeout 30 s)
        append_events(source, 2, 1)
        wait_for(lambda: service.status("orders")["lag_seconds"] > 0.5)
        began = time.monotonic()
        assert service.stop() == 1
        assert time.monotonic() - began < 3 + 3
        assert service.lines[-1] == "meepo serve: stopped; did not stop in time: orders"
        # the other pipeline stopped gracefully: its checkpoint covers all it delivered
        saved = json.loads((tmp_path / "users.cp.json").read_text())["position"]["offset"]
        assert saved == (tmp_path / "users.in.jsonl").stat().st_size
    finally:
        proxy.close()
