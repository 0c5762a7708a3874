"""Positions, checkpoints and resuming: transaction boundaries, big transactions, DDL,
rotation, purged binlogs and GTID starts."""

from __future__ import annotations

import contextlib
import gc
import time
import tracemalloc
from typing import Any

import pytest

from meepo_core import SourceError


def _keys(events: list[Any]) -> list[tuple[str, str, Any]]:
    return [(e.table, e.action, e.pk) for e in events]


def test_positions_fall_only_on_transaction_boundaries(harness: Any) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    start = harness.end()
    for n in range(5):
        harness.transaction(*(f"INSERT INTO t VALUES ({n * 10 + i}, 0)" for i in range(3)))
    batches = harness.batches(None, start=start, batch_size=2)
    assert batches[0].events != ()  # a fixed start is not checkpointed before a delivery
    for batch in batches:
        assert len(batch) <= 2
        if batch.position is not None:
            # A position is only ever given after a whole transaction: every transaction
            # seen so far is complete (3 rows each).
            seen = [e for b in batches[: batches.index(batch) + 1] for e in b.events]
            assert len(seen) % 3 == 0
    # Resuming from every position delivers exactly the rest.
    everything = [e for b in batches for e in b.events]
    delivered = 0
    for batch in batches:
        delivered += len(batch)
        if batch.position is not None:
            rest, _ = harness.drain(batch.position, start=start)
            assert _keys(rest) == _keys(everything[delivered:])


def test_big_transaction_streams_in_bounded_batches_and_checkpoints_once(harness: Any) -> None:
    rows = 20_000
    harness.execute(
        "CREATE TABLE big (id INT PRIMARY KEY, name VARCHAR(40), price DECIMAL(10,2), "
        "note VARCHAR(100))",
        "INSERT INTO big SELECT seq, CONCAT('name ', seq), seq / 7, REPEAT('n', 80) "
        f"FROM seq_1_to_{rows}",
    )
    harness.execute("INSERT INTO big VALUES (0, 'before', 0, '')")
    start = harness.end()
    harness.execute("UPDATE big SET price = price + 1 WHERE id > 0")  # one 20,000-row transaction
    harness.execute("UPDATE big SET name = 'after' WHERE id = 0")

    def stream(keep: bool) -> tuple[list[Any], int]:
        kept: list[Any] = []
        shapes = []
        source = harness.source(start=start)
        gc.collect()
        tracemalloc.start()
        try:
            for batch in source.stream(None, harness.context(batch_size=500), once=True):
                shapes.append((len(batch), batch.position is not None))
                if keep:
                    kept.append(batch)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            source.close()
        return (kept if keep else shapes), peak

    shapes, streaming_peak = stream(keep=False)
    first_position = next(i for i, (_, has) in enumerate(shapes) if has)
    # Many position-less batches of at most batch_size events, and the first position
    # only once all 20,000 rows of the transaction were delivered.
    assert first_position >= 39
    assert all(size == 500 and not has for size, has in shapes[:first_position])
    assert sum(size for size, _ in shapes[: first_position + 1]) >= rows
    assert sum(size for size, _ in shapes) == rows + 1
    assert shapes[-1][1]
    kept, holding_peak = stream(keep=True)
    assert sum(len(b) for b in kept) == rows + 1
    # Streaming holds about one batch at a time; holding every event needs far more.
    assert streaming_peak * 5 < holding_peak, (streaming_peak, holding_peak)


def test_ddl_mid_stream_events_carry_the_names_of_their_time(harness: Any) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY, a INT, b INT)")
    start = harness.end()
    harness.execute(
        "INSERT INTO t VALUES (1, 10, 20)",
        "ALTER TABLE t ADD COLUMN c VARCHAR(5) DEFAULT 'x'",
        "INSERT INTO t VALUES (2, 11, 21, 'y')",
        "ALTER TABLE t DROP COLUMN a",
        "UPDATE t SET b = 22 WHERE id = 2",
        "ALTER TABLE t RENAME COLUMN b TO bee",
        "DELETE FROM t WHERE id = 1",
    )
    # Read only after every DDL ran: names come from each event's own table map.
    events, _ = harness.drain(None, start=start)
    assert [(e.action, e.after if e.after is not None else e.before) for e in events] == [
        ("write", {"id": 1, "a": 10, "b": 20}),
        ("write", {"id": 2, "a": 11, "b": 21, "c": "y"}),
        ("update", {"id": 2, "b": 22, "c": "y"}),
        ("delete", {"id": 1, "bee": 20, "c": "x"}),
    ]
    assert events[2].before == {"id": 2, "b": 21, "c": "y"}


def test_rotation_mid_stream_is_followed(harness: Any, follow: Any) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    start = harness.end()
    follower = follow(harness.source(start=start), harness.context(), None)
    harness.execute("INSERT INTO t VALUES (1)")
    follower.wait_for(1)
    first_file = follower.position["file"]
    harness.execute("FLUSH BINARY LOGS")
    # A quiet pipeline still moves its checkpoint into the new file.
    deadline = time.monotonic() + 10
    while follower.position["file"] == first_file and time.monotonic() < deadline:
        time.sleep(0.05)
    assert follower.position["file"] > first_file
    harness.execute("INSERT INTO t VALUES (2)", "FLUSH BINARY LOGS", "INSERT INTO t VALUES (3)")
    events = follower.wait_for(3)
    assert [e.pk for e in events] == [1, 2, 3]
    follower.stop()
    files = [e.sequence >> 32 for e in events]
    assert files[0] < files[1] < files[2]


