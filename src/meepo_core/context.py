"""What a running pipeline shares with its source and sinks."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .dead_letters import DeadLetterStore
from .events import Position, RowEvent
from .metrics import Metrics
from .settings import PipelineSettings


@dataclass
class PipelineContext:
    """Handed to the source's ``stream`` and to each sink's ``open``.

    ``settings`` are the pipeline's settings; sources group events into batches of at most
    ``batch_size`` events, waiting at most ``batch_wait`` seconds. ``stopping`` is set on
    SIGINT/SIGTERM; long waits should watch it. ``base_dir`` is the config file's
    directory, for resolving relative paths. ``identity`` is unique to this pipeline run on
    this machine (host, config file, pipeline name, ``purpose``): derive names that must not
    collide on a server from it (a replica's server id, a consumer name). ``purpose`` is
    ``"run"`` for ``meepo run`` and another word for side runs next to it (``"backfill"``).
    ``stored_position``, when a sink owns the position (exactly-once), reads the position
    that sink holds now: a source whose partitions move between workers resumes each
    partition it is given from there.
    """

    pipeline: str
    metrics: Metrics
    dead_letters: DeadLetterStore
    settings: PipelineSettings
    base_dir: Path = field(default_factory=Path.cwd)
    identity: str = ""
    purpose: str = "run"
    stopping: threading.Event = field(default_factory=threading.Event)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("meepo"))
    stored_position: Callable[[], Position | None] | None = None
    _snapshot_requests: queue.SimpleQueue[tuple[str, dict[str, Any]]] = field(
        default_factory=queue.SimpleQueue, repr=False)

    def __post_init__(self) -> None:
        if not self.identity:
            self.identity = self.pipeline if self.purpose == "run" else (
                f"{self.pipeline}#{self.purpose}")

    @property
    def batch_size(self) -> int:
        return self.settings.batch_size

    @property
    def batch_wait(self) -> float:
        return self.settings.batch_wait

    def request_snapshot(self, table: str, where: Mapping[str, Any] | None = None) -> None:
        """Ask the runner for an incremental snapshot of ``table`` (``schema.table``),
        limited to the rows whose columns equal ``where`` (None: IS NULL). Sources call it
        when they learn that rows changed without row events (foreign-key cascades);
        callable from the source's thread. Runs without snapshot support ignore it."""
        self._snapshot_requests.put((table, dict(where or {})))

    def take_snapshot_requests(self) -> list[tuple[str, dict[str, Any]]]:
        """The requests made with :meth:`request_snapshot` since the last call."""
        taken = []
        while True:
            try:
                taken.append(self._snapshot_requests.get_nowait())
            except queue.Empty:
                return taken

    def dead_letter(self, event: RowEvent, sink_label: str, error: str) -> None:
        """Record an event that the sink labelled ``sink_label`` (e.g. ``"sinks[0]
        webhook"``) can never apply, because of ``error`` (one line): stored, counted and
        logged.

        The event then counts as applied; the delivery engine makes the store durable
        before the next checkpoint.
        """
        self.dead_letters.record(event, sink_label, error)
        self.metrics.record_failure(sink_label, "dead_letter")
        self.logger.error(
            "dead letter: sink=%s event=%s pk=%r error=%s store=%s",
            sink_label,
            event.name,
            event.pk,
            error,
            self.dead_letters.description,
        )
