"""meepo-redis registrations: four sinks, one source, checkpoint and dead-letter stores,
and the ``meepo redis`` commands. Everything is imported on first use, so that meepo
commands that use no Redis type do not load the Redis client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from meepo_core import hookimpl

SCHEMES = ("redis", "rediss", "unix")


@hookimpl
def meepo_register_sinks(register: Callable[[str, Any], None]) -> None:
    register("redis", "meepo_redis.redis_sink:RedisSink")
    register("redis-events", "meepo_redis.redis_events_sink:RedisEventsSink")
    register("redis-pubsub", "meepo_redis.redis_pubsub_sink:RedisPubSubSink")
    register("redis-stream", "meepo_redis.redis_stream_sink:RedisStreamSink")


@hookimpl
def meepo_register_sources(register: Callable[[str, Any], None]) -> None:
    register("redis-stream", "meepo_redis.redis_stream_source:RedisStreamSource")


@hookimpl
def meepo_register_checkpoint_stores(register: Callable[[str, Any], None]) -> None:
    for scheme in SCHEMES:
        register(scheme, "meepo_redis.stores:RedisCheckpointStore.from_url")


@hookimpl
def meepo_register_dead_letter_stores(register: Callable[[str, Any], None]) -> None:
    for scheme in SCHEMES:
        register(scheme, "meepo_redis.stores:RedisDeadLetterStore.from_url")


class _RedisCommands(click.Group):
    """``meepo redis``: its commands (meepo_redis.cli) load when it is used."""

    def _loaded(self) -> click.Group:
        from .cli import redis_group

        return redis_group

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._loaded().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._loaded().get_command(ctx, cmd_name)


@hookimpl
def meepo_add_commands(cli: click.Group) -> None:
    cli.add_command(_RedisCommands(
        name="redis", help="Query what the redis-events sink recorded (meepo-redis)."))
