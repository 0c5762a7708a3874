"""``redis-events`` sink and :class:`EventStore`: the original meepo's event sourcing.

For each event name (``table_action``), a sorted set maps pk to the time of its last
change. Replay asks which pks changed since (or between) times; an application that
missed notifications re-reads exactly those rows. A Lua guard keeps the newest time: a
late or replayed event with an older timestamp never overwrites a newer one.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Self, cast

import redis

from meepo_core import Batch, Options, OptionSpec, PrimaryKey, RowEvent, Sink, encode_value

from .connection import connect, execute, ping_problems, url_option, url_spec

if TYPE_CHECKING:
    from meepo_core import PipelineContext

DEFAULT_NAMESPACE = "meepo:events"
PARTITIONS = ("none", "day")
#: Longest range a day-partitioned query walks, so a typo like 1970 does not issue 20k calls.
MAX_DAYS = 400

#: KEYS[1] the sorted set; ARGV: score, member, ttl seconds (0 = keep forever).
#: The original meepo's guard: ZADD only when no newer (or equal) score is stored.
GUARDED_ZADD = """
local current = redis.call('ZSCORE', KEYS[1], ARGV[2])
if current and tonumber(current) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
if tonumber(ARGV[3]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return 1
"""


def pk_member(pk: PrimaryKey) -> str:
    """The sorted-set member for a pk: the scalar as text, a composite key as a JSON array."""
    if isinstance(pk, tuple | list):
        return json.dumps([encode_value(v) for v in pk], separators=(",", ":"))
    if isinstance(pk, bytes | bytearray):
        return bytes(pk).decode("utf-8", "surrogateescape")
    return str(pk)


class EventStore:
    """Reads and writes the sorted sets. Key: ``{namespace}:{name}``, or
    ``{namespace}:{YYYY-MM-DD}:{name}`` (UTC day of the change) with ``partition="day"``."""

    def __init__(self, client: redis.Redis, namespace: str = DEFAULT_NAMESPACE,
                 partition: str = "none", ttl: int = 0) -> None:
        if partition not in PARTITIONS:
            raise ValueError(f"partition must be one of {', '.join(PARTITIONS)}")
        self.client = client
        self.namespace = namespace
        self.partition = partition
        self.ttl = ttl
        self._script = client.register_script(GUARDED_ZADD)

    def key(self, name: str, day: date | None = None) -> str:
        if self.partition == "day":
            if day is None:
                raise ValueError("a day-partitioned store needs the day")
            return f"{self.namespace}:{day.isoformat()}:{name}"
        return f"{self.namespace}:{name}"

    def queue(self, pipe: Any, name: str, pk: PrimaryKey, at: datetime) -> None:
        """Queue the guarded write of ``pk`` changed at ``at`` on a pipeline."""
        key = self.key(name, at.astimezone(UTC).date())
        self._script(keys=[key], args=[repr(at.timestamp()), pk_member(pk), self.ttl],
                     client=pipe)

    def record(self, name: str, pk: PrimaryKey, at: datetime) -> bool:
        """Write one change now; ``False`` when a newer time was already stored."""
        key = self.key(name, at.astimezone(UTC).date())
        result = self._script(keys=[key], args=[repr(at.timestamp()), pk_member(pk), self.ttl])
        return bool(result)

    def replay(self, name: str, since: datetime,
               until: datetime | None = None) -> list[tuple[str, datetime]]:
        """``(pk, last change time)`` of every pk whose last change is in ``[since, until]``
        (``until`` defaults to now), oldest first."""
        until = until or datetime.now(UTC)
        low, high = since.timestamp(), until.timestamp()
        found: dict[str, float] = {}
        for key in self._keys(name, since, until):
            rows = cast(list[tuple[bytes, float]],
                        self.client.zrangebyscore(key, low, high, withscores=True))
            for member, score in rows:
                pk = member.decode("utf-8", "surrogateescape")
                found[pk] = max(score, found.get(pk, score))
        ordered = sorted(found.items(), key=lambda item: (item[1], item[0]))
        return [(pk, datetime.fromtimestamp(score, UTC)) for pk, score in ordered]

    def last_change(self, name: str, pk: PrimaryKey,
                    since: datetime | None = None) -> datetime | None:
        """When ``pk`` last had event ``name``, or ``None``. A day-partitioned store looks
        back to ``since`` (default: ``ttl`` seconds, or 30 days without a TTL)."""
        member = pk_member(pk)
        now = datetime.now(UTC)
        if since is None:
            since = now - timedelta(seconds=self.ttl or 30 * 86400)
        keys = self._keys(name, since, now)
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.zscore(key, member)
        scores = [s for s in cast(list[float | None], pipe.execute()) if s is not None]
        return datetime.fromtimestamp(max(scores), UTC) if scores else None

    def _keys(self, name: str, since: datetime, until: datetime) -> list[str]:
        if self.partition != "day":
            return [self.key(name)]
        first, last = since.astimezone(UTC).date(), until.astimezone(UTC).date()
        days = (last - first).days + 1
        if days > MAX_DAYS:
            raise ValueError(
                f"{days} days between {first} and {last}; a day-partitioned store is queried "
                f"at most {MAX_DAYS} days at once, narrow --since/--until"
            )
        return [self.key(name, first + timedelta(days=i)) for i in range(max(days, 0))]


URL = url_spec("The Redis keeping the sets.")
NAMESPACE = OptionSpec("namespace", "string", DEFAULT_NAMESPACE, "Key prefix.")
PARTITION = OptionSpec(
    "partition", "string", "none",
    '`"none"`: key `{namespace}:{name}`; `"day"`: key `{namespace}:{YYYY-MM-DD}:{name}` (UTC '
    "day of the change).", choices=PARTITIONS)
TTL = OptionSpec(
    "ttl", "integer", 0,
    "Seconds; each write refreshes `EXPIRE` on its key (`0`: keep forever). With "
    '`partition = "day"` whole days expire.', minimum=0)
NAME = OptionSpec(
    "name", "string", "{table}_{action}",
    "The event name template (`{schema}`, `{table}`, `{action}`); e.g. "
    '`"{schema}.{table}_{action}"` when two schemas share table names.')


class RedisEventsSink(Sink):
    """Records ``pk -> last change time`` per event name; one pipelined round trip per
    batch. Its options are declared in ``OPTIONS``."""

    OPTIONS = (URL, NAMESPACE, PARTITION, TTL, NAME)

    #: Keys, channels and streams of row events hold no table shape: schema changes are
    #: left out by the core.
    follows_schema_changes = False

    #: Config key path of the URL, for errors; set by ``from_options``.
    url_key = "url"

    def __init__(self, url: str, namespace: str = DEFAULT_NAMESPACE, partition: str = "none",
                 ttl: int = 0, name: str = "{table}_{action}") -> None:
        self.url = url
        self.namespace = namespace
        self.partition = partition
        self.ttl = ttl
        self.name = name
        self.store: EventStore | None = None

    @classmethod
    def from_options(cls, options: Options) -> Self:
        url = url_option(options, URL)
        namespace = options.string(NAMESPACE)
        partition = options.choice(PARTITION)
        ttl = options.integer(TTL)
        name = options.string(NAME)
        try:
            name.format(schema="", table="", action="")
        except (KeyError, IndexError, ValueError) as exc:
            raise options.error(
                "name", f"bad placeholder {exc}; use {{schema}} {{table}} {{action}}"
            ) from None
        options.done()
        sink = cls(url, namespace, partition, ttl, name)
        sink.url_key = options.key_path("url")
        return sink

    def open(self, context: PipelineContext) -> None:
        self.store = EventStore(connect(self.url), self.namespace, self.partition, self.ttl)

    def check(self) -> list[str]:
        return ping_problems(connect(self.url), self.url)

    def event_name(self, event: RowEvent) -> str:
        return self.name.format(schema=event.schema, table=event.table, action=event.action)

    def apply(self, batch: Batch) -> None:
        assert self.store is not None, "open() first"
        if not batch.events:
            return
        pipe = self.store.client.pipeline(transaction=False)
        for event in batch.events:
            self.store.queue(pipe, self.event_name(event), event.pk, event.committed_at)
        execute(pipe, self.url, self.url_key)

    def close(self) -> None:
        if self.store is not None:
            self.store.client.close()
            self.store = None
