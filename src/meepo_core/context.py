"""What a running pipeline shares with its source and sinks."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .dead_letters import DeadLetterStore
from .events import RowEvent
from .metrics import Metrics


@dataclass
class PipelineContext:
    """Handed to the source's ``stream`` and to each sink's ``open``.

    ``stopping`` is set on SIGINT/SIGTERM; long waits should watch it. ``base_dir`` is the
    config file's directory, for resolving relative paths. Sources group events into
    batches of at most ``batch_size`` events, waiting at most ``batch_wait`` seconds.
    """

    pipeline: str
    metrics: Metrics
    dead_letters: DeadLetterStore
    base_dir: Path = field(default_factory=Path.cwd)
    batch_size: int = 1000
    batch_wait: float = 0.2
    stopping: threading.Event = field(default_factory=threading.Event)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("meepo"))

    def dead_letter(self, event: RowEvent, sink: str, error: str) -> None:
        """Record an event that ``sink`` can never apply: stored, counted and logged.

        The event then counts as applied; the runner makes the store durable before the
        next checkpoint.
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
