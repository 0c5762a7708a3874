"""The snapshot coordinator's DBLog windows, placed exactly: which chunk rows reach the sinks
and where, whatever the stream does between the low and the high watermark.

The source here is a fake, named so: it stands for a database whose changes we must put at
exact places between two watermarks, which real commit timing cannot do deterministically.
The same algorithm runs against real databases in the sqlalchemy-outbox and mysql suites.
"""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from meepo_core import (
    Batch,
    ColumnDefinition,
    Options,
    PipelineContext,
    Position,
    RowEvent,
    Runner,
    SnapshotTable,
    Source,
    TableDefinition,
    load_pipeline,
)
from meepo_core.builtin.memory import channel
from meepo_core.events import Watermark
from meepo_core.snapshots import SnapshotCoordinator
from meepo_core.snapshots.progress import SnapshotProgress, describe_job
from meepo_core.testing import write_config

TABLE = SnapshotTable("shop", "items", ("id",), estimated_rows=5)


def row(pk: int, name: str = "v") -> dict[str, Any]:
    return {"id": pk, "name": name}


def change(action: str, pk: int, before: Any = None, after: Any = None) -> RowEvent:
    return RowEvent("shop", "items", action, pk, before, after)  # type: ignore[arg-type]


class FakeTableSource(Source):
    """A fake database table (see the module docstring): ``rows`` by key, watermarks
    recorded as they are written; no stream (the tests hand the coordinator batches)."""

    def __init__(self, rows: dict[int, dict[str, Any]]) -> None:
        self.rows = rows
        self.marks: list[str] = []

    @classmethod
    def from_options(cls, options: Options) -> FakeTableSource:
        raise NotImplementedError

    def stream(self, start: Position | None, context: PipelineContext, *,
               once: bool) -> Iterator[Batch]:
        raise NotImplementedError

    def write_watermark(self, mark: str) -> None:
        self.marks.append(mark)

    def last_key(self, table: SnapshotTable,
                 where: Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
        return (max(self.rows),) if self.rows else None

    def read_chunk(self, table: SnapshotTable, after: tuple[Any, ...] | None, limit: int,
                   where: Mapping[str, Any] | None = None,
                   until: tuple[Any, ...] | None = None) -> list[RowEvent]:
        keys = sorted(k for k in self.rows if (after is None or k > after[0])
                      and (until is None or k <= until[0]))[:limit]
        return [RowEvent("shop", "items", "read", k, None, self.rows[k]) for k in keys]


def start(source: FakeTableSource, chunk: int = 3) -> SnapshotCoordinator:
    coordinator = SnapshotCoordinator(source, chunk)
    coordinator.add("r1", [TABLE])
    coordinator.start_chunk()
    return coordinator


def marks(source: FakeTableSource, *indexes: int, sequence: int = 100) -> tuple[Watermark, ...]:
    low, high = source.marks[-2:]
    return tuple(Watermark(index, mark, sequence) for index, mark in zip(indexes, (low, high),
                                                                          strict=True))


def delivered(batch: Batch) -> list[tuple[str, int]]:
    return [(e.action, e.pk) for e in batch.events]


def test_a_quiet_window_delivers_the_chunk_at_the_high_watermark_with_its_sequence() -> None:
    source = FakeTableSource({k: row(k) for k in range(1, 6)})
    coordinator = start(source)
    before = change("write", 9, after=row(9))
    out = coordinator.process(Batch((before,), 1, marks(source, 1, 1, sequence=77)))
    assert delivered(out) == [("write", 9), ("read", 1), ("read", 2), ("read", 3)]
    assert {e.sequence for e in out.events[1:]} == {77} and out.position == 1
    assert out.watermarks == ()
    assert coordinator.jobs[0].after == (3,) and coordinator.jobs[0].rows == 3


class LateStreamSource(FakeTableSource):
    """A fake whose stream has not fixed its start position until ``ready`` is set."""

    ready = False

    def snapshot_ready(self) -> bool:
        return self.ready


def test_no_chunk_starts_before_the_source_is_ready() -> None:
    source = LateStreamSource({k: row(k) for k in range(1, 6)})
    coordinator = start(source)
    assert source.marks == [] and coordinator.window is None
    assert coordinator.jobs[0].started_at is None
    source.ready = True
    coordinator.start_chunk()
    assert len(source.marks) == 2 and coordinator.window is not None


def test_delivered_copies_keep_the_table_definition_of_the_chunk_rows() -> None:
    definition = TableDefinition((ColumnDefinition("id", "integer"),), ("id",),
                                 dialect="postgresql", database="db", schema="shop",
                                 table="items")
    source = FakeTableSource({1: row(1)})
    source.read_chunk = lambda *args, **kwargs: [  # type: ignore[method-assign]
        RowEvent("shop", "items", "read", 1, None, row(1), definition=definition)]
    coordinator = start(source)
    out = coordinator.process(Batch((), 1, marks(source, 0, 0)))
    assert [e.definition for e in out.events] == [definition]


def test_changes_inside_the_window_win_over_the_copy() -> None:
    source = FakeTableSource({k: row(k) for k in range(1, 6)})
    coordinator = start(source)
    inside = (
        change("update", 2, row(2), row(2, "new")),
        change("delete", 3, row(3)),
        change("update", 7, row(1), row(7)),  # key change 1 -> 7
    )
    out = coordinator.process(Batch(inside, 1, marks(source, 0, 3)))
    assert delivered(out) == [("update", 2), ("delete", 3), ("update", 7)]  # no copies


def test_changes_before_the_low_watermark_do_not_drop_copies() -> None:
    source = FakeTableSource({k: row(k) for k in range(1, 6)})
    coordinator = start(source)
    early = change("update", 2, row(2), row(2, "old"))  # committed before L: the copy is newer
    out = coordinator.process(Batch((early,), 1, marks(source, 1, 1)))
    assert delivered(out) == [("update", 2), ("read", 1), ("read", 2), ("read", 3)]


def test_a_window_across_batches_and_changes_after_the_high_watermark() -> None:
    source = FakeTableSource({k: row(k) for k in range(1, 6)})
    coordinator = start(source)
    low, high = marks(source, 0, 0)
    first = coordinator.process(Batch((change("update", 1, row(1), row(1, "x")),), 1, (low,)))
    assert delivered(first) == [("update", 1)]
    second = coordinator.process(Batch((change("delete", 2, row(2)),), 2))
    assert delivered(second) == [("delete", 2)]
    after = change("update", 3, row(3), row(3, "late"))
    third = coordinator.process(Batch((after,), 3, (high,)))
    assert delivered(third) == [("read", 3), ("update", 3)]  # the later change comes last


def test_chunks_cover_the_table_then_the_job_is_done() -> None:
    source = FakeTableSource({k: row(k) for k in range(1, 6)})
    coordinator = start(source, chunk=2)
    seen: list[int] = []
    while coordinator.busy:
        out = coordinator.process(Batch((), 1, marks(source, 0, 0)))
        seen += [e.pk for e in out.events]
        coordinator.start_chunk()
    assert seen == [1, 2, 3, 4, 5]
    state = coordinator.state()
    assert state is not None and state["jobs"] == [] and state["done"][0]["rows"] == 5


def test_rows_appended_after_the_start_are_left_to_the_stream() -> None:
    """Writers appending keys faster than chunks are read cannot keep the job running:
    it ends at the last key it saw when it started (later rows come through the stream)."""
    source = FakeTableSource({k: row(k) for k in range(1, 6)})
    coordinator = start(source, chunk=2)
    seen: list[int] = []
    appended = 100
    for _ in range(20):
        if not coordinator.busy:
            break
        for _ in range(3):
            appended += 1
            source.rows[appended] = row(appended)
        out = coordinator.process(Batch((), 1, marks(source, 0, 0)))
        seen += [e.pk for e in out.events]
        coordinator.start_chunk()
    assert not coordinator.busy and seen == [1, 2, 3, 4, 5]
    state = coordinator.state()
    assert state is not None and state["done"][0]["until"] == [5]


def test_the_bound_is_kept_across_a_restart_and_an_empty_table_is_done_at_once() -> None:
    source = FakeTableSource({k: row(k) for k in range(1, 6)})
    coordinator = start(source, chunk=2)
    coordinator.process(Batch((), 1, marks(source, 0, 0)))
    source.rows.update({k: row(k) for k in range(6, 9)})
    resumed = SnapshotCoordinator(source, 10, coordinator.state())
    resumed.start_chunk()
    out = resumed.process(Batch((), 1, marks(source, 0, 0)))
    assert [e.pk for e in out.events] == [3, 4, 5] and not resumed.busy

    empty = FakeTableSource({})
    coordinator = start(empty)
    assert not coordinator.busy and empty.marks == []
    state = coordinator.state()
    assert state is not None and state["done"][0]["rows"] == 0


def test_progress_survives_a_restart_from_the_saved_state() -> None:
    source = FakeTableSource({k: row(k) for k in range(1, 6)})
    coordinator = start(source, chunk=2)
    coordinator.process(Batch((), 1, marks(source, 0, 0)))  # rows 1-2 delivered
    coordinator.start_chunk()  # a window for 3-4 is open when the process dies
    resumed = SnapshotCoordinator(source, 2, coordinator.state())
    resumed.start_chunk()
    out = resumed.process(Batch((), 1, marks(source, 0, 0)))
    assert [e.pk for e in out.events] == [3, 4]


def test_watermarks_of_an_earlier_run_are_dropped() -> None:
    source = FakeTableSource({1: row(1)})
    coordinator = SnapshotCoordinator(source, 10)
    stale = Batch((change("write", 5, after=row(5)),), 1, (Watermark(0, "old:1:low"),))
    out = coordinator.process(stale)
    assert delivered(out) == [("write", 5)] and out.watermarks == ()


@pytest.mark.parametrize(("rows", "estimate", "expected"), [
    (10, 100, "shop.items: 10 of ~100 rows (10%)"),
    (7, None, "shop.items: 7 rows"),
])
def test_progress_lines(rows: int, estimate: int | None, expected: str) -> None:
    job = {"table": "shop.items", "rows": rows, "estimate": estimate}
    assert describe_job(job, running=False) == expected


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_log_lines_otherwise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = FakeTableSource({k: row(k) for k in range(1, 6)})
    coordinator = start(source, chunk=2)
    coordinator.process(Batch((), 1, marks(source, 0, 0)))  # 2 of ~5 rows done
    terminal = _Terminal()
    bar = SnapshotProgress(stream=terminal)
    bar._last -= 1  # the first redraw is due
    bar.show(coordinator)
    bar.end()
    assert terminal.getvalue().startswith("\r\x1b[Ksnapshot [########------------] shop.items: "
                                          "2 of ~5 rows (40%)")
    assert terminal.getvalue().endswith("\n")
    lines = SnapshotProgress(interval=0, stream=io.StringIO())
    with caplog.at_level("INFO", logger="meepo.snapshot"):
        lines.show(coordinator)
    assert "snapshot shop.items: 2 of ~5 rows (40%)" in caplog.text


def test_snapshot_metrics_in_the_prometheus_text() -> None:
    from meepo_core.metrics import Metrics

    metrics = Metrics("p")
    metrics.record_snapshot_chunk("shop.items", 10, 0.5)
    metrics.record_snapshot_chunk("shop.items", 5, 0.75)
    metrics.record_snapshot_chunk("crm.notes", 3, None)
    lines = metrics.prometheus().splitlines()
    assert 'meepo_snapshot_rows_total{pipeline="p",table="shop.items"} 15' in lines
    assert 'meepo_snapshot_chunks_total{pipeline="p",table="crm.notes"} 1' in lines
    assert 'meepo_snapshot_progress{pipeline="p",table="shop.items"} 0.7500' in lines
    assert not any(line.startswith('meepo_snapshot_progress{pipeline="p",table="crm')
                   for line in lines)
    assert "# TYPE meepo_snapshot_progress gauge" in lines


class LoggedTableSource(FakeTableSource):
    """The fake table with a change log, which ``stream`` replays from ``start`` (positions
    are log lengths), reporting watermarks where they were written. When it passes the
    log entry ``cascade_at`` it asks for a snapshot of the table, as a source that learns of
    a foreign-key cascade does."""

    def __init__(self, rows: dict[int, dict[str, Any]], log: list[RowEvent | str],
                 cascade_at: int) -> None:
        super().__init__(rows)
        self.log = log
        self.cascade_at = cascade_at

    def write_watermark(self, mark: str) -> None:
        super().write_watermark(mark)
        self.log.append(mark)

    def snapshot_tables(self, names: Sequence[str] | None = None) -> list[SnapshotTable]:
        return [TABLE]

    def stream(self, start: Position | None, context: PipelineContext, *,
               once: bool) -> Iterator[Batch]:
        assert once
        for index in range(int(start or 0), len(self.log)):  # the log's end when it began
            entry = self.log[index]
            if isinstance(entry, str):
                yield Batch((), index + 1, (Watermark(0, entry, index),))
                continue
            if index == self.cascade_at:
                time.sleep(0.3)  # after the runner's first look for requests, within a second
                context.request_snapshot(TABLE.qualified)
            yield Batch((entry,), index + 1)


def test_a_once_run_takes_the_snapshot_its_stream_asked_for_on_its_way(tmp_path: Path) -> None:
    """The request comes with the stream's last batch, after the runner's first look for
    requests and within a second of it, when it looks again: the run still takes it before
    it ends, copies the table, and then ends once caught up."""
    config = write_config(tmp_path, {"p": {
        "source": {"type": "memory", "name": "unused"},
        "sinks": [{"type": "memory", "name": "cascade-out"}],
        "checkpoint": "none",
    }})
    log: list[RowEvent | str] = [change("write", 1, after=row(1)),
                                 change("update", 2, row(2), row(2, "cascaded"))]
    source = LoggedTableSource({1: row(1), 2: row(2, "cascaded")}, log, cascade_at=1)
    pipeline = dataclasses.replace(load_pipeline("p", config), source=source)
    stats = Runner(pipeline).run(once=True)
    delivered = [(e.action, e.pk) for e in channel("cascade-out").events]
    assert delivered == [("write", 1), ("update", 2), ("read", 1), ("read", 2)]
    assert stats.snapshot_rows == {"shop.items": 2}
