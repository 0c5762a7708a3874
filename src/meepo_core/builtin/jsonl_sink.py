"""``jsonl`` sink: an append-only audit log, one JSON event per line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self

from ..errors import SinkError
from ..events import Batch, RowEvent
from ..options import REQUIRED, Options, OptionSpec
from ..schema_changes import SchemaChange, schema_change_to_dict
from ..serialization import encode_value, event_to_json
from ..sink import Sink
from ..writable import why_not_writable

if TYPE_CHECKING:
    from ..context import PipelineContext

#: How much of the file's end is read at open to recognise replayed events (bounded memory).
DEDUPLICATION_BYTES = 4 * 1024 * 1024


PATH = OptionSpec("path", "path", REQUIRED,
                  "The log file, relative to the config file's directory; created if missing.")
FSYNC = OptionSpec("fsync", "boolean", True,
                   "fsync the file once per batch before the batch counts as applied.")


class JsonlSink(Sink):
    """Appends each event as one JSON line (see :mod:`meepo_core.serialization`), fsynced
    once per batch.

    Replay after a crash: an event that is already among the lines of the file's last
    :data:`DEDUPLICATION_BYTES` (same ``sequence``, table, action and key) is skipped, so a
    replay from the checkpoint adds no line twice. Only exact repeats are skipped: sequences
    need not grow across the file (a multi-partition source such as ``kafka`` orders them
    per key only, and the rows of one snapshot chunk share their watermark's sequence).
    Events without a sequence, and replays older than that tail, may appear twice, which
    the log's readers must tolerate. An event with a value JSON cannot carry goes to the
    dead-letter store.

    Schema changes are recorded too, in their place among the rows, as
    :func:`~meepo_core.schema_changes.schema_change_to_dict` writes them (``"action":
    "schema"``); the ``jsonl`` source reads them back.
    """

    follows_schema_changes = True
    OPTIONS = (PATH, FSYNC)

    def __init__(self, path: Path, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        self._handle: IO[str] | None = None
        self._written: set[tuple[Any, ...]] = set()  # identities in the file's tail
        self._sequences: set[int] = set()  # their sequences, for a cheap first test
        self._context: PipelineContext | None = None

    @classmethod
    def from_options(cls, options: Options) -> Self:
        path = options.path_value(PATH)
        fsync = options.boolean(FSYNC)
        options.done()
        return cls(path, fsync)

    def open(self, context: PipelineContext) -> None:
        self._context = context
        problem = why_not_writable(self.path)
        if problem:
            raise SinkError(f"jsonl sink path: {problem}; change path", retryable=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(self.path)
        self._written = _identities(self.path)
        self._sequences = {identity[0] for identity in self._written}
        self._handle = self.path.open("a", encoding="utf-8")

    def check(self) -> list[str]:
        problem = why_not_writable(self.path)
        return [f"path: {problem}; change path"] if problem else []

    def apply(self, batch: Batch) -> None:
        assert self._handle is not None, "open() first"
        lines: list[str] = []
        if batch.schema_changes:
            for part in batch.in_order():
                if isinstance(part, SchemaChange):
                    self._add_change(part, lines)
                else:
                    self._add_rows(part, lines)
        else:
            self._add_rows(batch.events, lines)
        if lines:
            self._handle.write("".join(lines))
            self._handle.flush()
            if self.fsync:
                os.fsync(self._handle.fileno())

    def _add_change(self, change: SchemaChange, lines: list[str]) -> None:
        if change.sequence in self._sequences and _identity(
            change.sequence, change.schema, change.table, f"schema:{change.kind}", None
        ) in self._written:
            return  # a replay of a line already written
        lines.append(json.dumps(schema_change_to_dict(change), ensure_ascii=False,
                                separators=(",", ":")) + "\n")

    def _add_rows(self, events: tuple[RowEvent, ...], lines: list[str]) -> None:
        sequences = self._sequences
        for event in events:
            if event.sequence in sequences and _identity(
                event.sequence, event.schema, event.table, event.action, encode_value(event.pk)
            ) in self._written:
                continue  # a replay of a line already written
            try:
                lines.append(event_to_json(event) + "\n")
            except (TypeError, ValueError, RecursionError) as exc:
                assert self._context is not None
                self._context.dead_letter(event, f"jsonl {self.path}", f"cannot encode: {exc}")

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


def _identity(sequence: Any, schema: Any, table: Any, action: Any, pk: Any) -> tuple[Any, ...]:
    return (sequence, schema, table, action, json.dumps(pk, sort_keys=True))


def _identities(path: Path) -> set[tuple[Any, ...]]:
    """What identifies each event with a sequence among the lines of ``path``'s tail."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - DEDUPLICATION_BYTES))
            tail = handle.read().splitlines()
    except FileNotFoundError:
        return set()
    if len(tail) > 1 and size > DEDUPLICATION_BYTES:
        tail = tail[1:]  # the first line read is likely cut
    found = set()
    for line in tail:
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("sequence"), int):
            action = data.get("action")
            if action == "schema":  # changes of one table may share a sequence: add the kind
                action = f"schema:{data.get('kind')}"
            found.add(_identity(data["sequence"], data.get("schema"), data.get("table"),
                                action, data.get("pk")))
    return found
