"""meepo-redis registrations: four sinks, one source, checkpoint and dead-letter stores,
and the ``meepo redis`` commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from meepo_core import hookimpl

from .cli import redis_group
from .redis_events_sink import RedisEventsSink
from .redis_pubsub_sink import RedisPubSubSink
from .redis_sink import RedisSink
from .redis_stream_sink import RedisStreamSink
from .redis_stream_source import RedisStreamSource
from .stores import RedisCheckpointStore, RedisDeadLetterStore

SCHEMES = ("redis", "rediss", "unix")


@hookimpl
def meepo_register_sinks(register: Callable[[str, Any], None]) -> None:
    register("redis", RedisSink)
    register("redis-events", RedisEventsSink)
    register("redis-pubsub", RedisPubSubSink)
    register("redis-stream", RedisStreamSink)


@hookimpl
def meepo_register_sources(register: Callable[[str, Any], None]) -> None:
    register("redis-stream", RedisStreamSource)


@hookimpl
def meepo_register_checkpoint_stores(register: Callable[[str, Any], None]) -> None:
    for scheme in SCHEMES:
        register(scheme, RedisCheckpointStore.from_url)


@hookimpl
def meepo_register_dead_letter_stores(register: Callable[[str, Any], None]) -> None:
    for scheme in SCHEMES:
        register(scheme, RedisDeadLetterStore.from_url)


@hookimpl
def meepo_add_commands(cli: click.Group) -> None:
    cli.add_command(redis_group)
