"""What a running pipeline shares with its source and sinks."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .dead_letters import DeadLetterStore
from .events import RowEvent
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

    def dead_letter(self, event: RowEvent, sink: str, error: str) -> None:
        """Record an event that ``sink`` (its label, e.g. ``"sinks[0] webhook"``) can never
        apply: stored, counted and logged.

        The event then counts as applied; the delivery engine makes the store durable
        before the next checkpoint.
        """
        self.dead_letters.record(event, sink, error)
        self.metrics.record_failure(sink, "dead_letter")
        self.logger.error(
            "dead letter: sink=%s event=%s pk=%r error=%s store=%s",
            sink,
            event.name,
            event.pk,
            error,
            self.dead_letters.description,
        )
