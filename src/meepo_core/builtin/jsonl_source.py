"""``jsonl`` source: replays a log written by the ``jsonl`` sink into any sinks."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from ..batching import Batcher
from ..errors import SourceError
from ..events import Batch, Position, RowEvent
from ..options import REQUIRED, Options, OptionSpec
from ..schema_changes import SchemaChange, schema_change_from_dict
from ..serialization import event_from_dict
from ..source import Source

if TYPE_CHECKING:
    from ..context import PipelineContext


PATH = OptionSpec("path", "path", REQUIRED,
                  "The log a `jsonl` sink wrote, relative to the config file's directory.")
POLL_INTERVAL = OptionSpec("poll_interval", "number", 0.2,
                           "Seconds between looks at the file for new lines when following it.",
                           minimum=0.01)


class JsonlSource(Source):
    """Replays a log written by the ``jsonl`` sink. Consecutive events with the same
    ``txid`` form one transaction; others are one transaction each. The position is the
    byte offset after the last complete transaction. Without ``--once`` it follows the
    file as it grows, like ``tail -f``. Schema changes in the log (``"action": "schema"``)
    come back as schema changes, in their place."""

    OPTIONS = (PATH, POLL_INTERVAL)
    yields_fresh_events = True  # decoded for this run, held nowhere else

    def __init__(self, path: Path, poll_interval: float = 0.2) -> None:
        self.path = path
        self.poll_interval = poll_interval

    @classmethod
    def from_options(cls, options: Options) -> Self:
        path = options.path_value(PATH)
        poll = options.number(POLL_INTERVAL)
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
                    data = json.loads(line)
                    event: RowEvent | SchemaChange = (
                        schema_change_from_dict(data) if data.get("action") == "schema"
                        else event_from_dict(data))
                except (ValueError, KeyError, TypeError) as exc:
                    raise SourceError(
                        f"{self.path}: the line at byte {offset} is not a meepo event "
                        f"({type(exc).__name__}: {exc})"
                    ) from exc
                if open_txid is not None and event.txid != open_txid:
                    yield from _due(batcher.commit({"offset": offset}))
                if isinstance(event, SchemaChange):
                    batcher.schema_change(event)
                else:
                    yield from _due(batcher.add(event))
                offset += len(line)
                open_txid = event.txid
                if open_txid is None:  # an event without txid is its own transaction
                    yield from _due(batcher.commit({"offset": offset}))


def _due(batch: Batch | None) -> list[Batch]:
    return [] if batch is None else [batch]
