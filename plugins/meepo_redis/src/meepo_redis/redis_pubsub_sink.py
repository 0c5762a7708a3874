"""``redis-pubsub`` sink: each event as JSON on a channel, for notifications and dashboards.

Pub/sub is fire-and-forget on Redis' side: a subscriber that is not connected misses
messages, and a replay after a crash publishes again. Subscribers that need every event
exactly once de-duplicate by ``sequence``, or read a Redis Stream instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

import redis

from meepo_core import Batch, Options, OptionSpec, RowEvent, Sink, event_to_json

from .connection import connect, execute, ping_problems, url_option, url_spec

if TYPE_CHECKING:
    from meepo_core import PipelineContext

DEFAULT_CHANNEL = "meepo:{table}"
FIELDS = ("schema", "table", "action", "name")


URL = url_spec("The Redis to publish on.")
CHANNEL = OptionSpec("channel", "string", DEFAULT_CHANNEL,
                     "Channel template: `{schema}`, `{table}`, `{action}`, `{name}`.")


class RedisPubSubSink(Sink):
    """PUBLISHes :func:`meepo_core.serialization.event_to_json` of each event to the channel
    rendered from ``channel`` (fields ``{schema}``, ``{table}``, ``{action}``, ``{name}``);
    one pipelined round trip per batch. An event JSON cannot carry goes to the dead letters."""

    OPTIONS = (URL, CHANNEL)

    #: Keys, channels and streams of row events hold no table shape: schema changes are
    #: left out by the core.
    follows_schema_changes = False

    #: Config key path of the URL, for errors; set by ``from_options``.
    url_key = "url"

    def __init__(self, url: str, channel: str = DEFAULT_CHANNEL) -> None:
        self.url = url
        self.channel = channel
        self.client: redis.Redis | None = None
        self._context: PipelineContext | None = None
        self.label = "redis-pubsub"

    @classmethod
    def from_options(cls, options: Options) -> Self:
        url = url_option(options, URL)
        channel = options.string(CHANNEL)
        try:
            channel.format(**dict.fromkeys(FIELDS, ""))
        except (KeyError, IndexError, ValueError) as exc:
            raise options.error(
                "channel", f"bad placeholder {exc}; use {{schema}} {{table}} {{action}} {{name}}"
            ) from None
        options.done()
        sink = cls(url, channel)
        sink.url_key = options.key_path("url")
        return sink

    def open(self, context: PipelineContext) -> None:
        self._context = context
        self.client = connect(self.url)

    def check(self) -> list[str]:
        return ping_problems(connect(self.url), self.url)

    def channel_of(self, event: RowEvent) -> str:
        return self.channel.format(schema=event.schema, table=event.table,
                                   action=event.action, name=event.name)

    def apply(self, batch: Batch) -> None:
        assert self.client is not None and self._context is not None, "open() first"
        if not batch.events:
            return
        pipe = self.client.pipeline(transaction=False)
        for event in batch.events:
            try:
                message = event_to_json(event)
            except (TypeError, ValueError, RecursionError) as exc:
                self._unencodable(event, exc)
                continue
            pipe.publish(self.channel_of(event), message)
        execute(pipe, self.url, self.url_key)

    def _unencodable(self, event: RowEvent, exc: Exception) -> None:
        """Dead-letter an event JSON cannot carry: retrying cannot fix it."""
        assert self._context is not None
        self._context.dead_letter(event, self.label, f"cannot encode as JSON: {exc}")

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
