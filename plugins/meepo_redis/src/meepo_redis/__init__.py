"""meepo-redis: Redis sinks (invalidation, event store, pub/sub, streams), the Redis Streams
source, and Redis checkpoint and dead-letter stores."""

from .redis_events_sink import EventStore
from .redis_pubsub_sink import RedisPubSubSink
from .redis_sink import RedisSink
from .redis_stream_sink import RedisStreamSink
from .redis_stream_source import RedisStreamSource
from .stores import RedisCheckpointStore, RedisDeadLetterStore

__all__ = [
    "EventStore",
    "RedisCheckpointStore",
    "RedisDeadLetterStore",
    "RedisPubSubSink",
    "RedisSink",
    "RedisStreamSink",
    "RedisStreamSource",
]
