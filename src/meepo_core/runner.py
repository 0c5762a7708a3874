"""The pipeline runner: a reader thread, ordered delivery, checkpoints, graceful stop."""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .checkpoints import Checkpoint, MemoryCheckpointStore
from .delivery import quietly
from .errors import MeepoError, SourceError, describe_error
from .events import Batch, Position
from .metrics import serve_metrics
from .pipeline import Pipeline
from .snapshots import SnapshotCoordinator, SnapshotIntake

log = logging.getLogger("meepo.runner")
#: How long a stop waits for a source that does not notice ``stopping`` before giving up on it.
STOP_GRACE_SECONDS = 5.0
#: ``--once`` restarts of the stream that may pass without a snapshot watermark coming back.
WATERMARK_RESTARTS = 3


@dataclass
class RunStats:
    """What one run did. ``position`` is the pipeline's checkpoint when the run ended: the
    one it saved, or the one it started from when it applied nothing new (``saved`` says
    which)."""

    events: int
    batches: int
    position: Position | None
    saved: bool
    seconds: float
    #: Rows copied by snapshots in this run, by ``schema.table``.
    snapshot_rows: dict[str, int] = field(default_factory=dict)
    #: Events sent to the dead-letter store in this run.
    dead_letters: int = 0
    #: Whether the checkpoint outlives the process (False with ``checkpoint = "none"``).
    kept: bool = True
    #: Schema changes delivered in this run (``events`` counts row events only).
    schema_changes: int = 0

    def summary(self) -> str:
        """``"3 events in 1 batch, 0.2s; checkpoint saved at ..."``, for the CLI."""
        batches = "batch" if self.batches == 1 else "batches"
        events = "event" if self.events == 1 else "events"
        if self.saved and not self.kept:
            where = f'delivered up to {_json(self.position)} (checkpoint = "none": not kept)'
        elif self.saved:
            where = f"checkpoint saved at {_json(self.position)}"
        elif self.position is not None:
            where = f"checkpoint unchanged at {_json(self.position)}"
        else:
            where = "no checkpoint yet"
        if self.schema_changes:
            plural = "" if self.schema_changes == 1 else "s"
            events += f" and {self.schema_changes} schema change{plural}"
        return f"{self.events} {events} in {self.batches} {batches}, {self.seconds:.1f}s; {where}"


class _End:
    pass


@dataclass
class _Failed:
    error: BaseException


