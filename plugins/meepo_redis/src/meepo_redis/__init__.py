"""meepo-redis: Redis sinks (invalidation, event store, pub/sub, streams), the Redis Streams
source, and Redis checkpoint and dead-letter stores."""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "EventStore": "redis_events_sink",
    "RedisCheckpointStore": "stores",
    "RedisDeadLetterStore": "stores",
    "RedisPubSubSink": "redis_pubsub_sink",
    "RedisSink": "redis_sink",
    "RedisStreamSink": "redis_stream_sink",
    "RedisStreamSource": "redis_stream_source",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    # Lazy, so that loading the plugin does not import the Redis client.
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(name)
