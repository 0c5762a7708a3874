"""Target tables whose names hold dots or non-ASCII letters, on real PostgreSQL and
MariaDB: found under their own name and through an explicit (quoted) mapping, and names a
server cannot hold reported by ``check`` and in the dead letter."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from meepo_sqlalchemy.sql_sink import SqlSink
from meepo_sqlalchemy.table_names import parse_table_name
from sqlalchemy import create_engine

from meepo_core.errors import ConfigError
from meepo_core.events import Batch, RowEvent
from meepo_core.options import Options
from meepo_core.testing import make_context, run_meepo, write_config

#: A dot, letters outside ASCII, and both.
NAMES = ["a.b", "größe", "заказы.архив"]


class Target:
    """A database of the ``dialect`` fixture with a table per name in :data:`NAMES`."""

    def __init__(self, url: str, dialect: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.quote = '"' if dialect == "postgresql" else "`"
        self.schema = "public" if dialect == "postgresql" else url.rsplit("/", 1)[1]
        with self.engine.begin() as conn:
            for name in NAMES:
                conn.exec_driver_sql(f"CREATE TABLE {self.quoted(name)} "
                                     f"(id INT PRIMARY KEY, {self.quoted('größe')} VARCHAR(20))")

    def quoted(self, name: str) -> str:
        return f"{self.quote}{name}{self.quote}"

    def rows(self, name: str) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(
                f"SELECT id, {self.quoted('größe')} FROM {self.quoted(name)} ORDER BY id")]


@pytest.fixture(params=["postgresql", "mariadb"])
def target(request: pytest.FixtureRequest) -> Target:
    url = request.getfixturevalue({"postgresql": "pg_url", "mariadb": "mariadb_url"}[
        request.param])
    made = Target(str(url), request.param)
    request.addfinalizer(made.engine.dispose)
    return made


def sink(url: str, tmp_path: Path, **options: Any) -> SqlSink:
    return SqlSink.from_options(Options({"type": "sql", "url": url, **options}, "sink",
                                        tmp_path))


def write(schema: str, table: str, pk: int, value: str) -> RowEvent:
    return RowEvent(schema, table, "write", pk, None, {"id": pk, "größe": value},
                    committed_at=datetime(2026, 1, 1, tzinfo=UTC))


def apply(replica: SqlSink, tmp_path: Path, *events: RowEvent) -> list[dict[str, Any]]:
    """Apply ``events`` in one batch; the dead letters written."""
    context = make_context(tmp_path)
    replica.open(context)
    try:
        replica.apply(Batch(events, 1))
    finally:
        replica.close()
        context.dead_letters.close()
    letters = tmp_path / "dead.jsonl"
    found = [json.loads(line) for line in letters.read_text().splitlines()] if (
        letters.exists()) else []
    letters.unlink(missing_ok=True)
    return found


def test_tables_named_with_dots_and_non_ascii_letters_under_their_own_name(
    target: Target, tmp_path: Path
) -> None:
    replica = sink(target.url, tmp_path)
    assert replica.check() == []
    letters = apply(replica, tmp_path, *(write(target.schema, name, i, f"v{i}-ü")
                                         for i, name in enumerate(NAMES)))
    assert letters == []
    assert [target.rows(name) for name in NAMES] == [[(i, f"v{i}-ü")]
                                                     for i in range(len(NAMES))]


@pytest.mark.parametrize("spelling", ['{schema}."{name}"', '"{name}"', "`{schema}`.`{name}`",
                                      "{schema}.{name}"])
def test_an_explicit_mapping_finds_a_dotted_name(
    target: Target, tmp_path: Path, spelling: str
) -> None:
    mapped = spelling.format(schema=target.schema, name="заказы.архив")
    replica = sink(target.url, tmp_path, tables={"shop.orders": mapped,
                                                 'shop."a.b"': {"columns": {"v": "größe"}}})
    assert replica.check() == []
    letters = apply(replica, tmp_path, write("shop", "orders", 1, "x"),
                    RowEvent("shop", "a.b", "write", 2, None, {"id": 2, "v": "y"},
                             committed_at=datetime(2026, 1, 1, tzinfo=UTC)))
    assert letters == []
    assert target.rows("заказы.архив") == [(1, "x")]
    assert target.rows("a.b") == [(2, "y")]


def test_check_and_dead_letters_name_what_cannot_exist(target: Target, tmp_path: Path) -> None:
    # PostgreSQL keeps 63 bytes of a name (this one has 70); MariaDB no emoji
    illegal = "ä" * 35 if target.quote == '"' else "orders_😀"
    missing = f'{target.schema}."x.y"'
    replica = sink(target.url, tmp_path, tables={"shop.orders": f'"{illegal}"',
                                                 "shop.gone": missing})
    problems = replica.check()
    assert len(problems) == 2, problems
    assert problems[0].startswith(f'tables."shop.orders": target table {illegal} cannot exist '
                                  "in ")
    assert problems[0].endswith("; map shop.orders to another name")
    assert ("PostgreSQL keeps only the first 63" in problems[0]
            if target.quote == '"' else "outside the Basic Multilingual Plane" in problems[0])
    assert problems[1].startswith(f"target table {missing} for shop.gone does not exist in ")
    letters = apply(replica, tmp_path, write("shop", "orders", 1, "x"),
                    write("shop", "gone", 2, "y"))
    assert [letter["event"]["pk"] for letter in letters] == [1, 2]
    assert letters[0]["error"].startswith(f"target table {illegal} cannot exist in ")
    assert f": '{illegal}': " in letters[0]["error"]
    assert f"target table {missing} does not exist" in letters[1]["error"]


def test_meepo_check_reports_an_illegal_target_in_one_line(pg_url: str, tmp_path: Path) -> None:
    long_name = "ä" * 35
    write_config(tmp_path, {"p": {
        "source": {"type": "memory"},
        "sinks": [{"type": "sql", "url": pg_url, "tables": {"shop.orders": long_name}}],
        "checkpoint": "none"}})
    result = run_meepo("check", "p", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f'meepo: sinks[0] sql: tables."shop.orders": target table {long_name} cannot exist in'
    ), lines
    assert lines[0].endswith("keeps only the first 63; map shop.orders to another name")


@pytest.mark.parametrize(("written", "error"), [
    ('public."a.b', "has an unterminated \" quote"),
    ('public."a"b', "has text after the closing \" quote"),
    ("s.a.", None),  # the table is "a." (dots after the first are the table's own)
    ('s."a".b', "has more parts than schema.table"),
    ("public.", "has an empty name"),
])
def test_a_target_that_cannot_be_read_is_a_config_error(
    tmp_path: Path, written: str, error: str | None
) -> None:
    if error is None:
        assert sink("sqlite://", tmp_path, tables={"t": written}).tables is not None
        return
    with pytest.raises(ConfigError) as raised:
        sink("sqlite://", tmp_path, tables={"t": written})
    assert str(raised.value).startswith(f"sink.tables.t: {written!r} {error}; write table or "
                                        'schema.table, quoting a name that contains a dot')


def test_parse_table_name() -> None:
    assert parse_table_name("orders") == (None, "orders")
    assert parse_table_name("public.a.b") == ("public", "a.b")
    assert parse_table_name('public."a.b"') == ("public", "a.b")
    assert parse_table_name('"a.b"') == (None, "a.b")
    assert parse_table_name("`s.x`.`t`") == ("s.x", "t")
    assert parse_table_name('"say ""hi"""') == (None, 'say "hi"')
    assert parse_table_name("größe.заказы") == ("größe", "заказы")
