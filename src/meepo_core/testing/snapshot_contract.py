"""The contract of sources that take part in snapshots; subclass it in pytest.

It checks, on the source's real database, what the core relies on when it copies tables
while streaming (see :mod:`meepo_core.snapshots`): a copied row equals the row the stream
delivers for it, chunks page in key order within their bounds and filters, ``meepo run``
with ``snapshot = "initial_only"`` copies every row and ends, and a snapshot taken while
writers keep changing the table leaves a sink equal to the table. Plugins used to write
these by hand, each its own near-copy.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from ..events import RowEvent
from ..source import Source
from .contracts import drain_once
from .invoke import run_meepo, write_config

#: Rows of the table the writers test changes.
WRITERS_ROWS = 300


def table_state(events: Iterable[RowEvent]) -> dict[Any, dict[str, Any]]:
    """The table a sink holds after applying ``events`` in order: reads and writes as
    upserts, an update that changed the key moves the row, a delete removes it."""
    state: dict[Any, dict[str, Any]] = {}
    for event in events:
        if event.action == "delete":
            state.pop(event.pk, None)
            continue
        if event.action == "update" and event.before is not None and event.pk_columns:
            old = tuple(event.before.get(column) for column in event.pk_columns)
            state.pop(old[0] if len(old) == 1 else old, None)
        assert event.after is not None, event
        state[event.pk] = dict(event.after)
    return state


class SnapshotSourceContract:
    """Subclass and implement :meth:`connect`, :meth:`qualified` and
    :meth:`fill_typed_table`, and either set :attr:`harness` (in an autouse fixture) or
    implement :meth:`make_source`, :meth:`source_options` and :meth:`execute`.

    The tests create their tables with portable SQL through :meth:`execute` (in the test's
    own database or schema, where :meth:`make_source` follows every table). The source must
    have a snapshot reader (:attr:`Source.supports_snapshots`).
    """

    #: Seconds the writers test waits for the snapshot, then for the stream to catch up.
    writers_timeout = 120.0
    #: An object with ``source(**overrides)``, ``options(**overrides)`` and
    #: ``execute(*statements)`` for the test's database, such as a subclass of
    #: meepo-testkit's ``SourceHarness``; the three methods below delegate to it.
    harness: Any = None

    def make_source(self, **overrides: Any) -> Source:
        """A new source following every table of the test's database, with ``overrides``
        applied to its options (``columns``...)."""
        return self._harness().source(**overrides)  # type: ignore[no-any-return]

    def source_options(self, **overrides: Any) -> dict[str, Any]:
        """The options of :meth:`make_source` as a config's ``source`` table."""
        return self._harness().options(**overrides)  # type: ignore[no-any-return]

    def execute(self, *statements: str) -> None:
        """Run each statement with autocommit in the test's database."""
        self._harness().execute(*statements)

    def _harness(self) -> Any:
        if self.harness is None:
            raise NotImplementedError(
                f"{type(self).__name__}: set harness in a fixture, or implement make_source, "
                "source_options and execute")
        return self.harness

    def connect(self) -> contextlib.AbstractContextManager[Any]:
        """A DB-API connection (``%s`` parameters) in autocommit mode to the test's
        database, for the writers; closed on exit."""
        raise NotImplementedError

    def qualified(self, table: str) -> str:
        """``schema.table`` as the source names ``table`` of the test's database."""
        raise NotImplementedError

    def fill_typed_table(self) -> tuple[str, Callable[[], None]]:
        """Create a table with a column of every type the source decodes; return its name
        and a function that inserts rows (edge values included) into it. The test streams
        from between the two."""
        raise NotImplementedError

    def comparable(self, value: Any) -> Any:
        """``value`` as the comparisons see it (NaN, which equals nothing, by name...)."""
        return value

    @pytest.fixture(autouse=True)
    def _snapshot_contract_tmp(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    # -- helpers ----------------------------------------------------------------------------
    def drain(self, start: Any) -> tuple[list[RowEvent], Any]:
        """Stream with ``once`` from ``start``; the events and the last position."""
        return drain_once(self.make_source(), start, self.tmp_path)

    @contextlib.contextmanager
    def snapshot_source(self, **overrides: Any) -> Iterator[Source]:
        source = self.make_source(**overrides)
        try:
            yield source
        finally:
            source.close()

    def copied(self, table: str, **overrides: Any) -> list[RowEvent]:
        """Every row of ``table`` as one chunk reads it."""
        with self.snapshot_source(**overrides) as source:
            (found,) = source.snapshot_tables([self.qualified(table)])
            return source.read_chunk(found, None, 100_000)

    def comparable_rows(self, rows: Mapping[Any, Mapping[str, Any] | None]
                        ) -> dict[Any, dict[str, Any]]:
        return {pk: {k: self.comparable(v) for k, v in (row or {}).items()}
                for pk, row in rows.items()}

    def assert_copies_equal_the_stream(self, table: str, start: Any) -> int:
        """Stream from ``start`` and copy ``table``: each copied row equals the row the
        stream left for its key (after every change), with the same key columns. Returns
        how many rows were copied."""
        streamed, _ = self.drain(start)
        mine = [e for e in streamed if e.table == table.rsplit(".", 1)[-1]]
        copies = self.copied(table)
        assert [e.action for e in copies] == ["read"] * len(copies)
        assert self.comparable_rows({e.pk: e.after for e in copies}) == self.comparable_rows(
            table_state(mine))
        assert {e.pk_columns for e in copies} == {e.pk_columns for e in mine}
        return len(copies)

    # -- the tests --------------------------------------------------------------------------
    def test_supports_snapshots(self) -> None:
        with self.snapshot_source() as source:
            assert source.supports_snapshots

    def test_a_copied_row_equals_the_streamed_row_for_every_type(self) -> None:
        table, insert = self.fill_typed_table()
        _, start = self.drain(None)
        insert()
        assert self.assert_copies_equal_the_stream(table, start) > 0

    def test_chunks_page_in_key_order_within_bounds_and_filters(self) -> None:
        self.execute(
            "CREATE TABLE pairs (a VARCHAR(8), b INT, secret VARCHAR(8), n INT, "
            "PRIMARY KEY (a, b))",
            "INSERT INTO pairs VALUES " + ", ".join(
                f"('{a}', {b}, 'pw', {b % 3 if b % 4 else 'NULL'})"
                for a in ("y", "x") for b in range(6)))
        rule = {self.qualified("pairs"): {"exclude": ["secret"]}}
        with self.snapshot_source(columns=rule) as source:
            (table,) = source.snapshot_tables([self.qualified("pairs")])
            assert table.key == ("a", "b")
            first = source.read_chunk(table, None, 5)
            rest = source.read_chunk(table, first[-1].pk, 100)
            nulls = source.read_chunk(table, None, 100, {"n": None})
            ones = source.read_chunk(table, None, 100, {"n": 1, "a": "x"})
            last, last_one = source.last_key(table), source.last_key(table, {"n": 1, "a": "x"})
            upto = source.read_chunk(table, ("x", 3), 100, None, ("y", 1))
            assert source.last_key(table, {"n": 7}) is None
        assert last == ("y", 5) and last_one == ("x", 1)
        assert [e.pk for e in upto] == [("x", 4), ("x", 5), ("y", 0), ("y", 1)]
        keys = [e.pk for e in first + rest]
        assert keys == sorted(keys) and len(keys) == 12 and keys[0] == ("x", 0)
        assert "secret" not in (first[0].after or {}) and first[0].pk_columns == ("a", "b")
        assert [e.pk for e in nulls] == [("x", 0), ("x", 4), ("y", 0), ("y", 4)]
        assert [e.pk for e in ones] == [("x", 1)]

    def test_initial_only_copies_every_row_then_exits(self) -> None:
        self.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), "
                     "secret VARCHAR(8))",
                     "INSERT INTO items VALUES " + ", ".join(
                         f"({pk}, 'n{pk}', 's')" for pk in range(1, 251)))
        options = self.source_options(
            tables=[self.qualified("items")],
            columns={self.qualified("items"): {"exclude": ["secret"]}})
        write_config(self.tmp_path, {"copy": {
            "source": options, "sinks": [{"type": "jsonl", "path": "out.jsonl"}],
            "snapshot": "initial_only", "snapshot_chunk_size": 64,
        }})
        done = run_meepo("run", "copy", cwd=self.tmp_path)  # initial_only ends by itself
        assert done.returncode == 0, done.stderr
        assert "initial snapshot done" in done.stderr
        lines = [json.loads(line)
                 for line in (self.tmp_path / "out.jsonl").read_text().splitlines()]
        # (a source whose configured start lies before the table was filled streams
        # those writes too)
        reads = [line for line in lines if line["action"] == "read"]
        assert sorted(line["pk"] for line in reads) == list(range(1, 251))
        assert all("secret" not in line["after"] for line in reads)
        state = json.loads((self.tmp_path / ".meepo" / "copy.json").read_text())
        assert state["snapshot"]["jobs"] == []

    def test_a_snapshot_under_concurrent_writes_ends_equal_to_the_table(self) -> None:
        self.execute("CREATE TABLE items (id INT PRIMARY KEY, n INT)",
                     "INSERT INTO items VALUES " + ", ".join(
                         f"({pk}, 0)" for pk in range(1, WRITERS_ROWS + 1)))
        config = write_config(self.tmp_path, {"live": {
            "source": self.source_options(tables=[self.qualified("items")]),
            "sinks": [{"type": "memory", "name": f"live-{id(self)}"}],
            "snapshot": "initial", "snapshot_chunk_size": 16, "batch_wait": 0.01,
            "checkpoint": "none",
        }})
        stop = threading.Event()
        commits = [0]
        fresh = itertools.count(WRITERS_ROWS + 1)  # shared: each insert at the key range's end
        writers = [threading.Thread(target=keep_writing, args=(self.connect, stop, commits),
                                    kwargs={"seed": seed, "keys": WRITERS_ROWS, "fresh": fresh})
                   for seed in range(3)]
        events = run_while_writing(config, "live", f"live-{id(self)}", writers, stop,
                                   self.read_items, self.writers_timeout)
        assert commits[0] > 100, "the writers hardly wrote during the snapshot"
        assert any(e.action == "read" for e in events)
        assert any(e.action != "read" for e in events)
        assert table_state(events) == self.read_items()

    def read_items(self) -> dict[Any, dict[str, Any]]:
        with self.connect() as conn:
            cursor = conn.cursor()
            cursor.execute("SELECT id, n FROM items")
            return {row[0]: {"id": row[0], "n": row[1]} for row in cursor.fetchall()}


