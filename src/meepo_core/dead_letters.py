"""Dead-letter stores: where events that a sink can never apply are kept, with the error."""

from __future__ import annotations

import abc
import json
import os
import reprlib
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from .errors import MeepoError
from .events import RowEvent
from .serialization import event_to_dict
from .writable import why_not_writable


def dead_letter_record(event: RowEvent, sink: str, error: str) -> dict[str, Any]:
    """The JSON record stored for one dead letter: the whole event plus why it failed.

    An event with values JSON cannot carry (the very reason it may have failed: a type it
    lacks, or nesting deeper than the encoder's stack) is kept with those values as
    ``repr`` strings (shortened where even ``repr`` runs out of stack), so it can still be
    recorded.
    """
    try:
        data = event_to_dict(event)
        json.dumps(data, ensure_ascii=False)  # what the stores do with it must work too
    except (TypeError, ValueError, RecursionError):
        data = {
            "name": event.name,
            "schema": event.schema,
            "table": event.table,
            "action": event.action,
            "pk": _repr(event.pk),
            "before": _repr(event.before),
            "after": _repr(event.after),
            "position": _repr(event.position),
            "committed_at": event.committed_at.isoformat(),
            "sequence": event.sequence,
        }
    return {"sink": sink, "error": error, "failed_at": datetime.now(UTC).isoformat(), "event": data}


def _repr(value: Any) -> str:
    try:
        return repr(value)
    except RecursionError:
        return reprlib.repr(value)  # depth-limited: the shape, not every level


class DeadLetterStore(abc.ABC):
    """Append-only storage of failed events. ``sync`` makes everything recorded durable;
    the runner calls it before each checkpoint so no failure is ever only in memory."""

    description: str = ""

    @abc.abstractmethod
    def record(self, event: RowEvent, sink: str, error: str) -> None: ...

    def check(self) -> list[str]:
        """For ``meepo check``: one line per reason ``record`` would fail (without writing
        anything), each ending with the fix; empty when ready."""
        return []

    def sync(self) -> None:  # noqa: B027 - optional hook
        """Make recorded letters durable."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources."""


class FileDeadLetterStore(DeadLetterStore):
    """A JSON-lines file; each line is a :func:`dead_letter_record`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"file:{path}"
        self._handle: IO[str] | None = None
        self._dirty = False
        self._lock = threading.Lock()  # sinks and the source's thread both record

    def check(self) -> list[str]:
        problem = why_not_writable(self.path)
        return [f"{problem}; change dead_letter"] if problem else []

    def record(self, event: RowEvent, sink: str, error: str) -> None:
        with self._lock:
            self._record(event, sink, error)

    def _record(self, event: RowEvent, sink: str, error: str) -> None:
        try:
            if self._handle is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = self.path.open("a", encoding="utf-8")
            record = dead_letter_record(event, sink, error)
            self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._dirty = True
        except OSError as exc:
            raise MeepoError(f"cannot write dead letter to {self.path}: {exc}") from exc

    def sync(self) -> None:
        with self._lock:
            if self._handle is not None and self._dirty:
                self._handle.flush()
                os.fsync(self._handle.fileno())
                self._dirty = False

    def close(self) -> None:
        if self._handle is not None:
            self.sync()
            self._handle.close()
            self._handle = None
