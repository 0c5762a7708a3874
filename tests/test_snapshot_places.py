"""Where each snapshot row sits in its snapshot (``RowEvent.snapshot``): the first and last
row of every table and of the whole request, as the coordinator delivers the chunks.

The source is a fake database of several tables (named so): the places depend on which
rows the stream changed between two watermarks, which real commit timing cannot place
deterministically. The postgres source's real snapshots are checked against Debezium's
markers in the meepo-kafka golden tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meepo_core import Batch, RowEvent, SnapshotTable
from meepo_core.events import SnapshotPlace, Watermark
from meepo_core.snapshots import SnapshotCoordinator, is_initial, new_request_id

F, L = SnapshotPlace.FIRST, SnapshotPlace.LAST
FT, LT = SnapshotPlace.FIRST_IN_TABLE, SnapshotPlace.LAST_IN_TABLE
NONE = SnapshotPlace(0)


class FakeDatabase:
    """A fake database (see the module docstring): tables of integer keys."""

    def __init__(self, tables: dict[str, list[int]]) -> None:
        self.tables = tables
        self.marks: list[str] = []

    def snapshot_ready(self) -> bool:
        return True

    def write_watermark(self, mark: str) -> None:
        self.marks.append(mark)

    def read_chunk_between(self, low: str, high: str, table: SnapshotTable,
                           after: tuple[Any, ...] | None, limit: int,
                           where: Mapping[str, Any] | None = None,
                           until: tuple[Any, ...] | None = None) -> list[RowEvent]:
        """As :meth:`meepo_core.Source.read_chunk_between` by default: L, the read, H."""
        self.write_watermark(low)
        rows = self.read_chunk(table, after, limit, where, until)
        self.write_watermark(high)
        return rows

    def last_key(self, table: SnapshotTable,
                 where: Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
        keys = self.tables[table.table]
        return (max(keys),) if keys else None

    def read_chunk(self, table: SnapshotTable, after: tuple[Any, ...] | None, limit: int,
                   where: Mapping[str, Any] | None = None,
                   until: tuple[Any, ...] | None = None) -> list[RowEvent]:
        keys = sorted(k for k in self.tables[table.table] if (after is None or k > after[0])
                      and (until is None or k <= until[0]))[:limit]
        return [RowEvent("s", table.table, "read", k, None, {"id": k}) for k in keys]


def tables(*names: str) -> list[SnapshotTable]:
    return [SnapshotTable("s", name, ("id",)) for name in names]


def run(coordinator: SnapshotCoordinator, database: FakeDatabase,
        changed: Mapping[str, set[int]] | None = None) -> list[tuple[str, int, SnapshotPlace]]:
    """Every chunk until the jobs are done; ``changed``: keys the stream changes inside
    each window of their table. (table, key, place) of every delivered read."""
    out: list[tuple[str, int, SnapshotPlace]] = []
    for _ in range(100):
        coordinator.start_chunk()
        window = coordinator.window
        if window is None:
            if not coordinator.busy:
                return out
            continue
        table = window.job.table.table
        inside = tuple(RowEvent("s", table, "update", k, {"id": k}, {"id": k})
                       for k in sorted((changed or {}).get(table, set())))
        low, high = database.marks[-2:]
        batch = coordinator.process(Batch(inside, None, (
            Watermark(0, low), Watermark(len(inside), high))))
        out += [(e.table, e.pk, e.snapshot) for e in batch.events
                if e.action == "read" and e.snapshot is not None]
    raise AssertionError("the snapshot did not end")


def test_first_and_last_of_each_table_and_of_the_initial_snapshot() -> None:
    database = FakeDatabase({"a": [1, 2, 3, 4], "b": [7], "c": [5, 6]})
    coordinator = SnapshotCoordinator(database, 3)
    coordinator.add(new_request_id("initial"), tables("a", "b", "c"))
    i = SnapshotPlace.INITIAL
    assert run(coordinator, database) == [
        ("a", 1, i | F | FT), ("a", 2, i), ("a", 3, i), ("a", 4, i | LT),
        ("b", 7, i | FT | LT),
        ("c", 5, i | FT), ("c", 6, i | LT | L),
    ]


def test_empty_tables_neither_start_nor_end_it() -> None:
    """Tables without rows are done when the request starts: the last row of the last
    table with rows ends the snapshot; FIRST is the first row of the first table only
    (Debezium's ``first``, recorded in postgres_snapshot.jsonl)."""
    database = FakeDatabase({"a": [], "b": [1, 2, 3], "c": []})
    coordinator = SnapshotCoordinator(database, 3)  # b fills exactly one chunk
    coordinator.add("r1", tables("a", "b", "c"))
    assert run(coordinator, database) == [("b", 1, FT), ("b", 2, NONE), ("b", 3, LT | L)]
    assert [done["table"] for done in coordinator.done] == ["s.a", "s.c", "s.b"]
    assert len(database.marks) == 2, "no empty chunk after the one that reached the last key"


def test_rows_the_stream_changed_leave_the_places_to_the_delivered_ones() -> None:
    database = FakeDatabase({"a": [1, 2, 3, 4, 5], "b": [6, 7]})
    coordinator = SnapshotCoordinator(database, 2)
    coordinator.add("r1", tables("a", "b"))
    # 1 (first of all) and 7 (last of all) change while copied: the stream delivers them
    assert run(coordinator, database, {"a": {1}, "b": {7}}) == [
        ("a", 2, F | FT), ("a", 3, NONE), ("a", 4, NONE), ("a", 5, LT),
        ("b", 6, FT | LT | L)]


def test_requests_are_placed_apart_and_only_the_initial_one_says_so() -> None:
    database = FakeDatabase({"a": [1], "b": [2]})
    coordinator = SnapshotCoordinator(database, 10)
    coordinator.add("r1", tables("a"))
    coordinator.add("r2", tables("b"))
    assert run(coordinator, database) == [("a", 1, F | FT | LT | L), ("b", 2, F | FT | LT | L)]
    assert is_initial(new_request_id("initial")) and not is_initial(new_request_id())


def test_a_restart_mid_request_does_not_start_it_again() -> None:
    database = FakeDatabase({"a": [1, 2], "b": [3]})
    coordinator = SnapshotCoordinator(database, 1)
    coordinator.add("r1", tables("a", "b"))
    coordinator.start_chunk()
    low, high = database.marks[-2:]
    first = coordinator.process(Batch((), None, (Watermark(0, low), Watermark(0, high))))
    assert [e.snapshot for e in first.events] == [F | FT]
    resumed = SnapshotCoordinator(database, 1, coordinator.state())
    assert run(resumed, database) == [("a", 2, LT), ("b", 3, FT | LT | L)]


def test_the_place_survives_the_json_encoding_and_transforms() -> None:
    from meepo_core import derive, event_from_json, event_to_json

    event = RowEvent("s", "a", "read", 1, None, {"id": 1},
                     snapshot=SnapshotPlace.INITIAL | F | FT)
    assert event_from_json(event_to_json(event)).snapshot == event.snapshot
    assert derive(event, after={"id": 1, "x": 2}).snapshot == event.snapshot
    assert "snapshot" not in event_to_json(RowEvent("s", "a", "write", 1, None, {"id": 1}))
