"""meepo-redis: Redis sinks (invalidation, event store, pub/sub, streams), the Redis Streams
source, and Redis checkpoint and dead-letter stores."""

from __future__ import annotations

from meepo_core import lazy_exports

# Imported on first use, so that loading the plugin does not import the Redis client.
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
__getattr__ = lazy_exports(__name__, _HOMES)
