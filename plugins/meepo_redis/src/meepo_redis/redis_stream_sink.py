"""``redis-stream`` sink: append events to partitioned Redis Streams (``XADD`` with an
approximate ``MAXLEN``), for fan-out workers that read them with the ``redis-stream``
source."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Self, cast

import redis

from meepo_core import Batch, Options, OptionSpec, Sink, SinkError, describe_error, event_to_json

from .connection import connect, execute, ping_problems, url_option, url_spec
from .redis_stream import DEFAULT_STREAM, StreamNames, partition_of

if TYPE_CHECKING:
    from meepo_core import PipelineContext

#: KEYS[1] the partition stream, KEYS[2] its last-sequence key. ARGV[1] MAXLEN (0: none),
#: ARGV[2] "1" to skip events whose sequence is at or below the last one appended, then
#: pairs of (tag, event JSON): the tag is the sequence, "" for none, or the sequence and
#: "r" for a snapshot row (``read``): the rows of one snapshot chunk share a sequence, so a
#: read is skipped only below the last one. Sequences compare as non-negative integers in
#: text (exact beyond 2^53). Returns how many entries were appended.
APPEND = """
local function lt(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local maxlen = tonumber(ARGV[1])
local last = redis.call('GET', KEYS[2])
local added = 0
for i = 3, #ARGV, 2 do
  local seq = ARGV[i]
  local read = string.sub(seq, -1) == 'r'
  if read then seq = string.sub(seq, 1, -2) end
  local skip = false
  if seq ~= '' and ARGV[2] == '1' then
    if last and (lt(seq, last) or (seq == last and not read)) then skip = true else last = seq end
  end
  if not skip then
    if maxlen > 0 then
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'event', ARGV[i + 1])
    else
      redis.call('XADD', KEYS[1], '*', 'event', ARGV[i + 1])
    end
    added = added + 1
  end
end
if last and ARGV[2] == '1' then redis.call('SET', KEYS[2], last) end
return added
"""


URL = url_spec("The Redis holding the streams.")
STREAM = OptionSpec("stream", "string", DEFAULT_STREAM,
                    "Name; partitions are `{stream}:0` .. `{stream}:{N-1}`.")
PARTITIONS = OptionSpec(
    "partitions", "integer", 8,
    "N. Recorded in `{stream}:meta`; a sink configured with another N refuses to start "
    "(changing N would break per-key order: use a new stream name).", minimum=1)
MAXLEN = OptionSpec("maxlen", "integer", 1_000_000,
                    "`XADD ... MAXLEN ~ maxlen` per partition (`0`: unbounded).", minimum=0)
DEDUPE = OptionSpec(
    "dedupe", "string", "sequence",
    '`"sequence"`: skip events whose `sequence` is at or below the last one appended to '
    "that partition, so a replay after a crash appends nothing twice (snapshot rows of one "
    "chunk share a sequence: a `read` is skipped only below the last one, so a chunk read "
    'again after a crash is appended again); `"none"`: append everything.',
    choices=("sequence", "none"))


class RedisStreamSink(Sink):
    """Appends each event to partition ``crc32(schema, table, pk) % partitions`` of
    ``stream``; one pipelined round trip per batch, one atomic script per partition.

    Replays are de-duplicated by ``sequence`` per partition (``dedupe = "sequence"``):
    right for sources whose sequences grow with commit order (mysql, outbox). Snapshot rows
    of one chunk share a sequence: a ``read`` is skipped only below the last sequence (a
    chunk read again after a crash is appended again). Events without a sequence are always
    appended; readers' sinks are idempotent anyway. An event JSON cannot carry goes to the
    dead letters.
    """

    OPTIONS = (URL, STREAM, PARTITIONS, MAXLEN, DEDUPE)

    #: Keys, channels and streams of row events hold no table shape: schema changes are
    #: left out by the core.
    follows_schema_changes = False

    #: Config key path of the URL, for errors; set by ``from_options``.
    url_key = "url"

    def __init__(self, url: str, stream: str = DEFAULT_STREAM, partitions: int = 8,
                 maxlen: int = 1_000_000, dedupe: bool = True) -> None:
        self.url = url
        self.names = StreamNames(stream)
        self.partitions = partitions
        self.maxlen = maxlen
        self.dedupe = dedupe
        self.client: redis.Redis | None = None
        self._context: PipelineContext | None = None

    @classmethod
    def from_options(cls, options: Options) -> Self:
        url = url_option(options, URL)
        stream = options.string(STREAM)
        partitions = options.integer(PARTITIONS)
        maxlen = options.integer(MAXLEN)
        dedupe = options.choice(DEDUPE) == "sequence"
        options.done()
        sink = cls(url, stream, partitions, maxlen, dedupe)
        sink.url_key = options.key_path("url")
        return sink

    def open(self, context: PipelineContext) -> None:
        self._context = context
        self.client = connect(self.url)
        self._script = self.client.register_script(APPEND)
        self.client.hsetnx(self.names.meta, "partitions", self.partitions)
        stored = cast(bytes | None, self.client.hget(self.names.meta, "partitions"))
        if stored is not None and int(stored) != self.partitions:
            raise SinkError(
                f"stream {self.names.name!r} already has {int(stored)} partitions, this sink "
                f"is configured with {self.partitions}; changing the count would break per-key "
                "order: use the same partitions, or a new stream name",
                retryable=False,
            )

    def check(self) -> list[str]:
        problems = ping_problems(connect(self.url), self.url)
        if problems:
            return problems
        client = connect(self.url)
        try:
            stored = cast(bytes | None, client.hget(self.names.meta, "partitions"))
        except redis.RedisError as exc:
            return [f"cannot read {self.names.meta}: {describe_error(exc)}"]
        finally:
            client.close()
        if stored is not None and int(stored) != self.partitions:
            return [f"partitions: stream {self.names.name!r} has {int(stored)} partitions, not "
                    f"{self.partitions}; use the same count or a new stream name"]
        return []

    def apply(self, batch: Batch) -> None:
        assert self.client is not None and self._context is not None, "open() first"
        by_partition: dict[int, list[str]] = defaultdict(list)
        for event in batch.events:
            try:
                message = event_to_json(event)
            except (TypeError, ValueError, RecursionError) as exc:
                self._context.dead_letter(event, "redis-stream", f"cannot encode as JSON: {exc}")
                continue
            sequence = event.sequence
            tag = str(sequence) if sequence is not None and sequence >= 0 else ""
            if tag and event.action == "read":
                tag += "r"
            by_partition[partition_of(event, self.partitions)] += [tag, message]
        if not by_partition:
            return
        pipe = self.client.pipeline(transaction=False)
        for index, args in sorted(by_partition.items()):
            self._script(
                keys=[self.names.partition(index), self.names.last_sequence(index)],
                args=[self.maxlen, "1" if self.dedupe else "0", *args],
                client=pipe,
            )
        execute(pipe, self.url, self.url_key)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
