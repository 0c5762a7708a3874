"""The sql sink follows schema changes: each kind against real PostgreSQL and MariaDB
targets (SQLite for what it can do), replays changing nothing, refusals dead-lettered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from meepo_sqlalchemy.sql_schema import parse_type, widens
from meepo_sqlalchemy.sql_sink import SqlSink
from sqlalchemy import create_engine, inspect, text

from meepo_core import (
    Batch,
    ColumnDefinition,
    Options,
    RowEvent,
    SchemaChange,
    SchemaChangeKind,
    TableDefinition,
)
from meepo_core.testing import make_context

C = ColumnDefinition


def table(*columns: ColumnDefinition, key: tuple[str, ...] = ("id",)) -> TableDefinition:
    return TableDefinition(columns, key)


ID = C("id", "integer", False)
V1 = table(ID, C("name", "varchar(20)"))
V2 = table(ID, C("name", "varchar(20)"), C("qty", "integer", False, "1"))
V3 = table(ID, C("title", "varchar(20)"), C("qty", "integer", False, "1"))
V4 = table(ID, C("title", "varchar(50)"), C("qty", "integer", False, "1"))
V5 = table(ID, C("title", "varchar(50)"))
NARROW = table(ID, C("title", "varchar(10)"))
NEW_KEY = table(ID, C("title", "varchar(50)"), key=("id", "title"))


class Script:
    """Batches on ``shop.orders``: each schema change followed by a row of its shape."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.sequence = 0

    def change(self, kind: SchemaChangeKind, before: TableDefinition | None,
               after: TableDefinition | None, *rows: RowEvent, **extra: Any) -> None:
        self.sequence += 1
        change = SchemaChange("shop", extra.pop("name", "orders"), kind, before, after,
                              sequence=self.sequence, position=self.sequence, **extra)
        self.batches.append(Batch(tuple(rows), self.sequence, schema_changes=((0, change),)))

    def row(self, pk: int, after: dict[str, Any], name: str = "orders") -> RowEvent:
        self.sequence += 1
        return RowEvent("shop", name, "write", pk, None, {"id": pk, **after},
                        sequence=self.sequence)


def columns(url: str, name: str = "orders") -> list[str]:
    engine = create_engine(url)
    try:
        return [c["name"] for c in inspect(engine).get_columns(name)]
    finally:
        engine.dispose()


def select(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def run(url: str, tmp_path: Path, batches: list[Batch], **options: Any) -> list[dict[str, Any]]:
    """Apply ``batches`` through a fresh sink; the dead letters so far."""
    sink = SqlSink.from_options(Options({"type": "sql", "url": url, **options}, "sink", tmp_path))
    context = make_context(tmp_path)
    sink.open(context)
    try:
        for batch in batches:
            sink.apply(batch)
    finally:
        sink.close()
        context.dead_letters.sync()
    path = tmp_path / "dead.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(params=["postgresql", "mariadb"])
def server_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue({"postgresql": "pg_url", "mariadb": "mariadb_url"}[
        request.param]))


def test_every_kind_of_change_reaches_the_target_and_replays_change_nothing(
    server_url: str, tmp_path: Path,
) -> None:
    s = Script()
    s.change("create", None, V1, s.row(1, {"name": "one"}))
    s.change("alter", V1, V2, s.row(2, {"name": "two", "qty": 5}))
    s.change("alter", V2, V3, s.row(3, {"title": "three", "qty": 6}),
             renamed_columns=(("name", "title"),))
    s.change("alter", V3, V4, s.row(4, {"title": "a title longer than twenty", "qty": 7}))
    s.change("alter", V4, V5, s.row(5, {"title": "five"}))
    assert run(server_url, tmp_path, s.batches) == []
    assert columns(server_url) == ["id", "title"]
    expected = [(1, "one"), (2, "two"), (3, "three"), (4, "a title longer than twenty"),
                (5, "five")]
    assert select(server_url, "SELECT id, title FROM orders ORDER BY id") == expected
    # a replay from the start (at-least-once) converges to the same table
    assert run(server_url, tmp_path, s.batches) == []
    assert columns(server_url) == ["id", "title"]
    assert select(server_url, "SELECT id, title FROM orders ORDER BY id") == expected

    later = Script()
    later.sequence = 100
    later.change("truncate", V5, V5, later.row(6, {"title": "six"}))
    later.change("rename", V5, V5, later.row(7, {"title": "seven"}, name="orders_v2"),
                 name="orders_v2", renamed_from=("shop", "orders"))
    assert run(server_url, tmp_path, later.batches) == []
    assert select(server_url, "SELECT id, title FROM orders_v2 ORDER BY id") == [
        (6, "six"), (7, "seven")]
    assert not inspect(create_engine(server_url)).has_table("orders")
    dropped = Script()
    dropped.sequence = 200
    dropped.change("drop", V5, None, name="orders_v2")
    assert run(server_url, tmp_path, dropped.batches) == []
    assert not inspect(create_engine(server_url)).has_table("orders_v2")


