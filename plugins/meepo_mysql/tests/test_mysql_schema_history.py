"""Events are decoded with the table definition in force when they were written, also when
the stream reads them after a DDL statement changed the table's name or shape: MariaDB's
JSON, UUID and INET6 columns (which the binlog calls LONGTEXT and BINARY) keep their types
across RENAME TABLE (chains and swaps too), ALTER TABLE ... RENAME, and DROP + CREATE of a
same-named table with another shape, for a pipeline that was stopped or behind."""

from __future__ import annotations

import json
from typing import Any

import pytest
from meepo_mysql.ddl import Effect, Unreadable, table_effects
from meepo_testkit.proxy import TcpProxy

DOCS = "(id INT PRIMARY KEY, j JSON, u UUID, a INET6, s VARCHAR(20))"


def docs_rows(harness: Any, first: int, count: int, table: str = "docs") -> None:
    harness.execute(*(
        f"INSERT INTO {table} (id, j, u, a, s) VALUES "
        f"({i}, '{{\"n\": {i}, \"tags\": [\"x\", {i}]}}', "
        f"'123e4567-e89b-12d3-a456-{i:012d}', '2001:db8::{i:x}', 's{i}')"
        for i in range(first, first + count)))


def selected(harness: Any, table: str) -> dict[int, dict[str, Any]]:
    """The rows as SELECT gives them, JSON parsed (the stream's form for JSON)."""
    rows = harness.db.execute(f"SELECT id, j, u, a, s FROM {table} ORDER BY id")
    return {int(i): {"id": i, "j": json.loads(j), "u": str(u), "a": str(a), "s": s}
            for i, j, u, a, s in rows if j is not None}


def written(events: list[Any], table: str) -> dict[Any, Any]:
    return {e.pk: e.after for e in events if e.table == table and e.action == "write"}


def checkpoint_after_first_row(harness: Any) -> Any:
    """A pipeline that ran once (after the table existed) and stopped: its checkpoint."""
    start = harness.end()
    docs_rows(harness, 1, 1)
    _, position = harness.drain(None, start=start)
    assert position is not None
    return position


def test_events_before_a_rename_keep_their_types_after_a_stop(harness: Any) -> None:
    harness.execute(f"CREATE TABLE docs {DOCS}")
    checkpoint = checkpoint_after_first_row(harness)
    docs_rows(harness, 2, 30)
    before = selected(harness, "docs")
    harness.execute("RENAME TABLE docs TO papers")
    docs_rows(harness, 100, 5, table="papers")
    after = selected(harness, "papers")
    events, _ = harness.drain(checkpoint)  # the stopped pipeline resumes
    assert written(events, "docs") == {k: v for k, v in before.items() if k >= 2}
    assert written(events, "papers") == {k: v for k, v in after.items() if k >= 100}


def test_drop_and_create_with_another_shape(harness: Any) -> None:
    harness.execute(f"CREATE TABLE docs {DOCS}")
    checkpoint = checkpoint_after_first_row(harness)
    docs_rows(harness, 2, 10)
    before = selected(harness, "docs")
    harness.execute(  # the same names, other kinds: JSON -> text, UUID/INET6 -> bytes
        "DROP TABLE docs",
        "CREATE TABLE docs (id INT PRIMARY KEY, j LONGTEXT, u BINARY(16), a BINARY(16), "
        "s JSON)",
        "INSERT INTO docs VALUES (50, '[1]', x'00112233445566778899aabbccddeeff', "
        "x'20010db8000000000000000000000001', '{\"k\": true}')")
    events, _ = harness.drain(checkpoint)
    old = written(events, "docs")
    assert {k: v for k, v in old.items() if k < 50} == {
        k: v for k, v in before.items() if k >= 2}
    assert old[50] == {"id": 50, "j": "[1]", "u": bytes.fromhex("00112233445566778899aabbccddeeff"),
                       "a": bytes.fromhex("20010db8000000000000000000000001"), "s": {"k": True}}


