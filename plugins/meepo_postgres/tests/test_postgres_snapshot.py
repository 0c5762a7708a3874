"""Snapshots through the postgres source: copied rows equal what the stream delivers for the
same rows (every type), watermarks travel as logical decoding messages, and a snapshot
taken while writers keep changing the table ends equal to the table."""

from __future__ import annotations

import dataclasses
import json
import random
import threading
import time
from pathlib import Path
from typing import Any

from meepo_core import RowEvent, load_pipeline
from meepo_core.builtin.memory import channel
from meepo_core.testing import run_meepo, write_config

from .test_postgres_types import EDGE_ROW, OUTSIDE_ROW, TYPES, comparable


def test_a_copied_row_equals_the_streamed_row_for_every_type(harness: Any) -> None:
    harness.execute(*TYPES)
    start = harness.begin()
    harness.execute(EDGE_ROW, OUTSIDE_ROW)
    streamed, _ = harness.drain(start)
    source = harness.source()
    try:
        (table,) = source.snapshot_tables([f"{harness.schema}.types"])
        assert table.key == ("id",)
        copied = source.read_chunk(table, None, 10)
        assert [(e.action, e.pk) for e in copied] == [("read", 1), ("read", 2)]
        for stream_event, copy in zip(streamed, copied, strict=True):
            assert copy.pk_columns == stream_event.pk_columns
            assert {k: comparable(v) for k, v in (copy.after or {}).items()} == {
                k: comparable(v) for k, v in (stream_event.after or {}).items()
            }
        assert [e.pk for e in source.read_chunk(table, (1,), 10)] == [2]
        assert [e.pk for e in source.read_chunk(table, None, 10, {"nul": None, "i2": -32768})
                ] == [1]
        assert source.last_key(table) == (2,)
        assert source.last_key(table, {"nul": None, "i2": -32768}) == (1,)
        assert [e.pk for e in source.read_chunk(table, None, 10, None, (1,))] == [1]
    finally:
        source.close()


def test_initial_snapshot_through_meepo_run(harness: Any, tmp_path: Path) -> None:
    harness.execute("CREATE TABLE items (id int PRIMARY KEY, name text, secret text)",
                    "INSERT INTO items SELECT g, 'n' || g, 's' FROM generate_series(1, 50) g")
    options = harness.options(columns={f"{harness.schema}.items": {"exclude": ["secret"]}})
    write_config(tmp_path, {"copy": {
        "source": options, "sinks": [{"type": "jsonl", "path": "out.jsonl"}],
        "snapshot": "initial_only", "snapshot_chunk_size": 8,
    }})
    done = run_meepo("run", "copy", cwd=tmp_path)  # initial_only ends by itself
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(lines) == 50 and all('"action":"read"' in line for line in lines)
    assert '"secret"' not in "".join(lines)
    assert "initial snapshot done" in done.stderr


def replay(events: list[RowEvent]) -> dict[Any, dict[str, Any]]:
    """The table a sink holds after applying ``events`` (reads and writes as upserts)."""
    state: dict[Any, dict[str, Any]] = {}
    for event in events:
        if event.action == "delete":
            state.pop(event.pk, None)
            continue
        if event.action == "update" and event.before is not None:
            state.pop(event.before["id"], None)
        assert event.after is not None
        state[event.pk] = dict(event.after)
    return state


