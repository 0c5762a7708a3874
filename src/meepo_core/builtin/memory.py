"""The ``memory`` type's channels, shared by its source and sink: in-process, for tests and
embedding.

Both name a channel (``name = "..."``); tests publish into and read from it with
:func:`channel`::

    channel("in").publish([event1, event2], position=1)
    ...
    assert channel("out").events == [...]
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar, Self

from ..events import Batch, Position, RowEvent
from ..options import Options, OptionSpec
from ..schema_changes import SchemaChange

if TYPE_CHECKING:
    pass


class Channel:
    """A thread-safe in-memory queue of batches (as a source) and log of events (as a sink)."""

    def __init__(self) -> None:
        self.pending: deque[Batch] = deque()
        self.batches: list[Batch] = []
        self.available = threading.Condition()

    @property
    def events(self) -> list[RowEvent]:
        """Every event a memory sink applied to this channel, in order, replays included."""
        return [event for batch in self.batches for event in batch.events]

    @property
    def schema_changes(self) -> list[SchemaChange]:
        """Every schema change a memory sink applied to this channel, in order."""
        return [change for batch in self.batches for _, change in batch.schema_changes]

    def publish(self, events: Iterable[RowEvent], position: Position) -> None:
        """Queue one transaction for a memory source."""
        with self.available:
            self.pending.append(Batch(tuple(events), position))
            self.available.notify_all()


_channels: dict[str, Channel] = {}
_lock = threading.Lock()


def channel(name: str) -> Channel:
    """The channel called ``name``, created on first use."""
    with _lock:
        return _channels.setdefault(name, Channel())


def reset_channels() -> None:
    with _lock:
        _channels.clear()


NAME = OptionSpec("name", "string", "default",
                  "The in-process channel (`meepo_core.builtin.memory.channel(name)`).")


class NamedChannel:
    """The one option both memory types take: ``name``, the channel to use."""

    OPTIONS: ClassVar[tuple[OptionSpec, ...]] = (NAME,)

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def from_options(cls, options: Options) -> Self:
        name = options.string(NAME)
        options.done()
        return cls(name)
