"""``memory`` source: yields what tests publish to its channel."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..events import Batch, Position
from ..source import Source
from .memory import NamedChannel, channel

if TYPE_CHECKING:
    from ..context import PipelineContext


class MemorySource(NamedChannel, Source):
    """Yields what was published to its channel, skipping batches whose integer position
    is at or before the checkpoint (so tests can exercise resume)."""

    def stream(
        self, start: Position | None, context: PipelineContext, *, once: bool
    ) -> Iterator[Batch]:
        chan = channel(self.name)
        while not context.stopping.is_set():
            with chan.available:
                if not chan.pending:
                    if once:
                        return
                    chan.available.wait(0.2)
                    continue
                batch = chan.pending.popleft()
            if start is not None and batch.position is not None and batch.position <= start:
                continue
            yield batch
