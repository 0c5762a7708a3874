"""Schema changes as events: placed among the rows of a batch, given only to sinks that
follow them, recorded and read back by ``jsonl``, dead-lettered whole."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from meepo_core import (
    Batch,
    Batcher,
    ColumnDefinition,
    Delivery,
    RowEvent,
    SchemaChange,
    Sink,
    TableDefinition,
    schema_change_from_dict,
    schema_change_to_dict,
)
from meepo_core.builtin.jsonl_sink import JsonlSink
from meepo_core.builtin.jsonl_source import JsonlSource
from meepo_core.builtin.memory import channel
from meepo_core.builtin.memory_sink import MemorySink
from meepo_core.options import Options
from meepo_core.testing import make_context

STAMP = datetime(2026, 1, 1, tzinfo=UTC)
BEFORE = TableDefinition((ColumnDefinition("id", "integer", False),), ("id",))
AFTER = TableDefinition(
    (ColumnDefinition("id", "integer", False), ColumnDefinition("note", "text", True, "'x'")),
    ("id",),
)


def change(sequence: int = 10, txid: str = "t2") -> SchemaChange:
    return SchemaChange("s", "t", "alter", BEFORE, AFTER, ddl="ALTER TABLE t ADD note text",
                        position={"at": sequence}, committed_at=STAMP, txid=txid,
                        sequence=sequence)


def row(pk: int, txid: str = "t1", **extra: object) -> RowEvent:
    return RowEvent("s", "t", "write", pk, None, {"id": pk, **extra}, committed_at=STAMP,
                    txid=txid, sequence=pk)


class RowsOnlySink(Sink):
    """A sink that keeps no table shape: it does not follow schema changes."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []

    @classmethod
    def from_options(cls, options: Options) -> RowsOnlySink:
        return cls()

    def apply(self, batch: Batch) -> None:
        self.batches.append(batch)


def test_in_order_gives_rows_and_changes_as_committed() -> None:
    batch = Batch((row(1), row(2), row(3)), 1, schema_changes=((0, change(5)), (2, change(6))))
    parts = list(batch.in_order())
    assert parts == [change(5), (row(1), row(2)), change(6), (row(3),)]
    assert list(Batch((row(1),), 1).in_order()) == [(row(1),)]
    assert list(Batch((), 1, schema_changes=((0, change()),)).in_order()) == [change()]


def test_batcher_keeps_each_change_before_the_rows_after_it_across_cuts() -> None:
    batcher = Batcher(max_events=2, max_delay=60)
    assert batcher.add(row(1)) is None
    assert batcher.commit("p1") is None
    batcher.schema_change(change(5))  # the next transaction: DDL, then its rows
    first = batcher.add(row(6, txid="t2"))
    assert first is not None and first.events == (row(1),) and first.position == "p1"
    # placed right after the committed rows: still before every later row
    assert first.schema_changes == ((1, change(5)),)
    batches = [batcher.add(row(7, txid="t2"))]  # mid-transaction cut: no position
    batcher.schema_change(change(8))
    batches += [batcher.add(row(9, txid="t2")), batcher.commit("p2"), batcher.flush()]
    batches = [b for b in batches if b is not None]
    assert batches[0].position is None and batches[-1].position == "p2"
    flat = [part for b in batches for part in b.in_order()]
    order = [p.sequence if isinstance(p, SchemaChange) else e.pk for p in flat
             for e in ((p,) if isinstance(p, SchemaChange) else p)]
    assert order == [6, 7, 8, 9]


def test_a_ddl_only_transaction_is_a_batch_of_its_own() -> None:
    batcher = Batcher(max_events=100, max_delay=0)
    batcher.schema_change(change())
    batch = batcher.commit("p")
    assert batch is not None
    assert batch.events == () and batch.position == "p" and batch.schema_changes == ((0, change()),)


def test_delivery_gives_schema_changes_only_to_sinks_that_follow_them(tmp_path: Path) -> None:
    rows_only, follower = RowsOnlySink(), MemorySink("schema-follower")
    channel("schema-follower").batches.clear()
    with_change = Batch((row(1), row(2, note="n")), 2, schema_changes=((1, change()),))
    plain = Batch((row(3),), 3)
    with Delivery([("a", rows_only), ("b", follower)], make_context(tmp_path)) as delivery:
        delivery.apply(with_change)
        delivery.apply(plain)
    assert [b.schema_changes for b in rows_only.batches] == [(), ()]
    assert [b.events for b in rows_only.batches] == [with_change.events, plain.events]
    assert rows_only.batches[1] is plain  # batches without changes pass untouched
    assert channel("schema-follower").batches == [with_change, plain]
    assert channel("schema-follower").schema_changes == [change()]


def test_jsonl_records_changes_in_place_and_reads_them_back(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    sink = JsonlSink(path)
    context = make_context(tmp_path)
    sink.open(context)
    sink.apply(Batch((row(1),), 1))
    sink.apply(Batch((row(11, txid="t2", note="n"),), 2, schema_changes=((0, change(10)),)))
    sink.close()
    sink.open(context)  # a replay of the same batch writes nothing twice
    sink.apply(Batch((row(11, txid="t2", note="n"),), 2, schema_changes=((0, change(10)),)))
    sink.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["action"] for line in lines] == ["write", "schema", "write"]
    assert schema_change_from_dict(lines[1]) == change(10)

    source = JsonlSource(path)
    batches = list(source.stream(None, context, once=True))
    parts = [part for batch in batches for part in batch.in_order()]
    assert parts == [(row(1),), change(10), (row(11, txid="t2", note="n"),)]


