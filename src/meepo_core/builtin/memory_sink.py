"""``memory`` sink: records applied batches in its channel, for tests to read."""

from __future__ import annotations

from ..events import Batch
from ..sink import Sink
from .memory import NamedChannel, channel


class MemorySink(NamedChannel, Sink):
    """Appends every applied batch to its channel's ``batches``, schema changes included
    (:attr:`Batch.schema_changes`)."""

    follows_schema_changes = True

    def apply(self, batch: Batch) -> None:
        channel(self.name).batches.append(batch)
