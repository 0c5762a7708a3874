"""``null``: counts and discards events; the baseline sink for benchmarks."""

from __future__ import annotations

from typing import Self

from ..events import Batch
from ..options import Options
from ..sink import Sink


class NullSink(Sink):
    """Counts row events; schema changes are left out (``follows_schema_changes`` is
    False), as by every sink that keeps no table shape."""

    OPTIONS = ()  # none

    def __init__(self) -> None:
        self.count = 0

    @classmethod
    def from_options(cls, options: Options) -> Self:
        options.done()
        return cls()

    def apply(self, batch: Batch) -> None:
        self.count += len(batch.events)
