"""The DBLog algorithm (Andreakis and Papapanagiotou, 2020; Debezium's incremental
snapshots): copying tables' current rows into the sinks while the change stream keeps
flowing, one chunk at a time, each placed in the stream between two watermarks.

The source knows how to read one chunk of a table in key order and how to place it in its
own change stream between a low and a high watermark
(:meth:`~meepo_core.source.Source.read_chunk_between`); the core decides when, keeps the
windows, and records progress in the checkpoint. For each chunk:

1. the source writes a low watermark L into the change stream;
2. it reads the chunk: up to ``snapshot_chunk_size`` rows with a key above the last one
   done and at most the table's last key when the job started, in key order (one short
   ``SELECT``, no lock, no long transaction);
3. it writes a high watermark H (a source that reads a chunk exactly at a stream position
   places L and H both there: a window with nothing inside);
4. while the stream goes from L to H, every change to a key of the chunk removes that key
   from the chunk (the change is newer than, or as new as, the copy);
5. at H, the chunk's remaining rows are delivered as ``read`` events, in the stream's order
   just after H; progress (the chunk's last key) becomes part of the next checkpoint.

Why no change is lost and no copy overwrites a newer change: a key not changed between L
and H has, at the moment of the SELECT, the value the stream had reached at L, which is also
its value at H; delivering the copy at H is therefore what a sink would hold had it seen
every change from the start. A key changed between L and H is delivered by the stream
itself (the copy is dropped), and every change after H comes after the copy. Rows deleted
before the SELECT are not in the chunk; rows inserted are either in the chunk or in the
stream. Chunks cover disjoint, increasing key ranges, so together they cover the table up
to its last key when the job started; a row inserted later with a higher key is committed
after that, so the stream delivers it (and writers appending keys cannot make a snapshot
chase them forever).

Each delivered row says where it sits in its snapshot (:class:`~meepo_core.events.SnapshotPlace`
in ``RowEvent.snapshot``): the first and last row of each table and of the whole request,
and whether the request is the pipeline's initial snapshot. To know the last row when it
is delivered, not after: when a request's first chunk starts, every table of the request
gets its last key at once and tables without rows are done there (a later insert is the
stream's, as above); a chunk that reaches the table's last key is its last. Rows of the
stream may come between two chunks (unlike Debezium's initial snapshot, which streams only
after the last row): the flags place a row in the snapshot, not in the stream.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..events import Batch, PrimaryKey, RowEvent, SnapshotPlace, Watermark
from ..metrics import Metrics
from ..source import Source
from .jobs import SnapshotJob, SnapshotTable, _now, is_initial

log = logging.getLogger("meepo.snapshot")

#: How many finished snapshots the checkpoint remembers for ``meepo snapshot --status``.
HISTORY = 50


@dataclass
class _Window:
    job: SnapshotJob
    low: str
    high: str
    rows: dict[PrimaryKey, RowEvent]
    last_key: tuple[Any, ...] | None
    complete: bool  # the chunk was shorter than asked: the table ends here
    opened: bool = False
    written_at: float = field(default_factory=time.monotonic)


def key_of(table: SnapshotTable, image: Any) -> PrimaryKey:
    """The pk of ``image`` as sources give it: a scalar for one key column, else a tuple."""
    if len(table.key) == 1:
        return image[table.key[0]]
    return tuple(image[column] for column in table.key)


class SnapshotCoordinator:
    """Runs snapshot jobs as DBLog windows over one source's change stream.

    Used by the runner's applying thread: :meth:`process` for every batch from the source
    (it removes watermarks, drops chunk rows that the stream changed, and inserts a closed
    window's rows at its high watermark), :meth:`start_chunk` when the runner is ready for
    the next chunk, :meth:`state` for the checkpoint. Not thread-safe by design: one thread
    owns it.
    """

    def __init__(
        self,
        source: Source,
        chunk_size: int,
        state: dict[str, Any] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.source = source
        self.chunk_size = chunk_size
        self.metrics = metrics
        state = state or {}
        self.jobs = [SnapshotJob.from_json(job) for job in state.get("jobs", [])]
        self.done: list[dict[str, Any]] = list(state.get("done", []))
        self.adopted: list[str] = list(state.get("adopted", []))
        self.window: _Window | None = None
        #: How many of this run's watermarks the stream brought back so far.
        self.marks_seen = 0
        self._nonce = secrets.token_hex(4)
        self._marks = itertools.count(1)

    # -- jobs ---------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """Whether a snapshot is queued or a chunk is in flight."""
        return bool(self.jobs) or self.window is not None

    def add(self, request: str, tables: Sequence[SnapshotTable],
            where: dict[str, Any] | None = None) -> None:
        """Queue a snapshot of ``tables`` (in order) for request id ``request``; a table
        already queued with the same ``where`` and not started yet is not queued twice."""
        for index, table in enumerate(tables):
            job = SnapshotJob(request, table, dict(where or {}), first=index == 0)
            if not any(queued.started_at is None and queued.table == table
                       and queued.where == job.where for queued in self.jobs):
                self.jobs.append(job)
        if request not in self.adopted:
            self.adopted.append(request)

    def refuse(self, request: str, error: str) -> None:
        """Record request ``request`` as refused (shown by ``meepo snapshot --status``)."""
        self.done.append({"request": request, "table": "-", "error": error,
                          "finished_at": _now()})
        if request not in self.adopted:
            self.adopted.append(request)

    def state(self) -> dict[str, Any] | None:
        """The progress to save with the next checkpoint (JSON), or None when there is none.

        Jobs restart from their last *finished* chunk: an open window is not saved."""
        if not (self.jobs or self.done or self.adopted):
            return None
        return {
            "jobs": [job.to_json() for job in self.jobs],
            "done": self.done[-HISTORY:],
            "adopted": self.adopted[-HISTORY:],
        }

    # -- chunks -------------------------------------------------------------------------
    def start_chunk(self) -> None:
        """If no window is open, a job waits and the source is ready
        (:meth:`~meepo_core.source.Source.snapshot_ready`): have the source place the next
        chunk in its stream between a new low and high watermark, and open their window."""
        if self.window is not None or not self.jobs:
            return
        if not self.source.snapshot_ready():
            return  # the stream does not know its start position yet: try again later
        while self.jobs and any(job.until is None for job in self.jobs
                                if job.request == self.jobs[0].request):
            self._measure(self.jobs[0].request)
        if not self.jobs:
            return
        job = self.jobs[0]
        if job.started_at is None:
            job.started_at = _now()
            log.info("snapshot %s: started (about %s rows)", job.table.qualified,
                     job.table.estimated_rows if job.table.estimated_rows is not None else "?")
        serial = next(self._marks)
        low, high = f"{self._nonce}:{serial}:low", f"{self._nonce}:{serial}:high"
        rows = self.source.read_chunk_between(low, high, job.table, job.after,
                                              self.chunk_size, job.where, job.until)
        last = job.after
        if rows:
            image = rows[-1].after
            assert image is not None  # a chunk's rows are ``read`` events: an after image
            last = tuple(image[c] for c in job.table.key)
        self.window = _Window(
            job, low, high, {event.pk: event for event in rows}, last,
            # reaching the last key ends the table here too: its last row is in this chunk
            complete=len(rows) < self.chunk_size or (last is not None and last == job.until),
        )

    def _measure(self, request: str) -> None:
        """Give every job of ``request`` without one its last key; finish those without
        rows. Done when the request's first chunk starts (the stream is ready then), so
        that a chunk reaching a table's last key knows whether another table follows."""
        for job in [job for job in self.jobs if job.request == request and job.until is None]:
            job.until = self.source.last_key(job.table, job.where)
            if job.until is None:
                job.started_at = job.started_at or _now()
                self._finish(job)  # no row to copy

    def process(self, batch: Batch) -> Batch:
        """``batch`` with watermarks removed, chunk rows the stream changed dropped from the
        open window, and a closing window's rows inserted at its high watermark."""
        window = self.window
        if not batch.watermarks:
            if window is not None and window.opened:
                self._drop_changed(window, batch.events)
            return batch
        events: list[RowEvent] = []
        position = 0
        inserted: list[tuple[int, int]] = []  # (watermark index, snapshot rows so far)
        for mark in batch.watermarks:
            part = batch.events[position:mark.index]
            if self.window is not None and self.window.opened:
                self._drop_changed(self.window, part)
            events.extend(part)
            position = mark.index
            events.extend(self._on_watermark(mark))
            inserted.append((mark.index, len(events) - position))
        rest = batch.events[position:]
        if self.window is not None and self.window.opened:
            self._drop_changed(self.window, rest)
        events.extend(rest)
        # schema changes keep their place among the stream's rows (before the snapshot
        # rows of a watermark at the same place: those rows are read in the new shape)
        changes = tuple(
            (index + next((n for at, n in reversed(inserted) if at < index), 0), change)
            for index, change in batch.schema_changes
        )
        return Batch(tuple(events), batch.position, (), changes)

    def _drop_changed(self, window: _Window, events: Sequence[RowEvent]) -> None:
        table = window.job.table
        rows = window.rows
        for event in events:
            if event.table != table.table or event.schema != table.schema:
                continue
            rows.pop(event.pk, None)
            if event.before is not None and event.action == "update":
                with contextlib.suppress(KeyError):  # a before image without key columns
                    rows.pop(key_of(table, event.before), None)

    def _on_watermark(self, mark: Watermark) -> list[RowEvent]:
        window = self.window
        if window is None:
            return []  # a watermark of an earlier run: nothing waits for it
        if mark.mark == window.low:
            window.opened = True
            self.marks_seen += 1
            return []
        if mark.mark != window.high:
            return []
        self.marks_seen += 1
        self.window = None
        job = window.job
        places = self._places(job, len(window.rows), window.complete)
        rows = [
            _read_event(event, mark, place)
            for event, place in zip(window.rows.values(), places, strict=True)
        ]
        job.after = window.last_key
        job.rows += len(rows)
        job.chunks += 1
        if self.metrics is not None:
            estimate = job.table.estimated_rows
            share = 1.0 if window.complete else (
                min(job.rows / estimate, 1.0) if estimate else None)
            self.metrics.record_snapshot_chunk(job.table.qualified, len(rows), share)
        if window.complete:
            self._finish(job)
        return rows

    def _places(self, job: SnapshotJob, count: int, complete: bool) -> list[SnapshotPlace]:
        """The :class:`SnapshotPlace` of each of the ``count`` rows a chunk of ``job``
        delivers now (``complete``: the table's last chunk)."""
        base = SnapshotPlace.INITIAL if is_initial(job.request) else SnapshotPlace(0)
        places = [base] * count
        if not count:
            return places
        if job.rows == 0:
            places[0] |= SnapshotPlace.FIRST_IN_TABLE
            if job.first:
                places[0] |= SnapshotPlace.FIRST
        if complete:
            places[-1] |= SnapshotPlace.LAST_IN_TABLE
            if not any(other is not job and other.request == job.request
                       for other in self.jobs):
                places[-1] |= SnapshotPlace.LAST
        return places

    def _finish(self, job: SnapshotJob) -> None:
        self.jobs.remove(job)
        self.done.append({**job.to_json(), "finished_at": _now()})
        log.info("snapshot %s: done, %d rows in %d chunks", job.table.qualified,
                 job.rows, job.chunks)

    def waiting_seconds(self) -> float:
        """How long the open window has waited for its watermarks (0 when none is open)."""
        return 0.0 if self.window is None else time.monotonic() - self.window.written_at

def _read_event(event: RowEvent, mark: Watermark, place: SnapshotPlace) -> RowEvent:
    """A chunk row as delivered at its high watermark: ordered (and versioned) there, and
    placed in its snapshot."""
    return RowEvent.trusted(
        event.schema, event.table, "read", event.pk, None, event.after, event.position,
        mark.committed_at or event.committed_at, None, mark.sequence, event.pk_columns,
        definition=event.definition, snapshot=place,
    )