def test_checkpoint_in_a_purged_binlog_says_how_to_recover(harness: Any) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    start = harness.end()
    harness.execute("INSERT INTO t VALUES (1)")
    _, position = harness.drain(None, start=start)
    harness.execute("FLUSH BINARY LOGS")
    harness.execute("INSERT INTO t VALUES (2)")
    harness.execute("FLUSH BINARY LOGS")
    newest = harness.server.execute("SHOW MASTER STATUS", database=None)[0][0]
    # The server keeps a binlog that a dump thread still reads; on the shared test server a
    # reader left by an earlier test could pin the old files, so end those threads first.
    deadline = time.monotonic() + 10
    while dumps := [r[0] for r in harness.server.execute("SHOW PROCESSLIST", database=None)
                    if r[4] == "Binlog Dump"]:
        assert time.monotonic() < deadline, f"dump threads {dumps} did not end"
        for thread in dumps:
            with contextlib.suppress(Exception):  # it may have ended already
                harness.server.execute(f"KILL {thread}", database=None)
        time.sleep(0.1)
    # MariaDB also keeps a binlog until InnoDB's binlog checkpoint has moved past it,
    # which happens in the background: retry the purge for a while.
    while True:
        harness.server.execute("FLUSH ENGINE LOGS", database=None)
        harness.server.execute(f"PURGE BINARY LOGS TO '{newest}'", database=None)
        remaining = [r[0] for r in harness.server.execute("SHOW BINARY LOGS", database=None)]
        if position["file"] not in remaining:
            break
        assert time.monotonic() < deadline + 20, "the checkpoint's binlog was not purged"
        time.sleep(0.2)
    with pytest.raises(SourceError) as caught:
        harness.drain(position, start=harness.start)
    message = str(caught.value)
    assert "purged" in message and position["file"] in message
    assert "delete the checkpoint" in message and "backfill" in message
    assert harness.source(start=harness.start).check_resume(position) == [message]
    assert "\n" not in message


def test_bad_checkpoint_is_reported(harness: Any) -> None:
    with pytest.raises(SourceError, match="checkpoint is not a mysql position"):
        harness.drain({"offset": 3})


def test_mariadb_gtid_start_and_resume(harness: Any) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)", "INSERT INTO t VALUES (1)")
    gtid = harness.gtid()
    harness.execute("INSERT INTO t VALUES (2)", "INSERT INTO t VALUES (3)")
    batches = harness.batches(None, start=gtid)
    events = [e for b in batches for e in b.events]
    assert [e.pk for e in events] == [2, 3]
    positions = [b.position for b in batches if b.position is not None]
    assert positions[0]["gtid"] != gtid  # a fixed start is not checkpointed by itself
    last = positions[-1]
    assert last["gtid"] == harness.gtid() and last["file"].startswith("binlog.")
    harness.execute("INSERT INTO t VALUES (4)")
    # In GTID mode the GTID decides where to resume, not file/pos (which may differ on
    # another server after a failover).
    moved = {**last, "file": "binlog.999999", "pos": 4}
    rest, after = harness.drain(moved, start=gtid)
    assert [e.pk for e in rest] == [4]
    assert after["gtid"] == harness.gtid()


def test_file_mode_positions_carry_the_mariadb_gtid(harness: Any) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    start = harness.end()
    harness.execute("INSERT INTO t VALUES (1)")
    _, position = harness.drain(None, start=start)
    assert position["gtid"] == harness.gtid()


def test_external_mysql_gtid_resume(external_mysql: Any, tmp_path: Any) -> None:
    """Oracle MySQL with gtid_mode=ON, through $MEEPO_TEST_MYSQL_DSN."""
    from meepo_mysql import MySQLSource

    from meepo_core import Options
    from meepo_core.testing import make_context

    db = f"meepo_gtid_{int(time.time())}"
    external_mysql.execute(f"CREATE DATABASE {db}")
    try:
        external_mysql.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY)")
        executed = str(external_mysql.execute("SELECT @@GLOBAL.gtid_executed")[0][0])
        executed = executed.replace("\n", "")
        external_mysql.execute(f"INSERT INTO {db}.t VALUES (1)")

        def drain(checkpoint: Any) -> tuple[list[Any], Any]:
            options = {"type": "mysql", "dsn": _dsn(external_mysql), "tables": [f"{db}.t"],
                       "start": executed, "heartbeat": 1}
            source = MySQLSource.from_options(Options(options, "source", tmp_path))
            events, position = [], checkpoint
            for batch in source.stream(checkpoint, make_context(tmp_path), once=True):
                events += batch.events
                position = batch.position or position
            return events, position

        events, position = drain(None)
        assert [e.pk for e in events] == [1]
        assert ":" in position["gtid"]
        external_mysql.execute(f"INSERT INTO {db}.t VALUES (2)")
        rest, _ = drain(position)
        assert [e.pk for e in rest] == [2]
    finally:
        external_mysql.execute(f"DROP DATABASE {db}")


def _dsn(server: Any) -> str:
    return f"mysql://{server.user}:{server.password}@{server.host}:{server.port}"
