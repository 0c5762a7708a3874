"""``meepo redis ...``: query the ``redis-events`` store from the command line."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from meepo_core import ConfigError, MeepoError, Options

from .connection import check_url, connect
from .redis_events_sink import DEFAULT_NAMESPACE, PARTITIONS, EventStore

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """``2026-01-31``, ``2026-01-31T12:00:00+08:00`` (naive means UTC), a Unix timestamp,
    or a duration ago such as ``90s``, ``15m``, ``2h``, ``1d``, ``1w``."""
    now = now or datetime.now(UTC)
    value = text.strip()
    match = _RELATIVE.match(value)
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a time; write 2026-01-31T12:00:00Z, a Unix timestamp, or 15m/2h/1d"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class TimeType(click.ParamType):  # type: ignore[type-arg]
    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> datetime:
        return value if isinstance(value, datetime) else parse_time(str(value))


def open_store(ctx: click.Context, target: str, namespace: str | None,
               partition: str | None) -> EventStore:
    """The store of pipeline ``target``'s first ``redis-events`` sink, or at URL ``target``."""
    if "://" in target:
        try:
            check_url(target)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="PIPELINE_OR_URL") from None
        return EventStore(connect(target), namespace or DEFAULT_NAMESPACE, partition or "none")
    state = ctx.find_root().obj
    config = state.config
    options = config.pipeline_options(target)
    sinks = options.data.get("sinks") or []
    for index, raw in enumerate(sinks):
        if isinstance(raw, dict) and raw.get("type") == "redis-events":
            from .redis_events_sink import RedisEventsSink

            path = options.key_path(f"sinks[{index}]")
            sink = RedisEventsSink.from_options(Options(raw, path, config.base_dir))
            return EventStore(connect(sink.url), namespace or sink.namespace,
                              partition or sink.partition, sink.ttl)
    raise ConfigError(options.key_path("sinks"),
                      f"pipeline {target!r} has no redis-events sink; pass a redis:// URL instead")


@click.group(name="redis")
def redis_group() -> None:
    """Query what the redis-events sink recorded (meepo-redis)."""


_target = click.argument("target", metavar="PIPELINE_OR_URL")
_namespace = click.option("--namespace", default=None,
                          help=f"Key namespace (default: the sink's, or {DEFAULT_NAMESPACE}).")
_partition = click.option("--partition", type=click.Choice(PARTITIONS), default=None,
                          help="Day-partitioned keys? (default: the sink's, or none).")


@redis_group.command()
@_target
@click.argument("event")
@click.option("--since", type=TimeType(), required=True,
              help="Start: 2026-01-31T12:00Z, a Unix timestamp, or 15m/2h/1d ago.")
@click.option("--until", type=TimeType(), default=None, help="End (default: now).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@_namespace
@_partition
@click.pass_context
def replay(ctx: click.Context, target: str, event: str, since: datetime, until: datetime | None,
           as_json: bool, namespace: str | None, partition: str | None) -> None:
    """Print the pks whose last EVENT (e.g. users_update) happened since --since, oldest
    first: `PK<TAB>ISO-TIME` per line.

    \b
    Examples:
      meepo redis replay orders users_update --since 1h
      meepo redis replay redis://cache:6379/0 users_write --since 2026-01-31 --until 2026-02-01
    """
    store = open_store(ctx, target, namespace, partition)
    try:
        rows = store.replay(event, since, until)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since/--until") from None
    except Exception as exc:
        raise MeepoError(f"cannot query Redis: {exc}") from exc
    for pk, at in rows:
        if as_json:
            click.echo(json.dumps({"pk": pk, "at": at.isoformat()}))
        else:
            click.echo(f"{pk}\t{at.isoformat()}")


@redis_group.command()
@_target
@click.argument("event")
@click.argument("pk")
@_namespace
@_partition
@click.pass_context
def last(ctx: click.Context, target: str, event: str, pk: str, namespace: str | None,
         partition: str | None) -> None:
    """Print when PK last had EVENT (ISO time), or exit 1 when never recorded.

    \b
    Example:
      meepo redis last orders users_update 42
    """
    store = open_store(ctx, target, namespace, partition)
    try:
        at = store.last_change(event, pk)
    except Exception as exc:
        raise MeepoError(f"cannot query Redis: {exc}") from exc
    if at is None:
        click.echo(f"meepo: {event} {pk}: no change recorded", err=True)
        raise SystemExit(1)
    click.echo(at.isoformat())
