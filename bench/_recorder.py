"""A local meepo plugin for the latency benchmark: the ``bench-recorder`` sink.

It notes the wall-clock time (``time.time()``) at which each event reaches it and appends
``PK TIME`` lines to ``path``, flushed per batch (not fsynced: only the benchmark reads
it). Placed after another sink in ``sinks``, it sees a batch only once that sink's
``apply`` returned, so its times are when the batch was durable there.

Loaded with ``[tool.meepo] plugins = ["_recorder"]`` and this folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Self

from meepo_core import Batch, Options, PipelineContext, Sink, hookimpl


class RecorderSink(Sink):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    @classmethod
    def from_options(cls, options: Options) -> Self:
        path = options.path_value("path")
        options.done()
        return cls(path)

    def open(self, context: PipelineContext) -> None:
        self._handle = self.path.open("a", encoding="utf-8")

    def apply(self, batch: Batch) -> None:
        now = time.time()
        assert self._handle is not None
        self._handle.write("".join(f"{event.pk} {now:.6f}\n" for event in batch.events))
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


@hookimpl
def meepo_register_sinks(register: Callable[[str, Any], None]) -> None:
    register("bench-recorder", RecorderSink)