def test_snapshot_while_writers_change_the_table_ends_equal(harness: Any, tmp_path: Path) -> None:
    harness.execute("CREATE TABLE items (id int PRIMARY KEY, n int)",
                    "INSERT INTO items SELECT g, 0 FROM generate_series(1, 300) g")
    config = write_config(tmp_path, {"live": {
        "source": harness.options(), "sinks": [{"type": "memory", "name": "out"}],
        "snapshot_chunk_size": 16, "batch_wait": 0.01, "checkpoint": "none",
    }})
    pipeline = load_pipeline("live", config)
    stop = threading.Event()

    def write(seed: int) -> None:
        rng = random.Random(seed)
        with harness.server.connect(autocommit=True) as conn:
            conn.execute(f"SET search_path = {harness.schema}")
            while not stop.is_set():
                key = rng.randint(1, 320)
                roll = rng.random()
                if roll < 0.5:
                    conn.execute("UPDATE items SET n = n + 1 WHERE id = %s", (key,))
                elif roll < 0.75:
                    conn.execute("DELETE FROM items WHERE id = %s", (key,))
                else:
                    conn.execute("INSERT INTO items VALUES (%s, 1) ON CONFLICT DO NOTHING",
                                 (key,))
                time.sleep(0.002)

    writers = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    from meepo_core.runner import Runner

    runner = Runner(dataclasses.replace(pipeline))
    thread = threading.Thread(target=runner.run, kwargs={"snapshot": []})
    thread.start()
    try:
        for writer in writers:
            writer.start()
        deadline = time.monotonic() + 120
        while runner.snapshots is None or runner.snapshots.busy or not runner.snapshots.done:
            assert time.monotonic() < deadline and thread.is_alive(), "snapshot unfinished"
            time.sleep(0.1)
    finally:
        stop.set()
        for writer in writers:
            writer.join(10)
    table = {row[0]: {"id": row[0], "n": row[1]} for row in harness.query(
        "SELECT id, n FROM items")}
    deadline = time.monotonic() + 60
    while replay(channel("out").events) != table and time.monotonic() < deadline:
        time.sleep(0.2)  # the stream catches up with the writers' last commits
    runner.stop()
    thread.join(30)
    events = channel("out").events
    assert any(e.action == "read" for e in events) and any(e.action != "read" for e in events)
    assert replay(events) == table


def test_a_late_stream_never_loses_rows_and_never_blames_a_signal_table(
    harness: Any, tmp_path: Path
) -> None:
    """Every new connection to the server waits 1.5 s (a pausing proxy), so the stream
    fixes its start position late. The core asks ``snapshot_ready`` before each chunk and
    waits for it, so the first run copies every row, and nothing blames a signal table
    (this source has none). Before that wait, the first chunk's watermarks were written
    before the stream's start and never came back."""
    from meepo_testkit.proxy import TcpProxy

    harness.execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)",
                    "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 20) g")
    with TcpProxy(harness.server.host, harness.server.port) as proxy:
        proxy.delay_connect = 1.5
        slow = harness.server.url.replace(f":{harness.server.port}/", f":{proxy.port}/")
        config = {"source": harness.options(dsn=slow), "snapshot": "initial",
                  "snapshot_chunk_size": 8,
                  "sinks": [{"type": "jsonl", "path": "out.jsonl"}]}
        write_config(tmp_path, {"late": config})
        first = run_meepo("run", "late", "--once", cwd=tmp_path, timeout=120)
    assert "signal table" not in first.stderr
    assert first.returncode == 0, first.stderr[-2000:]
    copied = {line["pk"] for line in map(json.loads,
                                         (tmp_path / "out.jsonl").read_text().splitlines())}
    assert copied == set(range(1, 21))


def test_a_chunk_keeps_json_nested_too_deep_as_its_text(harness: Any, caplog: Any) -> None:
    """A snapshot chunk has no dead-letter store: a json value nested 5,000 levels is copied
    as its text, with a warning naming the table, column and key; the chunk goes on."""
    deep = "[" * 5000 + "]" * 5000
    harness.execute("CREATE TABLE docs (id INT PRIMARY KEY, doc JSON)",
                    "INSERT INTO docs VALUES (1, '[1]')",
                    f"INSERT INTO docs VALUES (2, '{deep}')", "INSERT INTO docs VALUES (3, '[3]')")
    source = harness.source()
    try:
        (table,) = source.snapshot_tables([f"{harness.schema}.docs"])
        with caplog.at_level("WARNING", logger="meepo.postgres"):
            copied = source.read_chunk(table, None, 10)
    finally:
        source.close()
    assert [(e.pk, (e.after or {})["doc"]) for e in copied] == [(1, [1]), (2, deep), (3, [3])]
    [warning] = [r.getMessage() for r in caplog.records if "copied as its text" in r.getMessage()]
    assert warning.startswith(f"snapshot of {harness.schema}.docs: column doc of the row ['2']: "
                              "JSON nested deeper than Python can decode")
