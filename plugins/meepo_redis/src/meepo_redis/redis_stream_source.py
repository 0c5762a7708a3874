"""``redis-stream`` source: consume partitioned Redis Streams with a consumer group.

Delivery is at-least-once. Entries are read with ``XREADGROUP`` and stay pending until
:meth:`RedisStreamSource.acknowledge`, which the runner calls after it saved a checkpoint,
that is after every sink applied every batch up to that position; only then are they
``XACK``-ed. The position is cumulative: for every partition read so far, the id of the
last entry delivered; acknowledging a position acks every tracked entry at or before those
ids. A worker that dies leaves its entries pending; the next owner of the partition claims
them (``XAUTOCLAIM``) and applies them again before reading new ones.

The consumer group, not the checkpoint, is the source of truth for where to resume; the
checkpoint only records how far this worker got (``checkpoint = "none"`` is fine).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Self, cast

import redis

from meepo_core import (
    Batch,
    Computed,
    Options,
    OptionSpec,
    Position,
    RowEvent,
    Source,
    SourceError,
    describe_error,
    event_from_json,
)

from .connection import connect, ping_problems, redact, url_option, url_spec
from .leases import PartitionLeases
from .redis_stream import DEFAULT_STREAM, EVENT_FIELD, StreamNames

if TYPE_CHECKING:
    from meepo_core import PipelineContext

log = logging.getLogger("meepo.redis.stream")
BLOCK_MS = 500
CLAIM_COUNT = 500

Entry = tuple[bytes, dict[bytes, bytes] | None]


def default_consumer() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


URL = url_spec("The Redis holding the streams.")
STREAM = OptionSpec("stream", "string", DEFAULT_STREAM,
                    "As in the sink; N is read from `{stream}:meta`.")
GROUP = OptionSpec("group", "string", "meepo",
                   "Consumer group, created on every partition if missing.")
CONSUMER = OptionSpec("consumer", "string", Computed("`host:pid:random`"),
                      "This worker's consumer name; unique per process.")
LEASE_MS = OptionSpec(
    "lease_ms", "integer", 15_000,
    "Partition lease length; renewed every `lease_ms / 3` (minimum 1000).", minimum=1000)
START = OptionSpec(
    "start", "string", "earliest",
    'Where a *new* group starts: `"earliest"` (all retained entries) or `"latest"` (only '
    "new ones).", choices=("earliest", "latest"))


class RedisStreamSource(Source):
    """Reads the partitions this worker holds leases for (see :mod:`meepo_redis.leases`).

    Its options are declared in ``OPTIONS``.
    """

    OPTIONS = (URL, STREAM, GROUP, CONSUMER, LEASE_MS, START)
    yields_fresh_events = True  # decoded for this run, held nowhere else

    def __init__(self, url: str, stream: str = DEFAULT_STREAM, group: str = "meepo",
                 consumer: str | None = None, lease_ms: int = 15_000,
                 start: str = "earliest") -> None:
        self.url = url
        self.names = StreamNames(stream)
        self.group = group
        self.consumer = consumer or default_consumer()
        self.lease_ms = lease_ms
        self.start = start
        self.client: redis.Redis | None = None
        self.leases: PartitionLeases | None = None
        self._delivered: dict[str, str] = {}
        self._closed = False
        self._context: PipelineContext | None = None

    @classmethod
    def from_options(cls, options: Options) -> Self:
        url = url_option(options, URL)
        stream = options.string(STREAM)
        group = options.string(GROUP)
        consumer = options.string(CONSUMER, None)  # None: made up at start
        lease_ms = options.integer(LEASE_MS)
        start = options.choice(START)
        options.done()
        return cls(url, stream, group, consumer, lease_ms, start)

    def check(self) -> list[str]:
        return ping_problems(connect(self.url), self.url)

    # -- reading -------------------------------------------------------------------------

    def stream(
        self, start: Position | None, context: PipelineContext, *, once: bool
    ) -> Iterator[Batch]:
        self._context = context
        self.client = connect(self.url)
        partitions = self._wait_for_meta(context, once)
        if partitions is None:
            return
        self._create_groups(partitions)
        self._ack_checkpointed(start)
        self.leases = PartitionLeases(self.client, self.names, self.group, self.consumer,
                                      partitions, self.lease_ms)
        self.leases.start()
        log.info("redis-stream %s: consumer %s in group %s (%d partitions)",
                 self.names.name, self.consumer, self.group, partitions)
        while not context.stopping.is_set() and not self._closed:
            try:
                events, claimed, owns = self._read(context, once)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("redis-stream at %s unreachable (%s); retrying",
                            redact(self.url), describe_error(exc))
                context.stopping.wait(1.0)
                continue
            if events:
                yield Batch(tuple(events), self._position())
            elif claimed:
                continue  # the claimed partitions are readable now
            elif once:
                return
            elif not owns:
                context.stopping.wait(0.2)  # waiting for a lease to become free

    def _read(self, context: PipelineContext, once: bool) -> tuple[list[RowEvent], bool, bool]:
        """One round: claim pending entries of newly leased partitions, else read new
        entries of the others. Returns (events, whether any partition was claimed, whether
        this worker owns any partition)."""
        assert self.leases is not None and self.client is not None
        claim, active = self.leases.begin_read()
        delivered: dict[int, list[str]] = {}
        events: list[RowEvent] = []
        try:
            if self._closed:
                return [], False, False
            for index in claim:
                self._claim(index, delivered, events)
            if active and not events:
                count = max(1, context.batch_size // len(active))
                streams: dict[Any, Any] = {self.names.partition(i): ">" for i in active}
                replies = cast(list[Any], self.client.xreadgroup(
                    self.group, self.consumer, streams, count=count,
                    block=None if once else BLOCK_MS))
                for key, entries in replies or []:
                    index = int(key.decode().rsplit(":", 1)[1])
                    self._take(index, entries, delivered, events)
        finally:
            self.leases.end_read(delivered, claim)
        return events, bool(claim), bool(claim or active)

    def _claim(self, index: int, delivered: dict[int, list[str]],
               events: list[RowEvent]) -> None:
        """Take over every entry pending in partition ``index`` (we hold its lease, so any
        other holder is gone), in id order."""
        assert self.client is not None
        cursor = "0-0"
        key = self.names.partition(index)
        while True:
            reply: list[Any] = self.client.xautoclaim(
                key, self.group, self.consumer, min_idle_time=0, start_id=cursor,
                count=CLAIM_COUNT)
            cursor = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
            entries: list[Entry] = reply[1]
            trimmed = list(reply[2]) if len(reply) > 2 else []
            self._take(index, entries, delivered, events)
            if trimmed:
                self._report_trimmed(key, len(trimmed))
                self.client.xack(key, self.group, *trimmed)
            if cursor == "0-0":
                break
        if delivered.get(index):
            log.info("stream partition %s: claimed %d pending entries", index,
                     len(delivered[index]))

    def _take(self, index: int, entries: list[Entry], delivered: dict[int, list[str]],
              events: list[RowEvent]) -> None:
        key = self.names.partition(index)
        for raw_id, fields in entries:
            entry_id = raw_id.decode()
            if not fields:  # deleted by MAXLEN trimming before anyone processed it
                self._report_trimmed(key, 1)
                assert self.client is not None
                self.client.xack(key, self.group, entry_id)
                continue
            payload = fields.get(EVENT_FIELD.encode())
            try:
                if payload is None:
                    raise KeyError(EVENT_FIELD)
                event = event_from_json(payload.decode("utf-8"))
            except (ValueError, KeyError, TypeError) as exc:
                raise SourceError(
                    f"stream {key} entry {entry_id} is not a meepo event ({describe_error(exc)}); "
                    f"inspect it with XRANGE {key} {entry_id} {entry_id}, then XACK {key} "
                    f"{self.group} {entry_id} to skip it"
                ) from exc
            events.append(event)
            delivered.setdefault(index, []).append(entry_id)
            self._delivered[str(index)] = entry_id

    def _report_trimmed(self, key: str, count: int) -> None:
        log.error("stream %s: %d pending entries were trimmed by MAXLEN before they were "
                  "applied; they are LOST: raise the sink's maxlen above the backlog", key, count)
        if self._context is not None:
            self._context.metrics.record_failure(f"redis-stream {key}", "trimmed", count)

    def _position(self) -> Position:
        return {"stream": self.names.name, "group": self.group, "ids": dict(self._delivered)}

    def _wait_for_meta(self, context: PipelineContext, once: bool) -> int | None:
        assert self.client is not None
        while not context.stopping.is_set():
            try:
                raw = cast(bytes | None, self.client.hget(self.names.meta, "partitions"))
            except redis.RedisError as exc:
                raise SourceError(
                    f"cannot reach Redis at {redact(self.url)}: {describe_error(exc)}"
                ) from exc
            if raw is not None:
                return int(raw)
            if once:
                log.info("stream %s has no events yet (no %s)", self.names.name,
                         self.names.meta)
                return None
            context.stopping.wait(0.5)
        return None

    def _create_groups(self, partitions: int) -> None:
        assert self.client is not None
        for index in range(partitions):
            try:
                self.client.xgroup_create(self.names.partition(index), self.group,
                                          id="0" if self.start == "earliest" else "$",
                                          mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise SourceError(
                        f"cannot create consumer group: {describe_error(exc)}"
                    ) from exc

    # -- acknowledging -------------------------------------------------------------------

    def _ack_checkpointed(self, start: Position | None) -> None:
        """Ack what the checkpoint ``start`` proves applied: pending entries at or before its
        ids. Covers a crash between the runner's checkpoint save and ``acknowledge``, so a
        restarted worker does not replay them. (Entries pending on other consumers that are
        at or before those ids were applied by this worker too, so acking them is true.)"""
        if not isinstance(start, dict) or start.get("stream") != self.names.name \
                or start.get("group") != self.group:
            return
        assert self.client is not None
        for raw_index, upto in dict(start.get("ids") or {}).items():
            key = self.names.partition(int(raw_index))
            while True:
                pending = cast(list[dict[str, Any]], self.client.xpending_range(
                    key, self.group, min="-", max=upto, count=CLAIM_COUNT))
                if not pending:
                    break
                self.client.xack(key, self.group, *[p["message_id"] for p in pending])
                if len(pending) < CLAIM_COUNT:
                    break
            self._delivered.setdefault(str(raw_index), upto)


    def acknowledge(self, position: Position) -> None:
        """XACK every delivered entry at or before ``position`` (applied by all sinks)."""
        if self.leases is None or not isinstance(position, dict):
            return
        client = connect(self.url) if self.client is None else self.client
        acked: list[tuple[int, list[str]]] = []
        pipe = client.pipeline(transaction=False)
        for raw_index, upto in position.get("ids", {}).items():
            index = int(raw_index)
            ids = self.leases.take_acked(index, upto)
            if ids:
                pipe.xack(self.names.partition(index), self.group, *ids)
                acked.append((index, ids))
        if not acked:
            return
        try:
            pipe.execute()
        except redis.RedisError as exc:
            # They stay tracked and pending: the next acknowledge retries them, and if this
            # worker dies first the next owner re-applies them (at-least-once).
            log.warning("XACK failed, will retry: %s", describe_error(exc))
            return
        for index, ids in acked:
            self.leases.forget(index, ids)

    def close(self) -> None:
        self._closed = True
        if self.leases is not None:
            self.leases.wait_idle(BLOCK_MS / 1000 + 1)
            self.leases.stop()
        if self.client is not None:
            self.client.close()
