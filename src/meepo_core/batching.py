"""Grouping a source's transactions into batches, for source authors."""

from __future__ import annotations

import time
from datetime import datetime

from .events import Batch, Position, RowEvent, Watermark
from .schema_changes import PlacedSchemaChange, SchemaChange


class Batcher:
    """Collects events and transaction ends into :class:`Batch` es.

    Small transactions are grouped until ``max_events`` or ``max_delay`` seconds; a batch
    then ends on the last complete transaction and carries its position. A transaction
    larger than ``max_events`` is cut into position-less batches so memory stays bounded;
    only its final batch carries a position. Order is always preserved.
    """

    def __init__(self, max_events: int = 1000, max_delay: float = 0.2) -> None:
        self.max_events = max_events
        self.max_delay = max_delay
        self._events: list[RowEvent] = []
        self._committed = 0  # events[:committed] belong to finished transactions
        self._position: Position | None = None  # position after events[:committed]
        self._watermarks: list[Watermark] = []
        self._schema_changes: list[PlacedSchemaChange] = []
        self._since = time.monotonic()

    @property
    def in_transaction(self) -> bool:
        return len(self._events) > self._committed

    def add(self, event: RowEvent) -> Batch | None:
        """Add an event of the open transaction; returns a batch when one is due."""
        if not self._events:
            self._since = time.monotonic()
        self._events.append(event)
        if len(self._events) < self.max_events:
            return None
        if self._committed:
            return self._take(self._committed)
        batch = Batch(tuple(self._events), None, self._take_watermarks(len(self._events)),
                      self._take_schema_changes(len(self._events)))
        self._events = []  # mid-transaction: no position
        return batch

    def watermark(
        self, mark: str, sequence: int | None = None, committed_at: datetime | None = None
    ) -> None:
        """Record a snapshot watermark met in the stream after the events added so far (see
        :class:`~meepo_core.events.Watermark`). Watermarks are their own transactions: call
        :meth:`commit` for the watermark's transaction as for any other."""
        self._watermarks.append(Watermark(len(self._events), mark, sequence, committed_at))

    def schema_change(self, change: SchemaChange) -> None:
        """Record a schema change met in the stream after the events added so far (see
        :mod:`meepo_core.schema_changes`); it belongs to the open transaction, which
        :meth:`commit` ends as any other (a DDL statement is a transaction of its own)."""
        if not self._events and not self._schema_changes:
            self._since = time.monotonic()
        self._schema_changes.append((len(self._events), change))

    def commit(self, position: Position) -> Batch | None:
        """End the open transaction at ``position``; returns a batch when one is due."""
        self._committed = len(self._events)
        self._position = position
        if self._committed >= self.max_events or self.due():
            return self.flush()
        return None

    def due(self) -> bool:
        """Whether committed events have waited ``max_delay`` already."""
        return self._position is not None and time.monotonic() - self._since >= self.max_delay

    def flush(self) -> Batch | None:
        """The committed events (possibly none) with their position, if any commit is pending."""
        if self._position is None:
            return None
        return self._take(self._committed)

    def _take(self, count: int) -> Batch:
        batch = Batch(tuple(self._events[:count]), self._position, self._take_watermarks(count),
                      self._take_schema_changes(count))
        del self._events[:count]
        self._committed = 0
        self._position = None
        self._since = time.monotonic()
        return batch

    def _take_watermarks(self, count: int) -> tuple[Watermark, ...]:
        """The watermarks among the first ``count`` events; those after them move down."""
        if not self._watermarks:
            return ()
        taken = tuple(w for w in self._watermarks if w.index <= count)
        self._watermarks = [
            Watermark(w.index - count, w.mark, w.sequence, w.committed_at)
            for w in self._watermarks if w.index > count
        ]
        return taken

    def _take_schema_changes(self, count: int) -> tuple[PlacedSchemaChange, ...]:
        """The schema changes among the first ``count`` events; those after them move
        down. A change placed right after the last of those events goes with them: it
        comes before any later event either way."""
        if not self._schema_changes:
            return ()
        taken = tuple(placed for placed in self._schema_changes if placed[0] <= count)
        self._schema_changes = [
            (index - count, change) for index, change in self._schema_changes if index > count
        ]
        return taken
