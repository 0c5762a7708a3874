"""Side-by-side throughput of the meepo-redis sinks and stream source on a private
redis-server (ratios matter, absolute numbers depend on the machine).

    python bench/bench_redis_sinks.py
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import redis
from meepo_redis.redis_events_sink import RedisEventsSink
from meepo_redis.redis_sink import RedisSink
from meepo_redis.redis_stream_sink import RedisStreamSink
from meepo_redis.redis_stream_source import RedisStreamSource
from meepo_testkit.servers import RedisServer

from meepo_core import Batch, Options, PipelineSettings, RowEvent
from meepo_core.testing import make_context

EVENTS = 20_000
BATCH = 1000
STAMP = datetime(2026, 1, 1, tzinfo=UTC)


def events() -> list[RowEvent]:
    return [RowEvent("shop", "users", "update", i, {"id": i, "email": f"{i}@a"},
                     {"id": i, "email": f"{i}@b"}, None, STAMP, None, i + 1)
            for i in range(EVENTS)]


def batches(items: list[RowEvent]) -> list[Batch]:
    return [Batch(tuple(items[i:i + BATCH]), i) for i in range(0, len(items), BATCH)]


def rate(seconds: float) -> str:
    return f"{EVENTS / seconds:>10,.0f} events/s"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp) / "r") as server:
        url, items = server.url, events()
        context = make_context(Path(tmp))
        client = redis.Redis.from_url(url)

        sink = RedisSink.from_options(Options(
            {"url": url, "keys": {"shop.users": ["user:{id}", "user:email:{email}"]}},
            "bench", Path(tmp)))
        sink.open(context)
        began = time.perf_counter()
        for batch in batches(items):
            sink.apply(batch)
        pipelined = time.perf_counter() - began
        sink.close()

        began = time.perf_counter()
        for event in items:  # the naive way: one DEL round trip per key
            for image in (event.before, event.after):
                assert image is not None
                client.delete(f"user:{image['id']}")
                client.delete(f"user:email:{image['email']}")
        naive = time.perf_counter() - began
        print(f"redis sink, pipelined per batch of {BATCH}: {rate(pipelined)}")
        print(f"DEL per key, one round trip each:          {rate(naive)}"
              f"   (pipelined is {naive / pipelined:.1f}x faster)")

        events_sink = RedisEventsSink(url)
        events_sink.open(context)
        began = time.perf_counter()
        for batch in batches(items):
            events_sink.apply(batch)
        print(f"redis-events sink (Lua guard, pipelined):   {rate(time.perf_counter() - began)}")
        events_sink.close()

        stream_sink = RedisStreamSink(url, partitions=8)
        stream_sink.open(context)
        began = time.perf_counter()
        for batch in batches(items):
            stream_sink.apply(batch)
        print(f"redis-stream sink (8 partitions):           {rate(time.perf_counter() - began)}")
        stream_sink.close()

        source = RedisStreamSource(url, lease_ms=5000)
        context = make_context(Path(tmp), settings=PipelineSettings(batch_size=BATCH))
        began, seen = time.perf_counter(), 0
        for batch in source.stream(None, context, once=True):
            seen += len(batch.events)
            source.acknowledge(batch.position)
        print(f"redis-stream source (read + XACK):          {rate(time.perf_counter() - began)}"
              f"   ({seen} events)")
        source.close()


if __name__ == "__main__":
    main()