def test_swaps_chains_and_alter_rename_while_behind(harness: Any, follow: Any) -> None:
    """A running stream held back by a paused proxy (a pipeline that is behind) reads, after
    the server ran them: a swap of two tables whose same-named columns differ (JSON and
    UUID, text and bytes), a chain of renames and ALTER TABLEs that rename. Every event
    keeps the types of its time."""
    harness.execute(f"CREATE TABLE docs {DOCS}",
                    "CREATE TABLE plain (id INT PRIMARY KEY, j LONGTEXT, u BINARY(16), "
                    "a BINARY(16), s VARCHAR(20))", "CREATE TABLE marker (id INT PRIMARY KEY)")
    server = harness.server
    with TcpProxy(server.host, server.port) as proxy:
        dsn = f"mysql://{server.user}:{server.password}@127.0.0.1:{proxy.port}"
        follower = follow(harness.source(start=harness.end(), dsn=dsn), harness.context(),
                          None)
        harness.execute("INSERT INTO marker VALUES (1)")
        follower.wait_for(1)
        proxy.pause()  # the stream falls behind
        docs_rows(harness, 1, 2)
        harness.execute("INSERT INTO plain VALUES (1, '[2]', x'00', x'01', 'p')")
        typed = selected(harness, "docs")
        harness.execute(
            "RENAME TABLE docs TO tmp, plain TO docs, tmp TO plain",  # a swap
            "INSERT INTO docs VALUES (7, '[3]', x'02', x'03', 'q')",  # plain's shape now
            "/* a tool's comment */ RENAME TABLE plain TO a1, a1 TO a2",  # a chain
            "ALTER TABLE a2 RENAME TO a3",
            f"ALTER TABLE {harness.db.name}.a3 ADD COLUMN extra INT DEFAULT 5, RENAME AS a4",
        )
        docs_rows(harness, 10, 1, table="a4")
        harness.execute("ALTER TABLE a4 ADD COLUMN more JSON",
                        "INSERT INTO a4 (id, more) VALUES (11, '{\"m\": 1}')",
                        "RENAME TABLE a4 TO a5")
        proxy.resume()
        events = follower.wait_for(7)
    pad = b"\0" * 15
    assert [(e.table, e.after) for e in events if e.table != "marker"] == [
        ("docs", typed[1]), ("docs", typed[2]),
        ("plain", {"id": 1, "j": "[2]", "u": b"\0" + pad, "a": b"\x01" + pad, "s": "p"}),
        ("docs", {"id": 7, "j": "[3]", "u": b"\x02" + pad, "a": b"\x03" + pad, "s": "q"}),
        ("a4", {**selected(harness, "a5")[10], "extra": 5}),
        ("a4", {"id": 11, "j": None, "u": None, "a": None, "s": None, "extra": 5,
                "more": {"m": 1}}),
    ]


def test_the_checkpoint_carries_the_types_only_as_they_stand(harness: Any) -> None:
    harness.execute(f"CREATE TABLE docs {DOCS}")
    checkpoint = checkpoint_after_first_row(harness)
    assert checkpoint["types"] == {harness.db.name: {"docs": {
        "j": "json", "u": "uuid", "a": "inet6"}}}
    harness.execute("RENAME TABLE docs TO papers")
    docs_rows(harness, 5, 1, table="papers")
    _, later = harness.drain(checkpoint)
    assert later["types"] == {harness.db.name: {"papers": {
        "j": "json", "u": "uuid", "a": "inet6"}}}


