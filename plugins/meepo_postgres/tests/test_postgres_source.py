"""The postgres source against a real PostgreSQL: contract, the original example, row
images, keys, filtering and event metadata."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from meepo_postgres import PostgresSource
from meepo_postgres.positions import parse_lsn

from meepo_core import Options
from meepo_core.testing import SourceContract, run_meepo, write_config


class TestPostgresSourceContract(SourceContract):
    @pytest.fixture(autouse=True)
    def _database(self, harness: Any) -> None:
        self.h = harness
        harness.execute("CREATE TABLE items (id SERIAL PRIMARY KEY, name TEXT)")

    def make_source(self) -> PostgresSource:
        return PostgresSource.from_options(Options(self.h.options(), "source", self.tmp_path))

    def produce(self, count: int) -> list[Any]:
        ids = []
        for _ in range(count):
            ids.append(self.h.query("INSERT INTO items (name) VALUES ('x') RETURNING id")[0][0])
        return ids


#: The original example, translated: PostgreSQL visits the rows of a multi-row UPDATE or
#: DELETE in heap order (an updated row moves to the end), MySQL's InnoDB in key order; so
#: ``id != 1`` is written ``id > 1`` (the same rows) and read through the primary key.
EXAMPLE_SQL = [
    "SET enable_seqscan = off",
    "INSERT INTO test (data) VALUES ('a')",
    "INSERT INTO test (data) VALUES ('b'), ('c'), ('d')",
    "UPDATE test SET data = 'aa' WHERE id = 1",
    "UPDATE test SET data = 'bb' WHERE id = 2",
    "UPDATE test SET data = 'cc' WHERE id > 1",
    "DELETE FROM test WHERE id > 1",
    "DELETE FROM test WHERE id = 1",
]
EXAMPLE_OUTPUT = """\
test_write 1
test_write 2
test_write 3
test_write 4
test_update 1
test_update 2
test_update 2
test_update 3
test_update 4
test_delete 2
test_delete 3
test_delete 4
test_delete 1
"""


def test_original_meepo_example_prints_exactly_13_lines(harness: Any, tmp_path: Path) -> None:
    harness.execute("CREATE TABLE test (id SERIAL PRIMARY KEY, data VARCHAR(10))")
    source = harness.options(start="slot")
    del source["heartbeat"]
    write_config(tmp_path, {"example": {"source": source, "sinks": [{"type": "print"}],
                                        "checkpoint": "none"}})
    first = run_meepo("run", "example", "--once", cwd=tmp_path)  # creates slot and publication
    assert first.returncode == 0, first.stderr
    assert first.stdout == ""
    harness.execute(*EXAMPLE_SQL)
    result = run_meepo("run", "example", "--once", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == EXAMPLE_OUTPUT


def test_events_carry_images_keys_and_metadata(harness: Any) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT, n INT)")
    start = harness.begin()
    before = datetime.now(UTC).replace(microsecond=0)
    harness.transaction("INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 2)",
                        "UPDATE t SET v = 'aa' WHERE id = 1")
    harness.execute("DELETE FROM t WHERE id = 2", "UPDATE t SET id = 3 WHERE id = 1")
    events, position = harness.drain(start, ack=False)  # unacknowledged: the slot keeps it
    assert [(e.action, e.pk) for e in events] == [
        ("write", 1), ("write", 2), ("update", 1), ("delete", 2), ("update", 3)
    ]
    write, _, update, delete, key_change = events
    assert write.before is None and write.after == {"id": 1, "v": "a", "n": 1}
    # REPLICA IDENTITY DEFAULT: the server sends only the key of the old row.
    assert update.before == {"id": 1} and update.after == {"id": 1, "v": "aa", "n": 1}
    assert delete.before == {"id": 2} and delete.after is None
    assert key_change.before == {"id": 1} and key_change.after == {"id": 3, "v": "aa", "n": 1}
    assert {e.pk_columns for e in events} == {("id",)}
    assert (write.schema, write.table, write.name) == (harness.schema, "t", "t_write")
    sequences = [e.sequence for e in events]
    assert sequences == sorted(set(sequences)) and all(0 < s < 2**63 for s in sequences)
    assert len({e.txid for e in events[:3]}) == 1 and len({e.txid for e in events}) == 3
    assert all(e.committed_at.tzinfo is UTC and e.committed_at >= before for e in events)
    assert all(set(e.position) == {"lsn"} for e in events)
    logged_at = [parse_lsn(e.position["lsn"]) for e in events[:3]]  # where each was logged
    assert logged_at == sorted(set(logged_at))
    assert position["sequence"] == sequences[-1]
    again, _ = harness.drain(start)
    assert [e.sequence for e in again] == sequences  # stable across re-delivery


def test_replica_identity_full_sends_whole_old_rows(harness: Any) -> None:
    harness.execute("CREATE TABLE f (id INT PRIMARY KEY, v TEXT)",
                    "ALTER TABLE f REPLICA IDENTITY FULL",
                    "CREATE TABLE nokey (a INT, b TEXT)",
                    "ALTER TABLE nokey REPLICA IDENTITY FULL")
    start = harness.begin()
    harness.execute("INSERT INTO f VALUES (1, 'x')", "UPDATE f SET v = 'y'", "DELETE FROM f",
                    "INSERT INTO nokey VALUES (1, 'p')", "UPDATE nokey SET b = 'q'",
                    "DELETE FROM nokey")
    events, _ = harness.drain(start)
    assert [(e.table, e.action, e.pk, e.before) for e in events] == [
        ("f", "write", 1, None),
        ("f", "update", 1, {"id": 1, "v": "x"}),
        ("f", "delete", 1, {"id": 1, "v": "y"}),
        # no primary key: the whole row keys the events
        ("nokey", "write", (1, "p"), None),
        ("nokey", "update", (1, "q"), {"a": 1, "b": "p"}),
        ("nokey", "delete", (1, "q"), {"a": 1, "b": "q"}),
    ]
    assert events[3].pk_columns == ("a", "b")


def test_composite_key_follows_key_order_not_column_order(harness: Any) -> None:
    harness.execute("CREATE TABLE k (a INT, b TEXT, c INT, PRIMARY KEY (b, a))")
    start = harness.begin()
    harness.execute("INSERT INTO k VALUES (1, 'x', 9)", "UPDATE k SET c = 10",
                    "DELETE FROM k")
    events, _ = harness.drain(start)
    assert [(e.action, e.pk) for e in events] == [
        ("write", ("x", 1)), ("update", ("x", 1)), ("delete", ("x", 1))
    ]
    assert {e.pk_columns for e in events} == {("b", "a")}
    assert events[2].before == {"a": 1, "b": "x"}


def test_tables_and_columns_filtered_out_never_reach_sinks(harness: Any) -> None:
    s = harness.schema
    harness.execute(
        "CREATE TABLE users (id INT PRIMARY KEY, name TEXT, password_hash TEXT, token TEXT)",
        "CREATE TABLE orders (id INT PRIMARY KEY, total INT)",
        "CREATE TABLE order_items (id INT PRIMARY KEY, qty INT)",
        "CREATE TABLE order_audit (id INT PRIMARY KEY, note TEXT)",
        "CREATE TABLE other (id INT PRIMARY KEY)",
    )
    options = {
        "tables": [f"{s}.users", f"{s}.order*"], "exclude_tables": [f"{s}.*_audit"],
        "columns": {f"{s}.users": {"exclude": ["password_hash"]},
                    f"{s}.user?": {"include": ["id", "name", "password_hash"]}},
    }
    start = harness.begin(**options)
    harness.transaction(
        "INSERT INTO users VALUES (1, 'ann', 'hash!', 'tok')",
        "INSERT INTO orders VALUES (1, 10)", "INSERT INTO order_items VALUES (1, 2)",
        "INSERT INTO order_audit VALUES (1, 'x')", "INSERT INTO other VALUES (1)",
    )
    harness.execute("UPDATE users SET password_hash = 'new!', name = 'anne'")
    events, _ = harness.drain(start, **options)
    assert [(e.table, e.action) for e in events] == [
        ("users", "write"), ("orders", "write"), ("order_items", "write"), ("users", "update"),
    ]
    assert events[0].after == {"id": 1, "name": "ann"}
    assert events[3].before == {"id": 1}
    assert events[3].after == {"id": 1, "name": "anne"}
    assert all("hash" not in repr(e) and "tok" not in repr(e) for e in events)
    published = harness.query(
        "SELECT tablename FROM pg_publication_tables WHERE pubname = %s ORDER BY 1",
        harness.publication,
    )
    assert [row[0] for row in published] == ["order_items", "orders", "users"]