def test_schema_change_json_round_trips() -> None:
    renamed = SchemaChange("s", "t2", "rename", AFTER, AFTER, renamed_from=("s", "t"),
                           renamed_columns=(("a", "b"),), sequence=3)
    data = json.loads(json.dumps(schema_change_to_dict(renamed)))
    assert schema_change_from_dict(data) == renamed
    assert data["name"] == "t2_schema" and data["action"] == "schema"


def test_a_schema_change_dead_letter_holds_the_whole_change(tmp_path: Path) -> None:
    context = make_context(tmp_path)
    context.dead_letter(change(), "sinks[0] sql", "narrowing id from bigint to integer")
    context.dead_letters.sync()
    (record,) = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert record["error"].startswith("narrowing")
    assert schema_change_from_dict(record["event"]) == change()


def test_jsonl_tells_changes_of_one_table_sharing_a_sequence_apart(tmp_path: Path) -> None:
    """A source may give a change the sequence of the row after it (PostgreSQL does): a
    first description and a TRUNCATE of one table can share one; a replay skips both."""
    path = tmp_path / "log.jsonl"
    described = SchemaChange("s", "t", "describe", None, AFTER, committed_at=STAMP, sequence=7)
    truncated = SchemaChange("s", "t", "truncate", AFTER, AFTER, committed_at=STAMP, sequence=7)
    batch = Batch((row(7),), 1, schema_changes=((0, described), (0, truncated)))
    for _ in range(2):  # the second run replays the batch
        sink = JsonlSink(path)
        sink.open(make_context(tmp_path))
        sink.apply(batch)
        sink.close()
    kinds = [json.loads(line).get("kind", "row") for line in path.read_text().splitlines()]
    assert kinds == ["describe", "truncate", "row"]


def test_print_shows_a_change_as_its_kind_and_columns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from meepo_core.builtin.print_sink import PrintSink

    PrintSink().apply(Batch((row(1, note="n"),), 1, schema_changes=((0, change()),)))
    assert capsys.readouterr().out.splitlines() == [
        "t_schema alter id integer, note text", "t_write 1"]


def test_transforms_keep_each_change_before_the_rows_after_it(tmp_path: Path) -> None:
    """A jsonl log with a schema change between rows, through a pipeline filter and a
    sink's own filter: the change reaches the sinks that follow schema changes in its
    place among the rows that remain, and never the others."""
    from meepo_core import load_pipeline
    from meepo_core.runner import Runner
    from meepo_core.serialization import event_to_json
    from meepo_core.testing import write_config

    lines = [event_to_json(row(1, txid="a")), event_to_json(row(2, txid="b")),
             json.dumps(schema_change_to_dict(change(3, txid="c"))),
             event_to_json(row(4, txid="c", note="n")), event_to_json(row(5, txid="d"))]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    channel("follows").batches.clear()
    write_config(tmp_path, {"p": {
        "source": {"type": "jsonl", "path": "in.jsonl"},
        "transforms": [{"type": "filter", "where": "pk != 2"}],
        "sinks": [{"type": "memory", "name": "follows",
                   "transforms": [{"type": "filter", "where": "pk != 4"}]},
                  {"type": "null"}],
        "checkpoint": "none",
    }})
    Runner(load_pipeline("p", tmp_path / "pyproject.toml")).run(once=True)
    parts = [part for batch in channel("follows").batches for part in batch.in_order()]
    flat = [p.kind if isinstance(p, SchemaChange) else e.pk for p in parts
            for e in ((p,) if isinstance(p, SchemaChange) else p)]
    assert flat == [1, "alter", 5]


def test_a_column_type_without_its_modifiers() -> None:
    from meepo_core import ColumnDefinition

    assert [ColumnDefinition("c", spelled).base_type for spelled in (
        "numeric(10,2)", "time(3) with time zone", "character varying(20)",
        "numeric(10, 2)[]", "timestamp without time zone", "integer",
    )] == ["numeric", "time with time zone", "character varying", "numeric[]",
           "timestamp without time zone", "integer"]


def test_a_run_counts_schema_changes_apart_from_row_events() -> None:
    from meepo_core import SchemaChange
    from meepo_core.metrics import Metrics
    from meepo_core.runner import RunStats

    metrics = Metrics("p")
    change = SchemaChange("s", "t", "describe", after=None)
    metrics.record_batch(Batch((row(1), row(2)), "p1", schema_changes=((0, change),)), 0.01)
    assert (metrics.events_total, metrics.schema_changes_total) == (2, 1)
    assert " events=2 schema_changes=1 " in metrics.status_line()
    stats = RunStats(events=2, batches=1, position="p1", saved=True, seconds=0.1,
                     schema_changes=1)
    assert stats.summary().startswith("2 events and 1 schema change in 1 batch, ")