def keep_writing(
    connect: Callable[[], contextlib.AbstractContextManager[Any]], stop: threading.Event,
    commits: list[int], *, seed: int, keys: int, fresh: Iterator[int] | None = None,
    pause: float = 0.002,
) -> None:
    """Until ``stop`` is set, change the table ``items (id, n)`` whose rows have ids
    1..``keys``, one autocommitted statement every ``pause`` seconds, counting them in
    ``commits[0]``: ``UPDATE items SET n = n + 1`` of a random row (``seed`` picks them);
    given ``fresh`` (new ids, shared by the writers), also deletes of random rows (a
    quarter) and inserts of the next fresh id (a quarter). Run it in a thread.

    Inserts go to the end of the key range: a snapshot copies up to the last key it saw
    when it began and leaves later rows to the stream, while rows inserted below that key
    faster than it copies would keep it from ending."""
    rng = random.Random(seed)
    with connect() as conn:
        cursor = conn.cursor()
        while not stop.is_set():
            roll = 0.0 if fresh is None else rng.random()
            key = rng.randint(1, keys)
            if fresh is None or roll < 0.5:
                cursor.execute("UPDATE items SET n = n + 1 WHERE id = %s", (key,))
            elif roll < 0.75:
                cursor.execute("DELETE FROM items WHERE id = %s", (key,))
            else:
                cursor.execute("INSERT INTO items VALUES (%s, 1)", (next(fresh),))
            commits[0] += 1
            time.sleep(pause)


