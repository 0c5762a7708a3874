"""In-process delivery of committed transactions to meepo sinks (no outbox), through the
core's delivery engine."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from meepo_core import (
    Batch,
    DeadLetterStore,
    Delivery,
    PipelineSettings,
    PlacedSchemaChange,
    RowEvent,
    Sink,
    load_pipeline,
)

#: The retry policy of in-process delivery when the config does not set it: it runs in the
#: committing thread, so it retries briefly (one retry after 0.1 s) and then dead-letters
#: the batch instead of holding the application's commit for minutes.
IN_PROCESS_SETTINGS = PipelineSettings(max_retries=1, retry_backoff=0.1, retry_backoff_max=1.0)


class Publisher:
    """Applies each committed transaction, as one :class:`Batch`, to every sink in order.

    Runs in the committing thread, after the database commit, through
    :class:`~meepo_core.Delivery` with ``when_exhausted="dead_letter"``: a sink failure
    cannot undo the commit, so a batch that still fails after the retries is written to the
    dead-letter store (fsynced), counted and logged, never dropped silently. Events are lost
    only if the process dies between the commit and the publication; the outbox mode closes
    that gap.
    """

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self._opened = False
        self._lock = threading.Lock()
        self._position = 0

    @classmethod
    def for_sinks(
        cls,
        sinks: Sequence[Sink],
        name: str = "sqlalchemy-session",
        dead_letters: DeadLetterStore | None = None,
        settings: PipelineSettings = IN_PROCESS_SETTINGS,
    ) -> Publisher:
        """Sink objects built in code; dead letters default to ``.meepo/NAME.dead.jsonl``."""
        return cls(Delivery.to_sinks(sinks, name=name, settings=settings,
                                     dead_letters=dead_letters, when_exhausted="dead_letter"))

    @classmethod
    def for_pipeline(cls, name: str, config: str | Path | None = None) -> Publisher:
        """The sinks of pipeline ``name`` in ``config`` (default: the nearest config file),
        with its settings (unset retry keys default to :data:`IN_PROCESS_SETTINGS`); its
        source is not used."""
        pipeline = load_pipeline(name, config, defaults=IN_PROCESS_SETTINGS)
        return cls(pipeline.delivery(when_exhausted="dead_letter"))

    def publish(self, events: Sequence[RowEvent],
                schema_changes: tuple[PlacedSchemaChange, ...] = ()) -> None:
        """Deliver one committed transaction's events as one batch, with the schema
        changes placed among them."""
        with self._lock:
            if not self._opened:
                self.delivery.open()
                self._opened = True
            self._position += 1
            self.delivery.apply(Batch(tuple(events), self._position,
                                       schema_changes=schema_changes))
            self.delivery.sync()

    def close(self) -> None:
        with self._lock:
            self.delivery.close()
            self._opened = False
