"""A ``record`` sink for the worker tests: appends, per applied event, the worker's pid, the
time, the key and the sequence to ``path`` (``{pid}`` is replaced), fsynced per batch. Loaded
through ``[tool.meepo] plugins`` from next to the test's config file."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Self

from meepo_core import Batch, Options, PipelineContext, Sink, hookimpl


class RecordSink(Sink):
    def __init__(self, path: str) -> None:
        self.path = path
        self.handle: IO[str] | None = None

    @classmethod
    def from_options(cls, options: Options) -> Self:
        path = str(options.base_dir / options.string("path"))
        options.done()
        return cls(path)

    def open(self, context: PipelineContext) -> None:
        self.handle = Path(self.path.format(pid=os.getpid())).open("a", encoding="utf-8")  # noqa: SIM115 - kept open until close()

    def apply(self, batch: Batch) -> None:
        assert self.handle is not None
        now = time.time()
        self.handle.write("".join(
            json.dumps({"pid": os.getpid(), "t": now, "pk": e.pk, "seq": e.sequence,
                        "action": e.action}) + "\n" for e in batch.events))
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


@hookimpl
def meepo_register_sinks(register: Callable[[str, Any], None]) -> None:
    register("record", RecordSink)