def run_while_writing(
    config: Path, pipeline: str, channel_name: str, writers: list[threading.Thread],
    stop: threading.Event, read_table: Callable[[], dict[Any, dict[str, Any]]],
    timeout: float = 120.0, *, prepare: Callable[[Any], None] | None = None,
) -> list[RowEvent]:
    """Run ``pipeline`` of ``config`` (its sink the memory channel ``channel_name``) in a
    thread while the ``writers`` run, until its snapshot is done; then set ``stop``, wait
    for the writers, and until the sink holds what ``read_table`` reads (the stream
    catching up with the last commits) or ``timeout``. Returns the sink's events.
    ``prepare`` gets the loaded pipeline before it runs (to rewire its source)."""
    from ..builtin.memory import channel
    from ..pipeline import load_pipeline
    from ..runner import Runner

    loaded = load_pipeline(pipeline, config)
    if prepare is not None:
        prepare(loaded)
    runner = Runner(loaded)
    thread = threading.Thread(target=runner.run)
    thread.start()
    try:
        for writer in writers:
            writer.start()
        deadline = time.monotonic() + timeout
        while runner.snapshots is None or runner.snapshots.busy or not runner.snapshots.done:
            assert time.monotonic() < deadline and thread.is_alive(), (
                f"snapshot unfinished: {runner.snapshots and runner.snapshots.state()}")
            time.sleep(0.1)
    finally:
        stop.set()
        for writer in writers:
            if writer.is_alive() or writer.ident is not None:
                writer.join(10)
    try:
        table = read_table()
        deadline = time.monotonic() + timeout
        while table_state(channel(channel_name).events) != table and time.monotonic() < deadline:
            time.sleep(0.2)  # the stream catches up with the writers' last commits
    finally:
        runner.stop()
        thread.join(30)
    return list(channel(channel_name).events)
