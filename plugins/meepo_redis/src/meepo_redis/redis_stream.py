"""Redis Streams layout shared by the ``redis-stream`` sink and source.

A logical stream ``NAME`` is ``partitions`` real streams ``NAME:0`` .. ``NAME:N-1``. An
event goes to the partition picked by a stable hash of (schema, table, pk), so every
change of one row lands in one partition, in order. ``NAME:meta`` records N, which the
source reads (so the two sides cannot disagree).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

from meepo_core import RowEvent, encode_value

DEFAULT_STREAM = "meepo:stream"
#: The one field of every entry: the event as meepo_core.serialization JSON.
EVENT_FIELD = "event"


def partition_of(event: RowEvent, partitions: int) -> int:
    """Stable across processes and machines (CRC-32, not Python's salted ``hash``)."""
    identity = json.dumps([event.schema, event.table, encode_value(event.pk)],
                          separators=(",", ":"), sort_keys=True)
    return zlib.crc32(identity.encode("utf-8", "surrogateescape")) % partitions


@dataclass(frozen=True)
class StreamNames:
    """Every Redis key of one logical stream (and of one consumer group, for leases)."""

    name: str

    @property
    def meta(self) -> str:
        return f"{self.name}:meta"

    def partition(self, index: int) -> str:
        return f"{self.name}:{index}"

    def last_sequence(self, index: int) -> str:
        return f"{self.name}:{index}:seq"

    def lease(self, index: int, group: str) -> str:
        return f"{self.name}:{index}:lease:{group}"

    def workers(self, group: str) -> str:
        return f"{self.name}:workers:{group}"


def id_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id ``"ms-seq"`` as a comparable tuple."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
