"""Stream behaviour against a real PostgreSQL: unchanged TOAST values, DDL mid-stream,
TRUNCATE, big transactions, idle progress and the slot's confirmed position."""

from __future__ import annotations

import time
from typing import Any

from meepo_postgres.positions import INDEX_BITS, parse_lsn, sequence_base

from meepo_core import UNCHANGED

BIG = "x" * 1_000_000  # stored out of line (TOAST), compressed or not


def test_unchanged_toast_value_is_marked_not_nulled(harness: Any) -> None:
    harness.execute(
        "CREATE TABLE docs (id INT PRIMARY KEY, title TEXT, body TEXT)",
        "ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL",  # no compression
        "CREATE TABLE full_docs (id INT PRIMARY KEY, title TEXT, body TEXT)",
        "ALTER TABLE full_docs ALTER COLUMN body SET STORAGE EXTERNAL",
        "ALTER TABLE full_docs REPLICA IDENTITY FULL",
    )
    start = harness.begin()
    harness.execute(
        f"INSERT INTO docs VALUES (1, 'a', '{BIG}')", "UPDATE docs SET title = 'b'",
        f"INSERT INTO full_docs VALUES (1, 'a', '{BIG}')", "UPDATE full_docs SET title = 'b'",
    )
    events, _ = harness.drain(start)
    assert [(e.table, e.action) for e in events] == [
        ("docs", "write"), ("docs", "update"), ("full_docs", "write"), ("full_docs", "update")
    ]
    assert events[0].after == {"id": 1, "title": "a", "body": BIG}
    # The server did not send the unchanged body: it is marked, not None.
    assert events[1].after == {"id": 1, "title": "b", "body": UNCHANGED}
    # With REPLICA IDENTITY FULL the old row is sent whole, so the body is filled from it.
    assert events[3].after == {"id": 1, "title": "b", "body": BIG}
    assert events[3].before == {"id": 1, "title": "a", "body": BIG}


def test_relation_changes_mid_stream_update_the_columns(harness: Any, follow: Any) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY, a TEXT)")
    start = harness.begin()
    follower = follow(harness.source(), harness.context(), start)
    harness.execute("INSERT INTO t VALUES (1, 'x')")
    follower.wait_for(1)
    harness.execute("ALTER TABLE t ADD COLUMN n INT DEFAULT 7", "INSERT INTO t VALUES (2, 'y')",
                    "ALTER TABLE t RENAME COLUMN a TO b", "UPDATE t SET n = 8 WHERE id = 1",
                    "ALTER TABLE t DROP COLUMN n", "ALTER TABLE t ALTER COLUMN b TYPE INT "
                    "USING length(b)", "INSERT INTO t VALUES (3, 5)")
    events = follower.wait_for(4)
    follower.stop()
    assert [e.after for e in events] == [
        {"id": 1, "a": "x"},
        {"id": 2, "a": "y", "n": 7},
        {"id": 1, "b": "x", "n": 8},
        {"id": 3, "b": 5},
    ]


def test_truncate_is_counted_and_logged(harness: Any, caplog: Any) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)", "CREATE TABLE u (id INT PRIMARY KEY)")
    start = harness.begin()
    harness.execute("INSERT INTO t VALUES (1)", "TRUNCATE t, u", "INSERT INTO t VALUES (2)")
    source = harness.source()
    context = harness.context()
    with caplog.at_level("WARNING", logger="meepo.postgres"):
        events = [e for b in source.stream(start, context, once=True) for e in b.events]
    source.close()
    assert [(e.action, e.pk) for e in events] == [("write", 1), ("write", 2)]
    assert context.metrics.failures[("source", "truncate_not_delivered")] == 2
    logged = [r.getMessage() for r in caplog.records if "TRUNCATE" in r.getMessage()]
    assert len(logged) == 2 and f"{harness.schema}.u" in logged[1]


def test_big_transaction_streams_in_positionless_batches(harness: Any) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    start = harness.begin()
    harness.execute("INSERT INTO t SELECT g, 0 FROM generate_series(1, 2500) g",
                    "INSERT INTO t VALUES (0, 0)")
    batches = harness.batches(start, batch_size=1000)
    sizes = [(len(b), b.position is not None) for b in batches]
    # the big one in position-less batches; its last 500 rows end with its commit (and may
    # share their batch with the small transaction that follows)
    assert sizes[:2] == [(1000, False), (1000, False)]
    assert all(has_position for _, has_position in sizes[2:])
    assert sum(size for size, _ in sizes) == 2501
    sequences = [e.sequence for b in batches for e in b.events]
    assert sequences == sorted(set(sequences))


