"""Scale-out: two real ``meepo run`` workers share the partitions of a Redis Stream; one is
SIGKILLed with entries pending, and the survivor claims and applies them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import redis
from meepo_redis.redis_stream_sink import RedisStreamSink
from meepo_testkit.servers import RedisServer

from meepo_core.events import Batch
from meepo_core.testing import make_context, meepo_command, write_config

from .conftest import user_event

PARTITIONS = 4
KEYS = 20
LEASE_MS = 2000


def produce(url: str, tmp_path: Path, versions: range) -> None:
    """``KEYS`` users, each updated once per version, in version order (sequence-less, so
    the workers' jsonl sinks keep every line)."""
    sink = RedisStreamSink(url, partitions=PARTITIONS, dedupe=False)
    sink.open(make_context(tmp_path))
    try:
        for version in versions:
            sink.apply(Batch(tuple(
                user_event("update", key, {"id": key}, {"id": key, "v": version})
                for key in range(KEYS)), None))
    finally:
        sink.close()


def applied(path: Path) -> list[tuple[int, int]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        event = json.loads(line)
        out.append((event["pk"], event["after"]["v"]))
    return out


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def cache_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A second real Redis, the cache that worker A invalidates; stopping it makes A's sink
    fail (and retry) so that A holds delivered, unacknowledged entries."""
    with RedisServer(tmp_path / "cache") as server:
        yield server


def test_workers_share_partitions_and_survive_a_sigkill(
    redis_db: str, client: redis.Redis, cache_server: RedisServer, tmp_path: Path
) -> None:
    source = {"type": "redis-stream", "url": redis_db, "lease_ms": LEASE_MS}
    tuning = {"checkpoint": "none", "batch_size": 10, "batch_wait": 0.05, "max_retries": 10_000,
              "retry_backoff": 0.1, "retry_backoff_max": 0.2, "status_interval": 0}
    config = write_config(tmp_path, {
        "worker_a": {
            "source": {**source, "consumer": "A"},
            "sinks": [{"type": "jsonl", "path": "out-a.jsonl"},
                      {"type": "redis", "url": cache_server.url,
                       "keys": {"shop.users": ["user:{id}"]}}],
            **tuning},
        "worker_b": {
            "source": {**source, "consumer": "B"},
            "sinks": [{"type": "jsonl", "path": "out-b.jsonl"}],
            **tuning},
    })
    out_a, out_b = tmp_path / "out-a.jsonl", tmp_path / "out-b.jsonl"
    produce(redis_db, tmp_path, range(0))  # creates the stream's meta: N partitions
    logs: list[IO[bytes]] = []
    workers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in ("a", "b"):
            log = (tmp_path / f"worker-{name}.log").open("wb")
            logs.append(log)
            workers[name] = subprocess.Popen(
                meepo_command("--config", str(config), "run", f"worker_{name}"),
                cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)

        def leases() -> set[Any]:
            return {client.get(f"meepo:stream:{p}:lease:meepo") for p in range(PARTITIONS)}

        # 1. both workers own partitions and together apply all 100 events
        every = {(k, v) for k in range(KEYS) for v in range(5)}
        wait_for(lambda: leases() == {"A", "B"}, 30, "both workers to hold leases")
        produce(redis_db, tmp_path, range(0, 5))
        wait_for(lambda: set(applied(out_a)) | set(applied(out_b)) >= every, 30,
                 "phase 1 applied")
        keys_a = {k for k, _ in applied(out_a)}
        keys_b = {k for k, _ in applied(out_b)}
        assert keys_a and keys_b and not keys_a & keys_b  # shared, each key in one worker

        # 2. A's cache goes down: A applies to jsonl, fails on redis, retries; entries pend
        cache_server.stop()
        produce(redis_db, tmp_path, range(5, 10))

        def pending_of_a() -> list[dict[str, Any]]:
            return [entry for p in range(PARTITIONS) for entry in client.xpending_range(
                f"meepo:stream:{p}", "meepo", "-", "+", 1000, consumername="A")]

        wait_for(lambda: len(pending_of_a()) > 0, 30, "A to hold pending entries")
        time.sleep(1.0)  # let A read a little more while it is stuck
        stuck: set[tuple[int, int]] = set()
        for p in range(PARTITIONS):
            for entry in client.xpending_range(f"meepo:stream:{p}", "meepo", "-", "+", 1000,
                                               consumername="A"):
                (_, fields), = client.xrange(f"meepo:stream:{p}", entry["message_id"],
                                             entry["message_id"])
                event = json.loads(fields["event"])
                stuck.add((event["pk"], event["after"]["v"]))
        assert stuck

        # 3. SIGKILL A: no graceful anything. B must claim A's partitions and pending entries.
        os.kill(workers["a"].pid, signal.SIGKILL)
        workers["a"].wait(timeout=10)
        everything = {(k, v) for k in range(KEYS) for v in range(10)}
        wait_for(lambda: set(applied(out_b)) >= everything - set(applied(out_a)), 60,
                 "B to apply everything A had not")
        wait_for(lambda: sum(client.xpending(f"meepo:stream:{p}", "meepo")["pending"]
                             for p in range(PARTITIONS)) == 0, 30, "every entry acknowledged")
        assert leases() == {"B"}
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in workers.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs:
            log.close()
    assert workers["b"].returncode == 0, (tmp_path / "worker-b.log").read_text()[-3000:]

    a, b = applied(out_a), applied(out_b)
    # no event lost
    assert set(a) | set(b) == everything
    # A's pending entries were reclaimed and applied by B
    assert stuck <= set(b)
    # per-key order holds within each worker: versions of a key only ever increase
    for rows in (a, b):
        per_key: dict[int, list[int]] = defaultdict(list)
        for key, version in rows:
            per_key[key].append(version)
        for versions in per_key.values():
            assert versions == sorted(versions), versions
    # the handed-over keys continue in B from A's first unacknowledged entry, up to the end
    for key in keys_a:
        b_versions = [v for k, v in b if k == key]
        assert b_versions and b_versions[-1] == 9
        stuck_versions = [v for k, v in stuck if k == key]
        if stuck_versions:
            assert b_versions[0] <= min(stuck_versions)
    log_b = (tmp_path / "worker-b.log").read_text()
    assert "claimed" in log_b and "pending entries" in log_b
