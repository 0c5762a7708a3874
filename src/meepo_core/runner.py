"""The pipeline runner: a reader thread, ordered delivery, checkpoints, graceful stop."""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from .delivery import describe, quietly
from .errors import MeepoError, SourceError
from .events import Batch, Position
from .metrics import serve_metrics
from .pipeline import Pipeline

log = logging.getLogger("meepo.runner")
#: How long a stop waits for a source that does not notice ``stopping`` before giving up on it.
STOP_GRACE_SECONDS = 5.0


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

    def summary(self) -> str:
        """``"3 events in 1 batch, 0.2s; checkpoint saved at ..."``, for the CLI."""
        batches = "batch" if self.batches == 1 else "batches"
        events = "event" if self.events == 1 else "events"
        if self.saved:
            where = f"checkpoint saved at {_json(self.position)}"
        elif self.position is not None:
            where = f"checkpoint unchanged at {_json(self.position)}"
        else:
            where = "no checkpoint yet"
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
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=self.settings.queue_size)
        self._abandoned = threading.Event()
        self._pending: Position | None = None
        self._saved: Position | None = None
        self._last_save = time.monotonic()
        self._last_status = time.monotonic()

    def stop(self) -> None:
        """Ask for a graceful stop: finish queued batches, save the checkpoint, return."""
        if not self.context.stopping.is_set():
            log.info("stopping pipeline %s: finishing queued batches", self.pipeline.name)
        self.context.stopping.set()

    def run(self, *, once: bool = False, start: Position | None = None) -> RunStats:
        """Run until the source ends (``once``: caught up), a stop, or a fatal error.
        ``start`` overrides the saved checkpoint."""
        started = time.monotonic()
        checkpoint = self.pipeline.checkpoints.load()
        if start is None:
            start = checkpoint
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
        reader: threading.Thread | None = None
        try:
            self.delivery.open()
            # Long-lived start-up objects (modules, config, clients) leave the collector's
            # full scans, which otherwise cost ~15% while batches churn young objects.
            gc.freeze()
            reader = threading.Thread(
                target=self._read, args=(start, once), name="meepo-source", daemon=True
            )
            reader.start()
            self._loop()
        finally:
            self._abandoned.set()
            self._save()
            self.pipeline.source.close()
            if reader is not None:
                reader.join(timeout=STOP_GRACE_SECONDS)
            self.delivery.close()
            quietly(self.pipeline.checkpoints.close)
            if metrics_server is not None:
                metrics_server.shutdown()
            log.info("pipeline %s: %s", self.pipeline.name, self.metrics.status_line())
        return RunStats(
            events=self.metrics.events_total,
            batches=self.metrics.batches,
            position=self._saved if self._saved is not None else checkpoint,
            saved=self._saved is not None,
            seconds=time.monotonic() - started,
        )

    def _read(self, start: Position | None, once: bool) -> None:
        try:
            for batch in self.pipeline.source.stream(start, self.context, once=once):
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

    def _loop(self) -> None:
        stop_seen: float | None = None
        carry: Any = None  # an item taken from the queue by _coalesce but not merged
        while True:
            if carry is not None:
                item, carry = carry, None
            else:
                try:
                    item = self._queue.get(timeout=0.2)
                except queue.Empty:
                    self._save()
                    self._tick()
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
                return
            if isinstance(item, _Failed):
                if isinstance(item.error, MeepoError):
                    raise item.error
                raise SourceError(f"source failed: {describe(item.error)}") from item.error
            if item.position is not None:
                item, carry = self._coalesce(item)
            self.delivery.apply(item)
            if item.position is not None:
                self._pending = item.position
            # while busy, at most one checkpoint (two fsyncs) per interval; an idle
            # pipeline checkpoints within one queue poll (0.2 s), see above
            if time.monotonic() - self._last_save >= self.settings.checkpoint_interval:
                self._save()
            self._tick()

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
        if self._pending is None:
            return
        self.delivery.sync()
        self.pipeline.checkpoints.save(self._pending)
        self.metrics.record_checkpoint(self._pending)
        self.pipeline.source.acknowledge(self._pending)
        self._saved, self._pending = self._pending, None
        self._last_save = time.monotonic()

    def _tick(self) -> None:
        interval = self.settings.status_interval
        if interval and time.monotonic() - self._last_status >= interval:
            self._last_status = time.monotonic()
            log.info("%s", self.metrics.status_line())


def _json(position: Position) -> str:
    import json

    return json.dumps(position, separators=(",", ":"), default=str)