def test_sequences_of_a_huge_transaction_are_the_same_when_resumed(harness: Any) -> None:
    """Past 65,536 rows a transaction runs beyond its own sequence range (see
    ``sequence_base``); numbering stays strictly increasing and the same on resume."""
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    start = harness.begin()
    harness.execute("INSERT INTO t SELECT generate_series(1, 70000)")
    _, big_end = harness.drain(start, ack=False)
    harness.execute("INSERT INTO t VALUES (0)")
    events, _ = harness.drain(start, ack=False)
    sequences = [e.sequence for e in events]
    assert len(sequences) == 70001 and sequences == sorted(set(sequences))
    resumed, _ = harness.drain(big_end)
    assert [e.sequence for e in resumed] == sequences[-1:]


def test_idle_pipeline_moves_the_slot_with_the_servers_wal(harness: Any, follow: Any) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)", "CREATE TABLE elsewhere (id INT)")
    start = harness.begin(tables=[f"{harness.schema}.t"])
    follower = follow(harness.source(tables=[f"{harness.schema}.t"]), harness.context(), start)
    harness.execute("INSERT INTO t VALUES (1)")
    follower.wait_for(1)
    first = parse_lsn(follower.position["lsn"])
    # WAL that holds nothing for this pipeline: the checkpoint still follows it.
    harness.execute("INSERT INTO elsewhere SELECT generate_series(1, 1000)")
    target = parse_lsn(harness.query("SELECT pg_current_wal_insert_lsn()::text")[0][0])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and parse_lsn(follower.position["lsn"]) < target - 100:
        time.sleep(0.2)
    position = parse_lsn(follower.position["lsn"])
    assert position > first and position >= target - 100
    # acknowledged, so the slot confirms it
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and parse_lsn(harness.confirmed_lsn()) < position:
        time.sleep(0.1)
    assert parse_lsn(harness.confirmed_lsn()) >= position
    follower.stop()


def test_slot_confirms_only_what_was_acknowledged(harness: Any) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    start = harness.begin()
    confirmed = parse_lsn(harness.confirmed_lsn())
    assert confirmed <= parse_lsn(start["lsn"])
    harness.execute("INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2)")
    events, position = harness.drain(start, ack=False)
    assert len(events) == 2
    assert parse_lsn(harness.confirmed_lsn()) == confirmed  # nothing acknowledged
    events, position = harness.drain(start)
    assert [e.pk for e in events] == [1, 2]
    assert parse_lsn(harness.confirmed_lsn()) >= parse_lsn(position["lsn"])


def test_sequence_base_continues_after_a_transaction_that_ran_past_its_range() -> None:
    first = sequence_base(0x1000, 0)
    assert first == (0x1000 >> 3) << INDEX_BITS
    # 2,000,000 rows: past the ranges of the next commits (8-byte steps of the commit LSN)
    last = first + 2_000_000 - 1
    assert sequence_base(0x1008, last) == last + 1
    assert sequence_base(0x100000, last) == (0x100000 >> 3) << INDEX_BITS


def test_truncate_warns_only_for_followed_tables(harness: Any, caplog: Any) -> None:
    """A publication for more tables than the pipeline follows (FOR ALL TABLES here): a
    TRUNCATE of the others is none of the pipeline's business."""
    s = harness.schema
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)", "CREATE TABLE u (id INT PRIMARY KEY)",
                    f'CREATE PUBLICATION "{harness.publication}" FOR ALL TABLES')
    start = harness.begin(tables=[f"{s}.t"])
    harness.execute("INSERT INTO u VALUES (1)", "TRUNCATE u", "TRUNCATE t, u",
                    "INSERT INTO t VALUES (2)")
    source = harness.source(tables=[f"{s}.t"])
    context = harness.context()
    with caplog.at_level("WARNING", logger="meepo.postgres"):
        events = [e for b in source.stream(start, context, once=True) for e in b.events]
    source.close()
    assert [(e.table, e.pk) for e in events] == [("t", 2)]
    assert context.metrics.failures[("source", "truncate_not_delivered")] == 1
    logged = [r.getMessage() for r in caplog.records if "TRUNCATE" in r.getMessage()]
    assert logged == [
        f"TRUNCATE of {s}.t removes rows without row events, so sinks keep them until a "
        "backfill (counted as truncate_not_delivered)"
    ]
