"""meepo-redis: Redis sinks (invalidation, event store, pub/sub, streams), the Redis Streams
source, and Redis checkpoint and dead-letter stores."""

from .event_store import EventStore
from .invalidation import RedisSink
from .pubsub import RedisPubSubSink
from .stores import RedisCheckpointStore, RedisDeadLetterStore
from .stream_sink import RedisStreamSink
from .stream_source import RedisStreamSource

__all__ = [
    "EventStore",
    "RedisCheckpointStore",
    "RedisDeadLetterStore",
    "RedisPubSubSink",
    "RedisSink",
    "RedisStreamSink",
    "RedisStreamSource",
]
