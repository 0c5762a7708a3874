"""Snapshots through the mysql source on the real MariaDB: a copied row equals the row the
stream delivers for it (every type and character set), chunks are consistent with the
binlog position where they are delivered, and bad input is one line."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from meepo_mysql import MySQLSource
from meepo_mysql.snapshot import MySQLSnapshots
from meepo_testkit.proxy import TcpProxy

from meepo_core import Options, RowEvent, load_pipeline
from meepo_core.builtin.memory import channel
from meepo_core.runner import Runner
from meepo_core.testing import StreamFollower, run_meepo, write_config

from .test_mysql_decoder import _charset_samples, _types_table


def copied(harness: Any, table: str, after: Any = None, where: Any = None) -> list[RowEvent]:
    source = harness.source()
    try:
        (found,) = source.snapshot_tables([f"{harness.db.name}.{table}"])
        return source.read_chunk(found, after, 10_000, where)
    finally:
        source.close()


def assert_copies_equal_the_stream(harness: Any, table: str, start: Any) -> int:
    streamed, _ = harness.drain(None, start=start)
    writes = {e.pk: e.after for e in streamed if e.action == "write" and e.table == table}
    copies = copied(harness, table)
    assert [e.action for e in copies] == ["read"] * len(copies)
    assert {e.pk: e.after for e in copies} == writes
    assert {e.pk_columns for e in copies} == {e.pk_columns for e in streamed if e.table == table}
    return len(copies)


def test_a_copied_row_equals_the_streamed_row_for_every_type(harness: Any) -> None:
    create, _, inserts = _types_table()
    harness.execute(create)
    start = harness.end()
    harness.execute("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'", *inserts)
    assert assert_copies_equal_the_stream(harness, "types", start) == len(inserts)


def test_a_copied_row_equals_the_streamed_row_in_every_character_set(harness: Any) -> None:
    rows = harness.server.execute("SELECT CHARACTER_SET_NAME, MAXLEN FROM "
                                  "information_schema.CHARACTER_SETS", database=None)
    with harness.db.connect(autocommit=True) as conn, conn.cursor() as cur:
        samples = {str(name): _charset_samples(cur, str(name), int(maxlen))
                   for name, maxlen in rows}
    samples = {name: values for name, values in samples.items() if values}
    ddl = ", ".join(f"c_{name} VARCHAR(700) CHARACTER SET {name}" for name in samples)
    harness.execute(f"CREATE TABLE cs (id INT PRIMARY KEY, {ddl}) DEFAULT CHARSET = latin1")
    start = harness.end()
    inserts = [f"INSERT INTO cs VALUES ({row + 1}, "
               f"{', '.join(v[row % len(v)] for v in samples.values())})" for row in range(3)]
    harness.execute("SET SESSION sql_mode = ''", *inserts,
                    "UPDATE cs SET c_latin1 = X'618162', c_ascii = X'61ff' WHERE id = 3")
    streamed, _ = harness.drain(None, start=start)
    final = {e.pk: e.after for e in streamed}  # writes, then the update of row 3
    copies = {e.pk: e.after for e in copied(harness, "cs")}
    assert copies == final
    assert copies[3]["c_ascii"] == "a\udcff"  # the unmappable byte, kept as the stream keeps it


def test_key_order_pages_and_column_filters(harness: Any) -> None:
    harness.execute("CREATE TABLE pairs (a VARCHAR(8), b INT, secret VARCHAR(8), n INT, "
                    "PRIMARY KEY (a, b))",
                    "INSERT INTO pairs VALUES " + ", ".join(
                        f"('{a}', {b}, 'pw', {b % 3 if b % 4 else 'NULL'})"
                        for a in ("y", "x") for b in range(6)))
    source = harness.source(columns={f"{harness.db.name}.pairs": {"exclude": ["secret"]}})
    try:
        (table,) = source.snapshot_tables([f"{harness.db.name}.pairs"])
        assert table.key == ("a", "b") and table.estimated_rows is not None
        first = source.read_chunk(table, None, 5)
        rest = source.read_chunk(table, tuple(first[-1].after[k] for k in ("a", "b")), 100)
        nulls = source.read_chunk(table, None, 100, {"n": None})
        ones = source.read_chunk(table, None, 100, {"n": 1, "a": "x"})
        last, last_one = source.last_key(table), source.last_key(table, {"n": 1, "a": "x"})
        upto = source.read_chunk(table, ("x", 3), 100, None, ("y", 1))
        assert source.last_key(table, {"n": 7}) is None
    finally:
        source.close()
    assert last == ("y", 5) and last_one == ("x", 1)
    assert [e.pk for e in upto] == [("x", 4), ("x", 5), ("y", 0), ("y", 1)]
    keys = [e.pk for e in first + rest]
    assert keys == sorted(keys) and len(keys) == 12 and keys[0] == ("x", 0)
    assert "secret" not in first[0].after and first[0].pk_columns == ("a", "b")
    assert [e.pk for e in nulls] == [("x", 0), ("x", 4), ("y", 0), ("y", 4)]
    assert [e.pk for e in ones] == [("x", 1)]


CHANGE_IN_WINDOW_PLUGIN = '''
"""A mysql source that commits a real change to the first row of each chunk right after
reading it (and placing its watermarks, both at the read's binlog position): the copy is
then already stale."""

import pymysql

from meepo_core import hookimpl
from meepo_mysql import MySQLSource


class ChangeInWindow(MySQLSource):
    def read_chunk_between(self, low, high, table, after, limit, where=None, until=None):
        rows = super().read_chunk_between(low, high, table, after, limit, where, until)
        if rows:
            conn = pymysql.connect(autocommit=True, **self.settings.connection_settings())
            with conn, conn.cursor() as cur:
                cur.execute(f"UPDATE `{table.schema}`.`{table.table}` SET name = %s "
                            "WHERE id = %s", (f"changed {rows[0].pk}", rows[0].pk))
        return rows


@hookimpl
def meepo_register_sources(register):
    register("mysql-change-in-window", ChangeInWindow)
'''


def test_a_change_committed_after_the_read_wins_over_the_copy(
    harness: Any, tmp_path: Path
) -> None:
    harness.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))",
                    "INSERT INTO items SELECT seq, CONCAT('n', seq) FROM seq_1_to_30")
    (tmp_path / "change_in_window.py").write_text(CHANGE_IN_WINDOW_PLUGIN)
    write_config(tmp_path, {"window": {
        "source": {**harness.options(), "type": "mysql-change-in-window",
                   "tables": [f"{harness.db.name}.items"]},
        "sinks": [{"type": "jsonl", "path": "out.jsonl"}],
        "snapshot": "initial", "snapshot_chunk_size": 7,
    }}, plugins=["change_in_window"])
    # The last chunk's change is committed after its read, so after its watermark: a
    # --once run may end before the stream reaches it, and the second run delivers it.
    for _ in range(2):
        done = run_meepo("run", "window", "--once", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    state: dict[int, Any] = {}
    for line in (tmp_path / "out.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["action"] != "schema":
            state[event["pk"]] = event["after"]["name"]  # reads and updates, in log order
    table = dict(harness.db.execute("SELECT id, name FROM items"))
    assert state == table
    assert sorted(k for k, v in state.items() if v.startswith("changed")) == [1, 8, 15, 22, 29]


def test_snapshot_bad_input(harness: Any, tmp_path: Path) -> None:
    harness.execute("CREATE TABLE keyed (id INT PRIMARY KEY)", "CREATE TABLE nokey (a INT)")
    source = {**harness.options(), "tables": [f"{harness.db.name}.keyed",
                                              f"{harness.db.name}.nokey"]}
    write_config(tmp_path, {"p": {"source": source, "sinks": [{"type": "print"}]}})
    outside = run_meepo("snapshot", "p", "--table", "other.t", cwd=tmp_path)
    assert outside.returncode == 2 and "--table: other.t is not among the pipeline's tables" \
        in outside.stderr
    nokey = run_meepo("snapshot", "p", "--table", f"{harness.db.name}.nokey", cwd=tmp_path)
    assert nokey.returncode == 1
    assert f"table {harness.db.name}.nokey has no primary key" in nokey.stderr
    assert len(nokey.stderr.strip().splitlines()) == 1
    assert not (tmp_path / ".meepo").exists()


@pytest.mark.parametrize("mode", ["initial_only"])
def test_initial_only_copies_then_exits(harness: Any, tmp_path: Path, mode: str) -> None:
    harness.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))",
                    "INSERT INTO items SELECT seq, CONCAT('n', seq) FROM seq_1_to_2500")
    write_config(tmp_path, {"copy": {
        "source": {**harness.options(), "tables": [f"{harness.db.name}.items"],
                   "start": "latest"},
        "sinks": [{"type": "jsonl", "path": "out.jsonl"}], "snapshot": mode,
    }})
    done = run_meepo("run", "copy", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(lines) == 2500 and "initial snapshot done" in done.stderr
    assert json.loads((tmp_path / ".meepo" / "copy.json").read_text())["snapshot"]["jobs"] == []


def replay(events: list[RowEvent]) -> dict[Any, dict[str, Any]]:
    """The table a sink holds after applying ``events`` in order (reads and writes as
    upserts)."""
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


def test_a_stream_that_starts_late_loses_no_change_to_the_snapshot(
    harness: Any, tmp_path: Path
) -> None:
    """The stream's connections go through a proxy that holds each new one 3 s, the
    snapshot's connect directly: the first chunks are ready long before the stream knows
    where it starts (``latest``), while writers keep updating rows. No chunk may be read
    before that position: the sink must end equal to the table."""
    harness.execute("CREATE TABLE items (id INT PRIMARY KEY, n INT)",
                    "INSERT INTO items SELECT seq, 0 FROM seq_1_to_2000")
    with TcpProxy(harness.server.host, harness.server.port) as proxy:
        proxy.delay_connect = 3.0
        server = harness.server
        slow = harness.options(dsn=f"mysql://{server.user}:{server.password}@127.0.0.1:"
                                   f"{proxy.port}",
                               tables=[f"{harness.db.name}.items"], start="latest")
        config = write_config(tmp_path, {"late": {
            "source": slow, "sinks": [{"type": "memory", "name": "late-stream"}],
            "snapshot": "initial", "snapshot_chunk_size": 250, "batch_wait": 0.01,
            "checkpoint": "none",
        }})
        pipeline = load_pipeline("late", config)
        source = pipeline.source
        assert isinstance(source, MySQLSource)
        # Only the stream is slow: the snapshot reader connects to the server directly.
        direct = MySQLSource.from_options(Options(harness.options(), "source", tmp_path))
        source.snapshots = MySQLSnapshots(direct.settings, source.rendezvous)
        stop = threading.Event()
        commits = [0]

        def write(seed: int) -> None:
            rng = random.Random(seed)
            with harness.db.connect(autocommit=True) as conn, conn.cursor() as cur:
                while not stop.is_set():
                    cur.execute("UPDATE items SET n = n + 1 WHERE id = %s",
                                (rng.randint(1, 2000),))
                    commits[0] += 1
                    time.sleep(0.001)

        writers = [threading.Thread(target=write, args=(i,)) for i in range(2)]
        runner = Runner(pipeline)
        thread = threading.Thread(target=runner.run)
        for writer in writers:
            writer.start()
        thread.start()
        try:
            deadline = time.monotonic() + 60
            while runner.snapshots is None or runner.snapshots.busy:
                assert time.monotonic() < deadline and thread.is_alive(), "snapshot unfinished"
                time.sleep(0.1)
        finally:
            stop.set()
            for writer in writers:
                writer.join(10)
        table = {row[0]: {"id": row[0], "n": row[1]}
                 for row in harness.db.execute("SELECT id, n FROM items")}
        events = channel("late-stream").events
        deadline = time.monotonic() + 30
        while replay(events) != table and time.monotonic() < deadline:
            time.sleep(0.2)  # the stream catches up with the writers' last commits
        runner.stop()
        thread.join(30)
    held = replay(events)
    stale = sorted(pk for pk, row in table.items() if held.get(pk) != row)
    assert commits[0] > 500
    assert stale == [], f"{len(stale)} of {len(table)} rows stale, e.g. {stale[:10]}"
    assert sum(e.action == "read" for e in events) == 2000


def test_a_filled_table_renamed_into_tables_is_created_and_copied(
    harness: Any, tmp_path: Path
) -> None:
    """``snapshot_new_tables``: a table filled outside ``tables`` and renamed into it while
    the pipeline runs is announced by a ``create`` schema change and its rows are copied
    (they never were in the stream); rows written after the rename stream as usual."""
    import subprocess
    import time

    from meepo_core.testing import meepo_command

    db = harness.db.name
    harness.execute("CREATE TABLE shop_items (id INT PRIMARY KEY)",
                    "CREATE TABLE staging (id INT PRIMARY KEY, name VARCHAR(20))",
                    "INSERT INTO staging SELECT seq, CONCAT('s', seq) FROM seq_1_to_5")
    write_config(tmp_path, {"fresh": {
        "source": harness.options(tables=[f"{db}.shop_*"], snapshot_new_tables=True),
        "sinks": [{"type": "jsonl", "path": "out.jsonl"}],
        "checkpoint": "file:.meepo/fresh.json", "batch_wait": 0.05,
    }})
    process = subprocess.Popen(meepo_command("run", "fresh"), cwd=tmp_path,
                               stderr=subprocess.PIPE)
    out = tmp_path / "out.jsonl"

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in out.read_text().splitlines()] \
            if out.exists() else []

    def wait(predicate: Any, what: str) -> None:
        deadline = time.monotonic() + 60
        while not predicate():
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {lines()}"
            time.sleep(0.2)

    try:
        wait(lambda: (tmp_path / ".meepo" / "fresh.json").exists(), "the first checkpoint")
        harness.execute("RENAME TABLE staging TO shop_new",
                        "INSERT INTO shop_new VALUES (6, 'n')")
        wait(lambda: len([x for x in lines() if x["table"] == "shop_new"]) >= 7,
             "the create, five copied rows and the streamed one")
    finally:
        process.terminate()
        process.wait(30)
    fresh = [x for x in lines() if x["table"] == "shop_new"]
    assert fresh[0]["action"] == "schema" and fresh[0]["kind"] == "create"
    assert fresh[0]["renamed_from"] == [db, "staging"]
    assert [c["name"] for c in fresh[0]["after"]["columns"]] == ["id", "name"]
    # the copy holds the five rows (and row 6 too when it read after its insert)
    assert {x["pk"] for x in fresh if x["action"] == "read"} >= {1, 2, 3, 4, 5}
    assert [x["pk"] for x in fresh if x["action"] == "write"] == [6]


def in_stream_order(batches: list[Any]) -> list[Any]:
    """Events and watermarks (as ``("mark", name)``) in the order the stream placed them."""
    order: list[Any] = []
    for batch in batches:
        done = 0
        for mark in batch.watermarks:
            order += [(e.action, e.pk) for e in batch.events[done:mark.index]]
            order.append(("mark", mark.mark))
            done = mark.index
        order += [(e.action, e.pk) for e in batch.events[done:]]
    return order


def test_a_chunk_and_a_lone_watermark_are_placed_in_the_stream_without_call_order(
    harness: Any,
) -> None:
    """Through a running stream: ``read_chunk_between`` places both marks at the binlog
    position of its read (after the rows it copied were written, before a change
    committed after it), and ``write_watermark`` alone comes back after every change
    committed before the call, whatever was called before it."""
    harness.execute("CREATE TABLE items (id INT PRIMARY KEY, n INT)",
                    "INSERT INTO items VALUES (1, 0), (2, 0)")
    source = harness.source()
    follower = StreamFollower(source, harness.context(), None)
    try:
        deadline = time.monotonic() + 30
        while not source.snapshot_ready():
            assert time.monotonic() < deadline and follower.error is None
            time.sleep(0.05)
        source.write_watermark("alone-1")  # a lone mark first: no window opens
        harness.execute("INSERT INTO items VALUES (3, 0)")
        (table,) = source.snapshot_tables([f"{harness.db.name}.items"])
        rows = source.read_chunk_between("low", "high", table, None, 10)
        harness.execute("UPDATE items SET n = 1 WHERE id = 1")
        source.write_watermark("alone-2")
        while ("mark", "alone-2") not in in_stream_order(list(follower.batches)):
            assert time.monotonic() < deadline and follower.error is None, follower.error
            time.sleep(0.05)
    finally:
        follower.stop()
    assert [(e.pk, e.after) for e in rows] == [(1, {"id": 1, "n": 0}), (2, {"id": 2, "n": 0}),
                                               (3, {"id": 3, "n": 0})]
    assert in_stream_order(follower.batches) == [
        ("write", 1), ("write", 2), ("mark", "alone-1"), ("write", 3), ("mark", "low"),
        ("mark", "high"), ("update", 1), ("mark", "alone-2")]