class Runner:
    """Runs one pipeline: a reader thread pulls batches from the source into a bounded
    queue (back-pressure: the source waits when sinks are slow), and the calling thread
    hands each batch to the delivery engine, merging complete transactions that wait in the
    queue into batches of up to ``batch_size`` events.

    Guarantees: a checkpoint is saved only after every sink applied every batch up to a
    transaction boundary, and after dead letters are durable; only positions that were
    delivered are saved (a run that fails before delivering anything leaves the checkpoint
    as it was); so after a crash the source resumes from the checkpoint and nothing is lost
    (at-least-once). Retries follow the delivery engine's policy.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.settings = pipeline.settings
        self.context = pipeline.context()
        self.metrics = self.context.metrics
        self.delivery = pipeline.delivery(self.context)
        self.delivery.fresh_events = pipeline.source.yields_fresh_events
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=self.settings.queue_size)
        self._abandoned = threading.Event()
        self._reader: threading.Thread | None = None
        self._pending: Position | None = None
        self._saved: Position | None = None
        self._delivered: Position | None = None  # where a restarted stream resumes
        self._checkpoint: Checkpoint | None = None
        self._intake: SnapshotIntake | None = None
        self._finished = False
        self._last_save = time.monotonic()
        self._last_status = time.monotonic()
        self._resumed = threading.Event()  # cleared while paused
        self._resumed.set()
        #: (first, last) commit times of the batches read but not yet applied, oldest first
        self._unapplied: deque[tuple[datetime, datetime]] = deque()

    # -- for supervisors (``meepo serve``): pause, resume, where the run is --------------
    def pause(self) -> None:
        """Stop reading the source after the batch it is reading; batches already read
        are still applied and checkpointed. The source's position is kept (its stream
        waits, unread, until :meth:`resume`); a stop while paused ends the run at once."""
        self._resumed.clear()

    def resume(self) -> None:
        """Read the source again after :meth:`pause`."""
        self._resumed.set()

    @property
    def paused(self) -> bool:
        return not self._resumed.is_set()

    @property
    def snapshots(self) -> SnapshotCoordinator | None:
        """This run's snapshot jobs (None before the run started, or when the source cannot
        snapshot); :meth:`~meepo_core.snapshots.SnapshotCoordinator.state` is what the next
        checkpoint saves."""
        return self._intake.coordinator if self._intake is not None else None

    @property
    def delivered_position(self) -> Position | None:
        """The source position up to which every sink applied every event (saved as the
        checkpoint within ``checkpoint_interval``); the start position before any."""
        return self._delivered

    def lag_seconds(self) -> float:
        """Seconds between now and the commit of the oldest event read from the source
        but not yet applied by every sink; 0 when everything read is applied, so an idle
        pipeline is not behind and a stalled sink's lag grows by the second. Changes the
        source has not handed over yet (at most ``batch_wait`` plus its poll interval, or
        while paused) are not counted."""
        try:
            oldest = self._unapplied[0][0]
        except IndexError:
            return 0.0
        return max(0.0, (datetime.now(UTC) - oldest).total_seconds())

    def stop(self) -> None:
        """Ask for a graceful stop: finish queued batches, save the checkpoint, return."""
        if not self.context.stopping.is_set():
            log.info("stopping pipeline %s: finishing queued batches", self.pipeline.name)
        self.context.stopping.set()

    def run(
        self,
        *,
        once: bool = False,
        start: Position | None = None,
        snapshot: Sequence[str] | None = None,
    ) -> RunStats:
        """Run until the source ends (``once``: caught up and every snapshot done), a stop,
        or a fatal error. ``start`` overrides the saved checkpoint's position; ``snapshot``
        names tables (``[]``: every table) to snapshot in this run, besides the requests and
        the ``snapshot`` setting."""
        started = time.monotonic()
        checkpoint = self._checkpoint = self.pipeline.load_checkpoint(claim=True)
        if start is None and checkpoint is not None:
            start = checkpoint.position
        self._delivered = start
        log.info(
            "pipeline %s starting from %s (checkpoint %s)",
            self.pipeline.name,
            "the configured start" if start is None else _json(start),
            self.pipeline.checkpoints.description,
        )
        metrics_server = (
            serve_metrics([self.metrics], self.settings.metrics_port)
            if self.settings.metrics_port is not None
            else None
        )
        try:
            dropped = self.pipeline.transforms and self.pipeline.transforms.dropped_early()
            if dropped:  # the source may skip decoding them (stream and snapshots)
                self.pipeline.source.drop_columns_early(dropped)
            self._intake = SnapshotIntake.start(self.pipeline, self.context, checkpoint,
                                                snapshot)
            self.delivery.open()
            # Long-lived start-up objects (modules, config, clients) leave the collector's
            # full scans, which otherwise cost ~15% while batches churn young objects.
            gc.freeze()
            self._start_reader(start, once)
            self._loop(once)
        finally:
            if self._intake is not None:
                self._intake.end()
            self._abandoned.set()
            self._save()
            self.pipeline.source.close()
            if self._reader is not None:
                self._reader.join(timeout=STOP_GRACE_SECONDS)
            self.delivery.close()
            quietly(self.pipeline.checkpoints.close)
            if metrics_server is not None:
                metrics_server.shutdown()
            log.info("pipeline %s: %s", self.pipeline.name, self.metrics.status_line())
        return RunStats(
            events=self.metrics.events_total,
            schema_changes=self.metrics.schema_changes_total,
            batches=self.metrics.batches,
            position=(self._saved if self._saved is not None
                      else checkpoint.position if checkpoint is not None else None),
            saved=self._saved is not None,
            seconds=time.monotonic() - started,
            snapshot_rows=dict(self.metrics.snapshot_rows),
            dead_letters=self.metrics.dead_letters,
            kept=not isinstance(self.pipeline.checkpoints, MemoryCheckpointStore),
        )

    def _start_reader(self, start: Position | None, once: bool) -> None:
        self._reader = threading.Thread(
            target=self._read, args=(start, once), name="meepo-source", daemon=True
        )
        self._reader.start()

    def _read(self, start: Position | None, once: bool) -> None:
        try:
            for batch in self.pipeline.source.stream(start, self.context, once=once):
                while not self._resumed.wait(0.2):  # paused
                    if self._abandoned.is_set() or self.context.stopping.is_set():
                        self._put(_End())
                        return
                if batch.events:
                    self._unapplied.append(
                        (batch.events[0].committed_at, batch.events[-1].committed_at))
                if not self._put(batch):
                    return
            self._put(_End())
        except BaseException as exc:  # reported by the applying thread
            self._put(_Failed(exc))

    def _put(self, item: Any) -> bool:
        while not self._abandoned.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _loop(self, once: bool) -> None:
        stop_seen: float | None = None
        carry: Any = None  # an item taken from the queue by _coalesce but not merged
        restarts = 0
        while not self._finished:
            if carry is not None:
                item, carry = carry, None
            else:
                try:
                    item = self._queue.get(timeout=0.2)
                except queue.Empty:
                    self._save()
                    self._tick()
                    self._advance_snapshots()
                    if self.context.stopping.is_set():
                        stop_seen = stop_seen or time.monotonic()
                        if time.monotonic() - stop_seen > STOP_GRACE_SECONDS:
                            log.warning(
                                "source did not stop within %.0fs; leaving it",
                                STOP_GRACE_SECONDS,
                            )
                            return
                    continue
            if isinstance(item, _End):
                if once and self._intake is not None:
                    # requests the stream made on its way (a cascade's re-snapshot) are
                    # queued by now: take them before deciding that nothing is left to do
                    self._intake.take_requests()
                if not (once and self.snapshots is not None and self.snapshots.busy):
                    return
                # A snapshot's watermarks were written after the stream caught up: read on.
                restarts = self._restart_for_watermarks(restarts)
                continue
            if isinstance(item, _Failed):
                if isinstance(item.error, MeepoError):
                    raise item.error
                raise SourceError(f"source failed: {describe_error(item.error)}") from item.error
            newest = item.events[-1].committed_at if item.events else None
            snapshots = self.snapshots
            if snapshots is not None and (snapshots.busy or item.watermarks):
                seen = snapshots.marks_seen
                item = snapshots.process(item)
                if snapshots.marks_seen != seen:
                    restarts = 0  # the stream brings our watermarks back
            elif item.position is not None and not item.schema_changes:
                item, carry = self._coalesce(item)
                newest = item.events[-1].committed_at if item.events else newest
            self.delivery.apply(item)
            while newest is not None and self._unapplied and self._unapplied[0][1] <= newest:
                self._unapplied.popleft()
            if item.position is not None:
                self._pending = self._delivered = item.position
            # while busy, at most one checkpoint (two fsyncs) per interval; an idle
            # pipeline checkpoints within one queue poll (0.2 s), see above
            if time.monotonic() - self._last_save >= self.settings.checkpoint_interval:
                self._save()
            self._tick()
            self._advance_snapshots()

    def _coalesce(self, batch: Batch) -> tuple[Batch, Any]:
        """Merge the complete transactions already waiting behind ``batch`` into one batch
        of at most ``batch_size`` events, so sinks that fall behind catch up with fewer,
        larger requests. Returns the batch and the queue item that could not be merged."""
        merged, size, carry = [batch], len(batch.events), None
        while size < self.settings.batch_size:
            try:
                following = self._queue.get_nowait()
            except queue.Empty:
                break
            if (
                not isinstance(following, Batch)
                or following.position is None
                or following.schema_changes  # delivered on their own, in order
                or size + len(following.events) > self.settings.batch_size
            ):
                carry = following
                break
            merged.append(following)
            size += len(following.events)
        if len(merged) == 1:
            return batch, carry
        events = tuple(event for part in merged for event in part.events)
        return Batch(events, merged[-1].position), carry

    def _save(self) -> None:
        """Checkpoint the last delivered transaction boundary, with the snapshot progress
        that goes with it; also when only the snapshot state changed (a request taken)."""
        intake = self._intake
        position = self._pending
        if position is None and intake is not None and intake.changed:
            position = self._saved if self._saved is not None else (
                self._checkpoint.position if self._checkpoint is not None else None)
        if position is None:
            return
        self.delivery.sync()
        snapshot = (intake.state() if intake is not None
                    else self._checkpoint.snapshot if self._checkpoint is not None else None)
        self.pipeline.checkpoints.save(Checkpoint(position, snapshot))
        self.metrics.record_checkpoint(position)
        if self._pending is not None:
            self.pipeline.source.acknowledge(position)
        self._saved, self._pending = position, None
        self._last_save = time.monotonic()
        if intake is not None:
            intake.saved()

    def _advance_snapshots(self) -> None:
        """Let the snapshots move on (see :meth:`SnapshotIntake.advance`); an
        ``initial_only`` run ends once its snapshot is done."""
        if self._intake is not None and self._intake.advance():
            self._finished = True

    def _restart_for_watermarks(self, restarts: int) -> int:
        """Read the stream again from the last delivered position (``--once`` only); fail
        when the watermarks never come back."""
        if restarts >= WATERMARK_RESTARTS:
            raise SourceError(
                f"pipeline {self.pipeline.name}: the snapshot watermarks written "
                f"{self.snapshots.waiting_seconds() if self.snapshots else 0:.0f}s ago never "
                f"came back through the change stream; {self.pipeline.source.lost_watermarks_hint}"
            )
        self._advance_snapshots()
        if self._reader is not None:
            self._reader.join(timeout=STOP_GRACE_SECONDS)
        self._start_reader(self._delivered, True)
        return restarts + 1

    def _tick(self) -> None:
        interval = self.settings.status_interval
        if interval and time.monotonic() - self._last_status >= interval:
            self._last_status = time.monotonic()
            log.info("%s", self.metrics.status_line())


def _json(position: Position) -> str:
    import json

    return json.dumps(position, separators=(",", ":"), default=str)
