"""``jsonl`` sink (append-only audit log) and source (replay such a log into any sinks)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self

from ..batching import Batcher
from ..errors import SourceError
from ..events import Batch, Position
from ..options import Options
from ..serialization import event_from_dict, event_to_json
from ..sink import Sink
from ..source import Source

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


class JsonlSource(Source):
    """Replays a log written by the ``jsonl`` sink. Consecutive events with the same
    ``txid`` form one transaction; others are one transaction each. The position is the
    byte offset after the last complete transaction. Without ``--once`` it follows the
    file as it grows, like ``tail -f``."""

    def __init__(self, path: Path, poll_interval: float = 0.2) -> None:
        self.path = path
        self.poll_interval = poll_interval

    @classmethod
    def from_options(cls, options: Options) -> Self:
        path = options.path_value("path")
        poll = options.number("poll_interval", 0.2, minimum=0.01)
        options.done()
        return cls(path, poll)

    def check(self) -> list[str]:
        if not self.path.is_file():
            return [f"{self.path} does not exist; point path at a log written by the jsonl sink"]
        return []

    def stream(
        self, start: Position | None, context: PipelineContext, *, once: bool
    ) -> Iterator[Batch]:
        offset = int(start["offset"]) if isinstance(start, dict) else 0
        batcher = Batcher(context.batch_size, context.batch_wait)
        try:
            handle = self.path.open("rb")
        except OSError as exc:
            raise SourceError(f"cannot open jsonl log {self.path}: {exc.strerror}") from exc
        with handle:
            handle.seek(offset)
            open_txid: Any = None  # txid of the transaction whose lines are being read
            while not context.stopping.is_set():
                line = handle.readline()
                if not line.endswith(b"\n"):  # end of file, or a line still being written
                    handle.seek(offset)
                    if open_txid is not None:
                        open_txid = None
                        yield from _due(batcher.commit({"offset": offset}))
                    yield from _due(batcher.flush())
                    if once:
                        return
                    time.sleep(self.poll_interval)
                    continue
                try:
                    event = event_from_dict(json.loads(line))
                except (ValueError, KeyError, TypeError) as exc:
                    raise SourceError(
                        f"{self.path}: the line at byte {offset} is not a meepo event "
                        f"({type(exc).__name__}: {exc})"
                    ) from exc
                if open_txid is not None and event.txid != open_txid:
                    yield from _due(batcher.commit({"offset": offset}))
                yield from _due(batcher.add(event))
                offset += len(line)
                open_txid = event.txid
                if open_txid is None:  # an event without txid is its own transaction
                    yield from _due(batcher.commit({"offset": offset}))


def _due(batch: Batch | None) -> list[Batch]:
    return [] if batch is None else [batch]
