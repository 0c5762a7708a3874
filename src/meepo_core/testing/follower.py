"""Follow a source's stream in a thread, as the runner does, for source tests."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from ..events import Batch, Position, RowEvent

if TYPE_CHECKING:
    from ..context import PipelineContext
    from ..source import Source


class StreamFollower:
    """Runs ``source.stream(start, context, once=False)`` in a daemon thread, collecting its
    batches and acknowledging each batch position as the runner does after a checkpoint.
    :meth:`stop` sets ``context.stopping``, closes the source and fails if the stream did
    not end within 10 s."""

    def __init__(self, source: Source, context: PipelineContext, start: Position) -> None:
        self.source = source
        self.context = context
        self.batches: list[Batch] = []
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, args=(start,), daemon=True)
        self.thread.start()

    def _run(self, start: Position) -> None:
        try:
            for batch in self.source.stream(start, self.context, once=False):
                with self._lock:
                    self.batches.append(batch)
                if batch.position is not None:
                    self.source.acknowledge(batch.position)
        except BaseException as exc:  # reported by the test
            self.error = exc

    @property
    def events(self) -> list[RowEvent]:
        with self._lock:
            return [event for batch in self.batches for event in batch.events]

    @property
    def position(self) -> Position:
        """The position of the last batch that carried one (None before any)."""
        with self._lock:
            found = [b.position for b in self.batches if b.position is not None]
        return found[-1] if found else None

    def wait_for(self, count: int, timeout: float = 30.0) -> list[RowEvent]:
        """Every event so far, once there are at least ``count``; ``AssertionError`` when
        the stream failed or ``timeout`` seconds passed first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error is not None:
                raise AssertionError(f"stream failed: {self.error!r}") from self.error
            events = self.events
            if len(events) >= count:
                return events
            time.sleep(0.05)
        raise AssertionError(f"only {len(self.events)} of {count} events after {timeout}s")

    def stop(self) -> None:
        self.context.stopping.set()
        self.thread.join(10)
        self.source.close()
        assert not self.thread.is_alive(), "the stream did not stop"

    def abandon(self) -> None:
        """Stop without asserting (test teardown): the stream may have failed already."""
        self.context.stopping.set()
        self.source.close()
        self.thread.join(10)
