"""The delivery engine: applies batches to a pipeline's sinks with one retry and
dead-letter policy. The runner, the in-process SQLAlchemy mode and snapshots all deliver
through it."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self

from .backoff import backoff_delay
from .context import PipelineContext
from .dead_letters import DeadLetterStore, FileDeadLetterStore
from .errors import MeepoError, SinkError, describe_error
from .events import Batch
from .metrics import Metrics
from .settings import PipelineSettings
from .sink import Sink

if TYPE_CHECKING:
    from .transforms import PipelineTransforms

log = logging.getLogger("meepo.delivery")

#: What to do with a batch that a sink still fails after ``max_retries`` retries:
#: ``"stop"`` raises (the source replays it on the next run: a pipeline run); ``"dead_letter"``
#: records its events in the dead-letter store and goes on (nothing can replay it: the
#: in-process SQLAlchemy mode, which delivers after the database commit).
WhenExhausted = Literal["stop", "dead_letter"]


class Delivery:
    """Applies each batch to every sink, in order, with the pipeline's retry policy.

    Policy, the same wherever events are delivered:

    * a sink whose ``apply`` raises is retried with exponential backoff
      (``retry_backoff`` * 2^n seconds, at most ``retry_backoff_max``), up to
      ``max_retries`` times; only the failing sink is retried, the sinks before it in the
      list are not asked again;
    * a :class:`SinkError` with ``retryable=False`` is never retried;
    * when retries are exhausted or the error is not retryable, ``when_exhausted`` decides:
      ``"stop"`` raises a non-retryable :class:`SinkError` naming the sink, ``"dead_letter"``
      records every event of the batch in the dead-letter store (counted and logged);
    * a stop request (``context.stopping``) ends a backoff wait with a :class:`SinkError`;
    * :meth:`sync` makes dead letters durable; callers checkpoint only after it.

    ``sinks`` are ``(label, sink)`` pairs; the label (``"sinks[0] redis"``) names the sink in
    logs, metrics and dead letters. ``transforms`` (the pipeline's, then each sink's) run
    once per batch, before the sinks and outside their retries; an event a transform raises
    on goes to the dead-letter store under the transform's label.
    """

    def __init__(
        self,
        sinks: Sequence[tuple[str, Sink]],
        context: PipelineContext,
        *,
        when_exhausted: WhenExhausted = "stop",
        transforms: PipelineTransforms | None = None,
    ) -> None:
        self.sinks = list(sinks)
        self.transforms = transforms or None
        self.context = context
        self.settings = context.settings
        self.metrics = context.metrics
        self.when_exhausted = when_exhausted
        #: Whether every batch given to :meth:`apply` is handed over: its events made for
        #: this delivery and held nowhere else (set by the runner when its source
        #: :attr:`~meepo_core.source.Source.yields_fresh_events`), so the pipeline's
        #: transforms may change them in place instead of copying them.
        self.fresh_events = False
        self._opened: list[Sink] = []

    @classmethod
    def to_sinks(
        cls,
        sinks: Sequence[Sink],
        *,
        name: str,
        settings: PipelineSettings | None = None,
        dead_letters: DeadLetterStore | None = None,
        when_exhausted: WhenExhausted = "stop",
    ) -> Delivery:
        """An engine over sink objects built in code rather than from a config (labelled
        ``sinks[i] ClassName``), for pipeline ``name``: dead letters default to
        ``.meepo/NAME.dead.jsonl``, settings to :class:`PipelineSettings`' defaults."""
        store = dead_letters or FileDeadLetterStore(Path(".meepo") / f"{name}.dead.jsonl")
        context = PipelineContext(
            pipeline=name, metrics=Metrics(name), dead_letters=store,
            settings=settings or PipelineSettings(),
        )
        labelled = [(f"sinks[{i}] {type(s).__name__}", s) for i, s in enumerate(sinks)]
        return cls(labelled, context, when_exhausted=when_exhausted)

    def open(self) -> Self:
        """Open every sink (``Sink.open``); a failure closes the ones already open and
        raises :class:`SinkError` naming the sink."""
        try:
            if self.transforms is not None:
                self.transforms.open(self.context)
            for label, sink in self.sinks:
                try:
                    sink.open(self.context)
                except MeepoError:
                    raise
                except Exception as exc:
                    raise SinkError(f"{label}: cannot open: {describe_error(exc)}") from exc
                self._opened.append(sink)
        except BaseException:
            self.close()
            raise
        return self

    def apply(self, batch: Batch) -> None:
        """Apply ``batch`` to every sink under the policy above; returns when every sink
        applied it (or, with ``"dead_letter"``, recorded what it could not apply)."""
        began = time.monotonic()
        if self.transforms is not None:
            batches = self.transforms.batches(
                batch, [label for label, _ in self.sinks], self.context.dead_letter,
                self.metrics.record_dropped, self.fresh_events)
            for label, sink in self.sinks:
                part = batches[label]
                if part.schema_changes and not sink.follows_schema_changes:
                    part = part.without_schema_changes()
                self._apply_to(label, sink, part)
        elif batch.schema_changes:
            rows_only = batch.without_schema_changes()
            for label, sink in self.sinks:
                self._apply_to(label, sink,
                               batch if sink.follows_schema_changes else rows_only)
        else:
            for label, sink in self.sinks:
                self._apply_to(label, sink, batch)
        self.metrics.record_batch(batch, time.monotonic() - began)

    def _apply_to(self, label: str, sink: Sink, batch: Batch) -> None:
        attempt = 0
        while True:
            try:
                sink.apply(batch)
                return
            except SinkError as exc:
                if not exc.retryable:
                    self._give_up(label, batch, exc, f"{exc}; stopped without checkpointing "
                                  "this batch")
                    return
                error: Exception = exc
            except Exception as exc:
                error = exc
            attempt += 1
            self.metrics.record_failure(label, "retry")
            if attempt > self.settings.max_retries:
                self._give_up(
                    label, batch, error,
                    f"still failing after {attempt} attempts: {describe_error(error)}; checkpoint "
                    "kept at the last applied batch, rerun to resume",
                )
                return
            self._back_off(label, attempt, error)

    def _give_up(self, label: str, batch: Batch, error: Exception, why: str) -> None:
        if self.when_exhausted == "stop":
            raise SinkError(f"{label}: {why}", retryable=False) from error
        for event in batch.events:
            self.context.dead_letter(event, label, describe_error(error))
        for _, change in batch.schema_changes:
            self.context.dead_letter(change, label, describe_error(error))
        self.sync()

    def _back_off(self, label: str, attempt: int, error: Exception) -> None:
        settings = self.settings
        delay = backoff_delay(attempt, settings.retry_backoff, settings.retry_backoff_max)
        log.warning(
            "%s failed (attempt %d of %d): %s; retrying in %.1fs",
            label, attempt, settings.max_retries + 1, describe_error(error), delay,
        )
        if self.context.stopping.wait(delay):
            raise SinkError(
                f"{label}: stopped while retrying ({describe_error(error)}); checkpoint kept at "
                "the last applied batch, nothing lost",
                retryable=False,
            ) from error

    def sync(self) -> None:
        """Make the dead letters recorded so far durable."""
        self.context.dead_letters.sync()

    def close(self) -> None:
        """Close the opened sinks and the dead-letter store; errors are logged, not raised."""
        opened, self._opened = self._opened, []
        for sink in opened:
            quietly(sink.close)
        quietly(self.context.dead_letters.close)

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def quietly(close: object) -> None:
    """Call ``close()``, logging instead of raising what it raises."""
    try:
        close()  # type: ignore[operator]
    except Exception as exc:
        log.warning("error while closing: %s", describe_error(exc))
