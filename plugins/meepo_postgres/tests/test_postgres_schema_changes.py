"""Schema changes from Relation messages, against a real PostgreSQL: each placed before
the first row of the new shape, with the definitions around it."""

from __future__ import annotations

import itertools
import time
from typing import Any

from meepo_core import Batch, RowEvent, SchemaChange


def in_order(batches: list[Batch]) -> list[RowEvent | SchemaChange]:
    found: list[RowEvent | SchemaChange] = []
    for batch in batches:
        for part in batch.in_order():
            found.extend([part] if isinstance(part, SchemaChange) else part)
    return found


def shape(change: SchemaChange) -> list[tuple[str, str]]:
    assert change.after is not None
    return [(c.name, c.type) for c in change.after.columns]


def followed(follower: Any, rows: int) -> list[RowEvent | SchemaChange]:
    """The stream so far, in order, once ``rows`` row events arrived."""
    follower.wait_for(rows)
    return in_order(list(follower.batches))


def test_add_rename_drop_retype_each_come_before_the_first_row_of_the_new_shape(
    harness: Any, follow: Any,
) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY, a TEXT)")
    start = harness.begin()
    follower = follow(harness.source(), harness.context(), start)
    steps = [
        ("INSERT INTO t VALUES (1, 'x')",),
        ("ALTER TABLE t ADD COLUMN n INT NOT NULL DEFAULT 7", "INSERT INTO t VALUES (2, 'y')"),
        ("ALTER TABLE t RENAME COLUMN a TO b", "UPDATE t SET n = 8 WHERE id = 1"),
        ("ALTER TABLE t DROP COLUMN n", "ALTER TABLE t ADD COLUMN m INT",
         "UPDATE t SET m = 1 WHERE id = 2"),
        ("ALTER TABLE t ALTER COLUMN b TYPE VARCHAR(10)", "INSERT INTO t VALUES (3, 'z', 2)"),
        ("INSERT INTO t VALUES (4, 'w', 3)",),  # same shape: no change before it
    ]
    for count, statements in enumerate(steps, 1):
        harness.execute(*statements)
        found = followed(follower, count)
    follower.stop()
    kinds = [(p.kind if isinstance(p, SchemaChange) else p.action) for p in found]
    assert kinds == ["describe", "write", "alter", "write", "alter", "update", "alter",
                     "update", "alter", "write", "write"]
    changes = [p for p in found if isinstance(p, SchemaChange)]
    assert changes[0].before is None and shape(changes[0]) == [("id", "integer"), ("a", "text")]
    assert changes[0].after is not None and changes[0].after.key_columns == ("id",)
    added = changes[1]
    assert shape(added)[-1] == ("n", "integer") and added.before == changes[0].after
    n = added.after.column("n") if added.after is not None else None
    assert n is not None and not n.nullable and n.default == "7"
    assert changes[2].renamed_columns == (("a", "b"),)
    # a dropped column and an added one are not a rename
    assert changes[3].renamed_columns == () and shape(changes[3]) == [
        ("id", "integer"), ("b", "text"), ("m", "integer")]
    assert shape(changes[4])[1] == ("b", "character varying(10)")
    sequences = [p.sequence for p in found]
    assert sequences == sorted(sequences)  # a change shares the number of the row after it
    rows = [p.sequence for p in found if isinstance(p, RowEvent)]
    assert len(set(rows)) == len(rows)
    # each change comes right before a row of its shape
    for change, following in itertools.pairwise(found):
        if isinstance(change, SchemaChange):
            assert isinstance(following, RowEvent) and change.after is not None
            assert set(following.after or {}) == set(change.after.names)


def test_a_table_added_while_streaming_is_a_create_and_a_rename_a_rename(
    harness: Any, follow: Any,
) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    start = harness.begin()
    follower = follow(harness.source(), harness.context(), start)
    harness.execute("INSERT INTO t VALUES (1)")
    followed(follower, 1)
    # created after the source started (a FOR ALL TABLES publication has it at once)
    harness.execute(
        "CREATE TABLE fresh (id INT PRIMARY KEY, v TEXT)",
        f"ALTER PUBLICATION {harness.publication} ADD TABLE fresh",
        "INSERT INTO fresh VALUES (1, 'a')")
    followed(follower, 2)
    harness.execute("ALTER TABLE fresh RENAME TO fresher", "INSERT INTO fresher VALUES (2, 'b')")
    found = followed(follower, 3)
    follower.stop()
    changes = [(p.kind, p.table, p.renamed_from) for p in found if isinstance(p, SchemaChange)]
    assert changes == [("describe", "t", None), ("create", "fresh", None),
                       ("rename", "fresher", (harness.schema, "fresh"))]