def test_added_not_null_column_gets_the_default_on_existing_rows(
    server_url: str, tmp_path: Path,
) -> None:
    s = Script()
    s.change("create", None, V1, s.row(1, {"name": "one"}))
    s.change("alter", V1, V2, s.row(2, {"name": "two", "qty": 5}))
    assert run(server_url, tmp_path, s.batches) == []
    assert select(server_url, "SELECT id, qty FROM orders ORDER BY id") == [(1, 1), (2, 5)]


def test_narrowing_and_a_new_key_are_refused_with_a_dead_letter_and_rows_go_on(
    server_url: str, tmp_path: Path,
) -> None:
    s = Script()
    s.change("create", None, V5, s.row(1, {"title": "one"}))
    s.change("alter", V5, NARROW, s.row(2, {"title": "two"}))
    s.change("alter", V5, NEW_KEY, s.row(3, {"title": "three"}))
    letters = run(server_url, tmp_path, s.batches)
    assert [letter["event"]["kind"] for letter in letters] == ["alter", "alter"]
    assert "does not hold every value" in letters[0]["error"]
    assert "by hand" in letters[0]["error"]
    assert "primary key (id, title)" in letters[1]["error"]
    assert select(server_url, "SELECT id, title FROM orders ORDER BY id") == [
        (1, "one"), (2, "two"), (3, "three")]
    assert columns(server_url) == ["id", "title"]


def test_a_table_without_a_key_is_not_created_and_drop_columns_false_keeps_them(
    sqlite_url: str, tmp_path: Path,
) -> None:
    s = Script()
    s.change("create", None, table(ID, key=()), name="keyless")
    s.change("create", None, V2, s.row(1, {"name": "one", "qty": 2}))
    s.change("alter", V2, V1, s.row(2, {"name": "two"}))
    letters = run(sqlite_url, tmp_path, s.batches, drop_columns=False)
    assert [letter["event"]["table"] for letter in letters] == ["keyless"]
    assert "no primary key" in letters[0]["error"]
    assert columns(sqlite_url) == ["id", "name", "qty"]
    assert select(sqlite_url, "SELECT id, name, qty FROM orders ORDER BY id") == [
        (1, "one", 2), (2, "two", 1)]


def test_schema_changes_ignore_leaves_tables_alone(sqlite_url: str, tmp_path: Path) -> None:
    s = Script()
    s.change("create", None, V1)
    assert run(sqlite_url, tmp_path, s.batches, schema_changes="ignore") == []
    assert not inspect(create_engine(sqlite_url)).has_table("orders")


@pytest.mark.parametrize(("old", "new", "wider"), [
    ("integer", "bigint", True), ("int(11)", "bigint(20)", True), ("bigint", "integer", False),
    ("varchar(20)", "varchar(50)", True), ("character varying(50)", "character varying(10)",
                                           False),
    ("varchar(20)", "text", True), ("text", "varchar(20)", False),
    ("numeric(10,2)", "numeric(12,2)", True), ("numeric(10,2)", "numeric(10,3)", False),
    ("integer", "numeric(12,0)", True), ("smallint", "integer", True),
    ("real", "double precision", True), ("double precision", "real", False),
    ("text", "integer", False), ("integer", "text", True),
])
def test_widening_is_told_from_narrowing(old: str, new: str, wider: bool) -> None:
    old_type, new_type = parse_type(old), parse_type(new)
    assert old_type is not None and new_type is not None
    assert widens(old_type, new_type) is wider
