"""``jsonl`` sink: an append-only audit log, one JSON event per line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Self

from ..events import Batch
from ..options import Options
from ..serialization import event_to_json
from ..sink import Sink

if TYPE_CHECKING:
    from ..context import PipelineContext


class JsonlSink(Sink):
    """Appends each event as one JSON line (see :mod:`meepo_core.serialization`), fsynced
    once per batch.

    Replay after a crash: events that carry a ``sequence`` at or below the last one in the
    file are skipped, so sources with sequences (mysql, outbox) never duplicate lines;
    events without one may appear twice, which the log's readers must tolerate.
    """

    def __init__(self, path: Path, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        self._handle: IO[str] | None = None
        self._last_sequence: int | None = None

    @classmethod
    def from_options(cls, options: Options) -> Self:
        path = options.path_value("path")
        fsync = options.boolean("fsync", True)
        options.done()
        return cls(path, fsync)

    def open(self, context: PipelineContext) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(self.path)
        self._last_sequence = _last_sequence(self.path)
        self._handle = self.path.open("a", encoding="utf-8")

    def check(self) -> list[str]:
        directory = self.path.parent
        if directory.exists() and not os.access(directory, os.W_OK):
            return [f"{directory} is not writable; fix its permissions or change path"]
        return []

    def apply(self, batch: Batch) -> None:
        assert self._handle is not None, "open() first"
        lines = []
        for event in batch.events:
            if event.sequence is not None:
                if self._last_sequence is not None and event.sequence <= self._last_sequence:
                    continue
                self._last_sequence = event.sequence
            lines.append(event_to_json(event) + "\n")
        if lines:
            self._handle.write("".join(lines))
            self._handle.flush()
            if self.fsync:
                os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line left incomplete by a crash mid-write. Its events were never
    checkpointed, so they are delivered again; appending after it would glue lines."""
    try:
        with path.open("r+b") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(0, size - 65536)
            handle.seek(start)
            tail = handle.read()
            if tail and not tail.endswith(b"\n"):
                handle.truncate(start + tail.rfind(b"\n") + 1)
    except FileNotFoundError:
        pass


def _last_sequence(path: Path) -> int | None:
    """The sequence of the last complete line of ``path``, reading only its tail."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 65536))
            tail = handle.read().splitlines()
    except FileNotFoundError:
        return None
    for line in reversed(tail):
        try:
            value = json.loads(line).get("sequence")
        except ValueError:
            continue  # a torn last line from a crash
        return value if isinstance(value, int) else None
    return None