def test_a_table_renamed_before_its_first_row_is_a_rename_not_a_new_table(
    harness: Any, follow: Any,
) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)",
                    "CREATE TABLE other (id INT PRIMARY KEY)")
    start = harness.begin()
    follower = follow(harness.source(), harness.context(), start)
    harness.execute("INSERT INTO other VALUES (1)")
    followed(follower, 1)  # streaming: the source knows t by its OID
    harness.execute("ALTER TABLE t RENAME TO t3")
    time.sleep(1.5)  # a heartbeat: the catalog poll sees t3 before any row of it
    harness.execute("INSERT INTO t3 VALUES (1)")
    found = followed(follower, 2)
    follower.stop()
    changes = [(p.kind, p.table, p.renamed_from) for p in found
               if isinstance(p, SchemaChange) and p.table != "other"]
    assert changes == [("rename", "t3", (harness.schema, "t"))]


def test_truncate_is_a_schema_change_in_its_place(harness: Any) -> None:
    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    start = harness.begin()
    harness.execute("INSERT INTO t VALUES (1)", "TRUNCATE t", "INSERT INTO t VALUES (2)")
    found = in_order(harness.batches(start))
    assert [(p.kind if isinstance(p, SchemaChange) else p.action) for p in found] == [
        "describe", "write", "truncate", "write"]


def test_a_new_matching_table_is_followed_and_its_rows_copied_with_snapshot_new_tables(
    harness: Any, tmp_path: Any,
) -> None:
    """Created (and filled) while the pipeline runs, under a publication meepo manages: it
    is added to the publication, announced by a ``create``, its existing rows copied by a
    snapshot (``read``) and its later rows streamed; the real CLI, checkpoints in a file."""
    from meepo_core.testing import RunningMeepo, write_config

    harness.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    out = tmp_path / "out.jsonl"
    write_config(tmp_path, {"fresh": {
        "source": harness.options(snapshot_new_tables=True),
        "sinks": [{"type": "jsonl", "path": str(out)}],
        "checkpoint": "file:.meepo/fresh.json", "batch_wait": 0.05,
    }})
    with RunningMeepo("run", "fresh", cwd=tmp_path) as meepo:
        meepo.wait(lambda: (tmp_path / ".meepo" / "fresh.json").exists(), "the first checkpoint")
        harness.execute("CREATE TABLE fresh (id INT PRIMARY KEY, v TEXT)",
                        "INSERT INTO fresh SELECT g, 'v' || g FROM generate_series(1, 3) g")
        meepo.wait(lambda: len([x for x in meepo.lines() if x["table"] == "fresh"]) >= 4,
                   "the create and the three copied rows")
        harness.execute("INSERT INTO fresh VALUES (4, 'streamed')")
        meepo.wait(lambda: any(x.get("pk") == 4 for x in meepo.lines()),
                   "the streamed row")
    fresh = [x for x in meepo.lines() if x["table"] == "fresh"]
    assert fresh[0]["action"] == "schema" and fresh[0]["kind"] == "create"
    assert [c["name"] for c in fresh[0]["after"]["columns"]] == ["id", "v"]
    assert fresh[0]["after"]["key_columns"] == ["id"]
    copied = sorted((x["pk"], x["after"]["v"]) for x in fresh if x["action"] == "read")
    assert copied == [(1, "v1"), (2, "v2"), (3, "v3")]
    assert [(x["action"], x["pk"]) for x in fresh if x["action"] == "write"] == [("write", 4)]
    published = harness.query("SELECT tablename FROM pg_publication_tables WHERE pubname = %s",
                              harness.publication)
    assert ("fresh",) in published


def test_a_rename_is_told_by_column_number_or_else_by_place_and_type() -> None:
    from meepo_postgres.schema_tracking import renamed_columns

    from meepo_core import ColumnDefinition, TableDefinition

    def table(*names: str) -> TableDefinition:
        return TableDefinition(tuple(ColumnDefinition(n, "integer") for n in names), ("id",))

    before, after = table("id", "a", "b"), table("id", "x", "b")
    # the same number: a rename; a new number: a drop and an add
    assert renamed_columns(before, after, {"id": 1, "a": 2, "b": 3},
                           {"id": 1, "x": 2, "b": 3}) == (("a", "x"),)
    assert renamed_columns(before, table("id", "b", "x"), {"id": 1, "a": 2, "b": 3},
                           {"id": 1, "b": 3, "x": 4}) == ()
    # the catalog moved past the old name: same place, same type, as many columns
    assert renamed_columns(before, after, {"id": 1, "b": 3}, {"id": 1, "x": 2, "b": 3}) == (
        ("a", "x"),)
    retyped = TableDefinition((ColumnDefinition("id", "integer"), ColumnDefinition("x", "text"),
                               ColumnDefinition("b", "integer")), ("id",))
    assert renamed_columns(before, retyped, {"id": 1, "b": 3}, {"id": 1, "b": 3}) == ()
