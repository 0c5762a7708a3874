"""In-process delivery of committed transactions to meepo sinks (no outbox)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from meepo_core.config import load_config
from meepo_core.context import PipelineContext
from meepo_core.dead_letters import DeadLetterStore, FileDeadLetterStore
from meepo_core.events import Batch
from meepo_core.metrics import Metrics
from meepo_core.pipeline import build_pipeline
from meepo_core.plugins import import_local_plugins, registry
from meepo_core.sink import Sink

log = logging.getLogger("meepo.sqlalchemy")


class Publisher:
    """Applies each committed transaction, as one :class:`Batch`, to every sink in order.

    Runs in the committing thread, after the database commit: a sink failure cannot undo
    the commit, so a batch that still fails after ``retries`` extra attempts is written to
    the dead-letter store, counted and logged, never dropped silently. Events are lost only
    if the process dies between the commit and the publication; the outbox mode closes
    that gap.
    """

    def __init__(self, sinks: Sequence[tuple[str, Sink]], context: PipelineContext,
                 retries: int = 1) -> None:
        self.sinks = list(sinks)
        self.context = context
        self.retries = retries
        self._opened = False
        self._lock = threading.Lock()
        self._position = 0

    @classmethod
    def for_sinks(cls, sinks: Sequence[Sink], name: str = "sqlalchemy-session",
                  dead_letters: DeadLetterStore | None = None) -> Publisher:
        store = dead_letters or FileDeadLetterStore(Path(".meepo") / f"{name}.dead.jsonl")
        context = PipelineContext(pipeline=name, metrics=Metrics(name), dead_letters=store)
        labelled = [(f"sinks[{i}] {s.type_name or type(s).__name__}", s)
                    for i, s in enumerate(sinks)]
        return cls(labelled, context)

    @classmethod
    def for_pipeline(cls, name: str, config: str | Path | None = None) -> Publisher:
        """The sinks of pipeline ``name`` in ``config`` (default: the nearest config file);
        its source is not used."""
        loaded = load_config(Path(config) if config is not None else None)
        import_local_plugins(loaded.plugins, str(loaded.base_dir))
        pipeline = build_pipeline(loaded, name, registry(loaded.plugins))
        context = PipelineContext(
            pipeline=name, metrics=Metrics(name), dead_letters=pipeline.dead_letters,
            base_dir=pipeline.base_dir,
        )
        return cls(pipeline.sinks, context)

    def publish(self, batch: Batch) -> None:
        with self._lock:
            if not self._opened:
                for _, sink in self.sinks:
                    sink.open(self.context)
                self._opened = True
            for label, sink in self.sinks:
                for attempt in range(self.retries + 1):
                    try:
                        sink.apply(batch)
                        break
                    except Exception as exc:
                        if attempt < self.retries:
                            log.warning("%s failed (%s); retrying once", label, exc)
                            continue
                        for event in batch.events:
                            self.context.dead_letter(event, label, f"{type(exc).__name__}: {exc}")
                        self.context.dead_letters.sync()
            self.context.metrics.record_batch(batch, 0.0)

    def next_position(self) -> int:
        with self._lock:
            self._position += 1
            return self._position

    def close(self) -> None:
        with self._lock:
            if self._opened:
                for label, sink in self.sinks:
                    try:
                        sink.close()
                    except Exception as exc:
                        log.warning("%s: error while closing: %s", label, exc)
                self._opened = False
            self.context.dead_letters.close()