@pytest.mark.parametrize(("statement", "effects"), [
    ("RENAME TABLE a TO tmp, `b` TO a, tmp TO `b`",
     [Effect("rename", "d", "a", ("d", "tmp")), Effect("rename", "d", "b", ("d", "a")),
      Effect("rename", "d", "tmp", ("d", "b"))]),
    ("RENAME TABLE IF EXISTS x.a WAIT 3 TO y.`we``ird`",
     [Effect("rename", "x", "a", ("y", "we`ird"))]),
    ("RENAME TABLE `-` TO `a.b`", [Effect("rename", "d", "-", ("d", "a.b"))]),
    ("ALTER TABLE a RENAME TO b", [Effect("rename", "d", "a", ("d", "b"))]),
    ("ALTER ONLINE TABLE a ADD c UUID, RENAME b",
     [Effect("alter", "d", "a", columns=(("set", "c", "uuid"),)),
      Effect("rename", "d", "a", ("d", "b"))]),
    ("ALTER TABLE a RENAME COLUMN c TO e, DROP COLUMN f, MODIFY g LONGTEXT "
     "CHECK (json_valid(`g`)), CHANGE h i INET6 NOT NULL, DROP CONSTRAINT j, ADD INDEX (k), "
     "ALTER COLUMN m SET DEFAULT 1, ENGINE = InnoDB",
     [Effect("alter", "d", "a", columns=(
         ("move", "c", "e"), ("drop", "f", ""), ("set", "g", "json"), ("move", "h", "i"),
         ("set", "i", "inet6"), ("unjson", "j", "")))]),
    ("ALTER TABLE a ADD (b INT, c JSON)", [Effect("changed", "d", "a")]),
    ("ALTER TABLE a ENGINE = InnoDB", []),
    ("DROP TABLE IF EXISTS `a`, x.b /* generated by server */",
     [Effect("drop", "d", "a"), Effect("drop", "x", "b")]),
    ("CREATE OR REPLACE TABLE a (j JSON, u UUID NOT NULL, x INT, t LONGTEXT CHECK "
     "(json_valid(t)), PRIMARY KEY (x), CONSTRAINT c CHECK (json_valid(x))) ENGINE=InnoDB",
     [Effect("define", "d", "a", columns=(
         ("set", "j", "json"), ("set", "u", "uuid"), ("set", "t", "json")))]),
    ("CREATE TABLE a (d DATETIME(3))", [Effect("changed", "d", "a")]),
    ("CREATE TABLE a SELECT 1 AS j", [Effect("changed", "d", "a")]),
    ("CREATE TABLE IF NOT EXISTS a LIKE x.b", [Effect("like", "d", "a", ("x", "b"))]),
    ("DROP DATABASE IF EXISTS x", [Effect("drop_schema", "x", "")]),
    ("CREATE INDEX i ON a (c)", None),
    ("DROP TEMPORARY TABLE a", None),
    ("RENAME USER u TO v", None),
])
def test_table_effects_of_ddl_statements(statement: str, effects: Any) -> None:
    assert table_effects(statement, "d") == effects


def test_a_statement_whose_names_cannot_be_read() -> None:
    assert isinstance(table_effects("RENAME TABLE a b", "d"), Unreadable)
    assert isinstance(table_effects("DROP TABLE a", ""), Unreadable)
    assert isinstance(table_effects("DROP TABLE 'a'", "d"), Unreadable)


def test_tables_created_while_stopped(harness: Any) -> None:
    """Tables created by CREATE ... SELECT (its rows in the same transaction) and CREATE
    ... LIKE after the checkpoint are known with their JSON and UUID columns."""
    harness.execute(f"CREATE TABLE docs {DOCS}")
    checkpoint = checkpoint_after_first_row(harness)
    harness.execute(
        "CREATE TABLE made (id INT PRIMARY KEY, j JSON, u UUID) "
        "SELECT 1 AS id, '[1]' AS j, '123e4567-e89b-12d3-a456-000000000001' AS u",
        "CREATE TABLE copy LIKE docs")
    docs_rows(harness, 3, 1, table="copy")
    expected = selected(harness, "copy")[3]
    harness.execute("RENAME TABLE copy TO copied")
    events, _ = harness.drain(checkpoint)
    assert [(e.table, e.after) for e in events] == [
        ("made", {"id": 1, "j": [1], "u": "123e4567-e89b-12d3-a456-000000000001"}),
        ("copy", expected),
    ]


def test_a_definition_that_cannot_be_known_is_said_aloud(harness: Any, caplog: Any) -> None:
    """ADD of several columns is not read from the statement: the server is asked when the
    stream meets the table, and if it is gone by then (renamed), that is a warning and a
    count, not a silent change of type."""
    harness.execute("CREATE TABLE late (id INT PRIMARY KEY)")
    start = harness.end()
    harness.execute("INSERT INTO late VALUES (0)")
    _, checkpoint = harness.drain(None, start=start)
    harness.execute("ALTER TABLE late ADD (x INT, y JSON)",
                    "INSERT INTO late VALUES (1, 1, '[1]')", "RENAME TABLE late TO later")
    with caplog.at_level("WARNING", logger="meepo.mysql"):
        events, _ = harness.drain(checkpoint)
    assert [e.after for e in events if e.table == "late"] == [{"id": 1, "x": 1, "y": "[1]"}]
    assert any("late no longer exists on the server" in r.getMessage() for r in caplog.records)
    assert harness.contexts[-1].metrics.failures[("source", "column_types_unknown")] == 1
