"""Contract suites that every sink and source must pass; subclass them in pytest.

Plugin tests and third-party authors use the same suites::

    class TestWebhookSink(SinkContract):
        sink_type = "webhook"

        def sink_options(self) -> dict[str, Any]:
            return {"url": self.server_url}

        def snapshot(self) -> Any:
            return sorted(self.received_state())
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ..context import PipelineContext
from ..dead_letters import FileDeadLetterStore
from ..errors import ConfigError
from ..events import Batch, RowEvent
from ..metrics import Metrics
from ..options import Options
from ..plugins import load_registry
from ..settings import PipelineSettings
from ..sink import Sink
from ..source import Source


def make_context(
    tmp_path: Path, pipeline: str = "contract", settings: PipelineSettings | None = None
) -> PipelineContext:
    """A pipeline context whose dead letters go to ``tmp_path/dead.jsonl``, relative paths
    resolve against ``tmp_path``, and settings are ``settings`` (default: the defaults)."""
    return PipelineContext(
        pipeline=pipeline,
        metrics=Metrics(pipeline),
        dead_letters=FileDeadLetterStore(tmp_path / "dead.jsonl"),
        settings=settings or PipelineSettings(),
        base_dir=tmp_path,
    )


def contract_events(schema: str = "meepo_contract", table: str = "items") -> list[Batch]:
    """Five transactions over ``schema.table`` (columns id, name, price, updated_at):
    three writes, an update of id 2 (name changes), a delete of id 3 and an update of id 1
    twice in one transaction. Sequences grow by one per event; positions by one per batch."""
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    seq = iter(range(1, 100))

    def row(pk: int, name: str) -> dict[str, Any]:
        return {"id": pk, "name": name, "price": Decimal(f"{pk}.50"), "updated_at": stamp}

    def event(action: Any, pk: int, before: Any, after: Any, position: int) -> RowEvent:
        return RowEvent(
            schema, table, action, pk, before, after, position, stamp, f"tx{position}", next(seq)
        )

    return [
        Batch(
            (
                event("write", 1, None, row(1, "one"), 1),
                event("write", 2, None, row(2, "two"), 1),
                event("write", 3, None, row(3, "three"), 1),
            ),
            1,
        ),
        Batch((event("update", 2, row(2, "two"), row(2, "deux"), 2),), 2),
        Batch((event("delete", 3, row(3, "three"), None, 3),), 3),
        Batch(
            (
                event("update", 1, row(1, "one"), row(1, "un"), 4),
                event("update", 1, row(1, "un"), row(1, "uno"), 4),
            ),
            4,
        ),
        Batch((), 5),
    ]


class SinkContract:
    """Subclass and set ``sink_type`` and implement :meth:`sink_options` and :meth:`snapshot`.

    ``snapshot`` returns the sink's observable end state (rows in a table, documents in an
    index, keys present...). Fixtures of the subclass may set up servers; ``self.tmp_path``
    is available in every method.
    """

    sink_type: str = ""
    schema = "meepo_contract"
    table = "items"

    def sink_options(self) -> dict[str, Any]:
        raise NotImplementedError

    def snapshot(self) -> Any:
        raise NotImplementedError

    def prepare(self) -> None:
        """Called before the sink is opened (seed a cache, create a table...)."""

    def batches(self) -> list[Batch]:
        return contract_events(self.schema, self.table)

    @pytest.fixture(autouse=True)
    def _contract_tmp(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def build(self) -> Sink:
        registry = load_registry()
        cls = registry.lookup("sink", self.sink_type, "sink.type")
        options = Options({"type": self.sink_type, **self.sink_options()}, "sink", self.tmp_path)
        return cls.from_options(options)  # type: ignore[no-any-return]

    @contextmanager
    def opened(self) -> Iterator[Sink]:
        sink = self.build()
        sink.open(make_context(self.tmp_path))
        try:
            yield sink
        finally:
            sink.close()

    def apply_all(self, batches: list[Batch]) -> None:
        with self.opened() as sink:
            for batch in batches:
                sink.apply(batch)

    def test_unknown_option_names_the_key(self) -> None:
        registry = load_registry()
        cls = registry.lookup("sink", self.sink_type, "sink.type")
        options = Options(
            {"type": self.sink_type, **self.sink_options(), "no_such_option": 1},
            "s[0]",
            self.tmp_path,
        )
        with pytest.raises(ConfigError, match=r"s\[0\]\.no_such_option: unknown option"):
            cls.from_options(options)

    def test_replay_leaves_the_same_state(self) -> None:
        self.prepare()
        batches = self.batches()
        self.apply_all(batches)
        once = self.snapshot()
        self.apply_all(batches)
        assert self.snapshot() == once

    def test_crash_replay_of_a_suffix_leaves_the_same_state(self) -> None:
        self.prepare()
        batches = self.batches()
        self.apply_all(batches)
        once = self.snapshot()
        self.apply_all(batches[1:])  # resumed from an older checkpoint
        assert self.snapshot() == once

    def test_check_reports_no_problem_when_reachable(self) -> None:
        assert self.build().check() == []


class SourceContract:
    """Subclass and implement :meth:`make_source` and :meth:`produce`.

    ``produce(n)`` commits ``n`` new rows, one transaction each, and returns their pks in
    commit order; the source must deliver them as ``write`` events.
    """

    def make_source(self) -> Source:
        raise NotImplementedError

    def produce(self, count: int) -> list[Any]:
        raise NotImplementedError

    @pytest.fixture(autouse=True)
    def _contract_tmp(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def drain(self, start: Any) -> tuple[list[RowEvent], Any]:
        """Stream with ``once`` from ``start``; returns the events and the last position."""
        source = self.make_source()
        events: list[RowEvent] = []
        position = start
        try:
            for batch in source.stream(start, make_context(self.tmp_path), once=True):
                events.extend(batch.events)
                if batch.position is not None:
                    position = batch.position
                    source.acknowledge(position)  # as the runner does after a checkpoint
        finally:
            source.close()
        return events, position

    def test_delivers_committed_rows_in_order_and_resumes_exactly(self) -> None:
        _, start = self.drain(None)
        first = self.produce(3)
        events, position = self.drain(start)
        assert [(e.action, e.pk) for e in events][-3:] == [("write", pk) for pk in first]
        assert position != start
        second = self.produce(2)
        resumed, _ = self.drain(position)
        assert [(e.action, e.pk) for e in resumed] == [("write", pk) for pk in second]

    def test_once_ends_when_caught_up(self) -> None:
        _, position = self.drain(None)
        events, _ = self.drain(position)
        assert events == []

    def test_stops_promptly_when_asked(self) -> None:
        _, position = self.drain(None)
        source = self.make_source()
        context = make_context(self.tmp_path)
        threading.Timer(0.5, context.stopping.set).start()
        began = time.monotonic()
        try:
            for _ in source.stream(position, context, once=False):
                pass
        finally:
            source.close()
        assert time.monotonic() - began < 5
