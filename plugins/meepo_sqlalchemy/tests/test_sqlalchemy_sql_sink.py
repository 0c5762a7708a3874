"""The sql sink: dialect upserts, deletes, mapping, one transaction per batch, replay."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import meepo_sqlalchemy
import pytest
from meepo_sqlalchemy.sql_sink import SqlSink
from meepo_sqlalchemy.urls import normalize_url
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    create_engine,
    select,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy_testkit import Product

from meepo_core import UNCHANGED
from meepo_core.events import Batch, RowEvent
from meepo_core.options import Options
from meepo_core.testing import (
    SinkContract,
    contract_row,
    make_context,
    run_meepo,
    write_config,
)


def items_table(metadata: MetaData, name: str = "items", version: bool = False) -> Table:
    columns = [
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("name", String(32)),
        Column("price", Numeric(10, 2)),
        Column("updated_at", DateTime(timezone=True)),
    ]
    if version:
        columns.append(Column("meepo_seq", Integer))
    return Table(name, metadata, *columns)


def rows(engine: Engine, table: str = "items") -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]


class SqlContract(SinkContract):
    sink_type = "sql"
    url_fixture = ""

    @pytest.fixture(autouse=True)
    def _database(self, request: pytest.FixtureRequest) -> Iterator[None]:
        self.url = str(request.getfixturevalue(self.url_fixture))
        self.engine = create_engine(self.url)
        yield
        self.engine.dispose()

    def sink_options(self) -> dict[str, Any]:
        return {"url": self.url}

    def prepare(self) -> None:
        metadata = MetaData()
        items_table(metadata)
        metadata.create_all(self.engine)

    def observable_state(self) -> Any:
        return [(r[0], r[1], Decimal(r[2])) for r in rows(self.engine)]

    def poison_batch(self) -> Batch:
        """A column the target lacks; where the database enforces lengths (not SQLite), a
        name too long for its VARCHAR(32) too."""
        events = [self.contract_event("write", 8, {**contract_row(8, "eight"), "colour": "red"})]
        if not self.url.startswith("sqlite"):
            events.append(self.contract_event("write", 9, contract_row(9, "x" * 100),
                                              sequence=101))
        return Batch(tuple(events), 6)

    def test_end_state_matches_the_events(self) -> None:
        self.prepare()
        self.apply_all(self.batches())
        assert self.observable_state() == [
            (1, "uno", Decimal("1.50")), (2, "deux", Decimal("2.50"))]


class TestSqlSinkSQLite(SqlContract):
    url_fixture = "sqlite_url"


class TestSqlSinkPostgres(SqlContract):
    url_fixture = "pg_url"


class TestSqlSinkMariaDB(SqlContract):
    url_fixture = "mariadb_url"


def build(url: str, tmp_path: Path, **options: Any) -> SqlSink:
    return SqlSink.from_options(Options({"type": "sql", "url": url, **options}, "sink", tmp_path))


def ev(action: Any, pk: int, before: Any = None, after: Any = None, seq: int | None = None,
       table: str = "items") -> RowEvent:
    return RowEvent("shop", table, action, pk, before, after, sequence=seq,
                    committed_at=datetime(2026, 1, 1, tzinfo=UTC))


def test_table_and_column_mapping(sqlite_url: str, tmp_path: Path) -> None:
    engine = create_engine(sqlite_url)
    metadata = MetaData()
    Table("replica", metadata, Column("item_id", Integer, primary_key=True),
          Column("title", String(32)))
    metadata.create_all(engine)
    sink = build(sqlite_url, tmp_path, tables={"shop.items": {
        "target": "replica", "columns": {"id": "item_id", "name": "title", "secret": False}}})
    sink.open(make_context(tmp_path))
    sink.apply(Batch((ev("write", 1, after={"id": 1, "name": "a", "secret": "s"}),
                      ev("write", 2, after={"id": 2, "name": "b", "secret": "s"}),
                      ev("write", 9, after={"id": 9}, table="not_mapped"),
                      ev("delete", 1, before={"id": 1, "name": "a", "secret": "s"})), 1))
    sink.close()
    assert rows(engine, "replica") == [(2, "b")]
    engine.dispose()


def test_a_route_transforms_destination_is_the_target_table(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = create_engine(sqlite_url)
    metadata = MetaData()
    items_table(metadata)
    items_table(metadata, "items_archive")
    metadata.create_all(engine)
    sink = build(sqlite_url, tmp_path)
    sink.open(make_context(tmp_path))
    routed = dataclasses.replace(ev("write", 1, after={"id": 1, "name": "a"}),
                                 destination="items_archive")
    sink.apply(Batch((routed, ev("write", 2, after={"id": 2, "name": "b"})), 1))
    sink.close()
    assert [r[:2] for r in rows(engine, "items_archive")] == [(1, "a")]
    assert [r[:2] for r in rows(engine, "items")] == [(2, "b")]
    engine.dispose()


def test_version_column_prevents_regressions(db_url: str, tmp_path: Path) -> None:
    engine = create_engine(db_url)
    metadata = MetaData()
    items_table(metadata, version=True)
    metadata.create_all(engine)
    sink = build(db_url, tmp_path, version_column="meepo_seq")
    sink.open(make_context(tmp_path))
    sink.apply(Batch((ev("write", 1, after={"id": 1, "name": "new"}, seq=5),), 1))
    sink.apply(Batch((ev("update", 1, after={"id": 1, "name": "old"}, seq=3),
                      ev("delete", 1, before={"id": 1}, seq=4)), 2))  # both older: ignored
    assert [(r[0], r[1], r[4]) for r in rows(engine)] == [(1, "new", 5)]
    sink.apply(Batch((ev("update", 1, after={"id": 1, "name": "newer"}, seq=6),), 3))
    assert [(r[0], r[1], r[4]) for r in rows(engine)] == [(1, "newer", 6)]
    sink.apply(Batch((ev("delete", 1, before={"id": 1}, seq=7),), 4))
    assert rows(engine) == []
    sink.close()
    engine.dispose()


def test_unappliable_event_is_dead_lettered_and_the_rest_commits(
        pg_url: str, tmp_path: Path) -> None:
    engine = create_engine(pg_url)
    metadata = MetaData()
    items_table(metadata)
    metadata.create_all(engine)
    sink = build(pg_url, tmp_path)
    context = make_context(tmp_path)
    sink.open(context)
    sink.apply(Batch((
        ev("write", 1, after={"id": 1, "name": "ok"}),
        ev("write", 2, after={"id": 2, "nope": "x"}),  # no such column
        ev("write", 3, after={"id": 3, "name": "x" * 100}),  # too long for varchar(32)
        ev("write", 4, after={"id": 4, "name": "ok"}),
        ev("write", 5, after={"id": 5}, table="missing_table"),
    ), 1))
    sink.close()
    context.dead_letters.close()
    assert [r[0] for r in rows(engine)] == [1, 4]
    letters = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert [letter["event"]["pk"] for letter in letters] == [2, 5, 3]
    assert "no column nope" in letters[0]["error"]
    assert "does not exist" in letters[1]["error"]
    engine.dispose()


BODY = "".join(chr(ord("a") + i % 26) for i in range(100_000))


class Docs:
    """A ``docs`` table (id, title, body; ``meepo_seq`` with ``version``) in the database at
    ``url`` and an open sql sink replicating ``shop.docs`` into it."""

    def __init__(self, url: str, tmp_path: Path, version: bool) -> None:
        self.engine = create_engine(url)
        metadata = MetaData()
        columns = [Column("id", Integer, primary_key=True, autoincrement=False),
                   Column("title", String(32)),
                   Column("body", Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb"))]
        if version:
            columns.append(Column("meepo_seq", Integer))
        Table("docs", metadata, *columns)
        metadata.create_all(self.engine)
        self.tmp_path = tmp_path
        self.context = make_context(tmp_path)
        self.url, self.version = url, version
        self.sink = self.restart()

    def restart(self) -> SqlSink:
        """A new sink, as a restarted process has (the old one is closed)."""
        if hasattr(self, "sink"):
            self.sink.close()
        options = {"version_column": "meepo_seq"} if self.version else {}
        self.sink = build(self.url, self.tmp_path, **options)
        self.sink.open(self.context)
        return self.sink

    def apply(self, *events: RowEvent) -> None:
        self.sink.apply(Batch(events, 1))

    def rows(self) -> list[tuple[Any, ...]]:
        return rows(self.engine, "docs")

    def dead_letters(self) -> list[dict[str, Any]]:
        self.context.dead_letters.sync()
        path = self.tmp_path / "dead.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def close(self) -> None:
        self.sink.close()
        self.engine.dispose()


@pytest.fixture
def docs(db_url: str, tmp_path: Path) -> Iterator[Callable[..., Docs]]:
    """``docs(version=False)`` opens a :class:`Docs` replica on every database."""
    opened: list[Docs] = []

    def open_docs(version: bool = False) -> Docs:
        opened.append(Docs(db_url, tmp_path, version))
        return opened[-1]

    yield open_docs
    for replica in opened:
        replica.close()


def doc(action: Any, pk: int, before: Any = None, after: Any = None,
        seq: int | None = None) -> RowEvent:
    return ev(action, pk, before, after, seq, table="docs")


def test_snapshot_rows_upsert_the_current_row(docs: Callable[..., Docs]) -> None:
    replica = docs()
    replica.apply(doc("write", 1, after={"id": 1, "title": "old", "body": "b"}))
    replica.apply(doc("read", 1, after={"id": 1, "title": "current", "body": "c"}),
                  doc("read", 2, after={"id": 2, "title": "two", "body": None}))
    assert replica.rows() == [(1, "current", "c"), (2, "two", None)]


def test_unchanged_values_keep_the_stored_column(docs: Callable[..., Docs]) -> None:
    replica = docs()
    write = doc("write", 1, after={"id": 1, "title": "first", "body": BODY})
    update = doc("update", 1, before={"id": 1},
                 after={"id": 1, "title": "second", "body": UNCHANGED})
    for _ in range(2):  # and a replay of both
        replica.apply(write)
        replica.apply(update)
        assert replica.rows() == [(1, "second", BODY)]
    assert replica.dead_letters() == []


def test_unchanged_values_follow_a_key_change(docs: Callable[..., Docs]) -> None:
    replica = docs()
    replica.apply(doc("write", 1, after={"id": 1, "title": "first", "body": BODY}))
    moved = doc("update", 5, before={"id": 1}, after={"id": 5, "title": "moved", "body": UNCHANGED})
    replica.apply(moved)
    replica.apply(moved)  # replayed: the row is already under its new key
    assert replica.rows() == [(5, "moved", BODY)]
    assert replica.dead_letters() == []


def test_unchanged_values_of_a_row_missing_in_the_target_are_dead_lettered(
        docs: Callable[..., Docs]) -> None:
    replica = docs()
    replica.apply(doc("update", 1, before={"id": 1},
                      after={"id": 1, "title": "second", "body": UNCHANGED}),
                  doc("write", 2, after={"id": 2, "title": "two", "body": "b"}))
    assert replica.rows() == [(2, "two", "b")]  # never inserted with a NULL body
    [letter] = replica.dead_letters()
    assert letter["event"]["pk"] == 1
    assert letter["error"].startswith("row 1 is not in target table docs, and the event lacks "
                                      "the value of body (unchanged, not sent by the source)")


def test_replayed_patch_of_a_row_deleted_later_is_skipped(docs: Callable[..., Docs]) -> None:
    """A crash after applying write, update, delete: the restart replays all three. The
    replayed update finds no row (the delete came first the first time); it was applied
    once already (the applied mark says so), so it is skipped and counted, not
    dead-lettered. An update above the mark whose row is missing is still a real gap."""
    replica = docs()
    events = [doc("write", 1, after={"id": 1, "title": "first", "body": BODY}, seq=10),
              doc("update", 1, before={"id": 1},
                  after={"id": 1, "title": "second", "body": UNCHANGED}, seq=11),
              doc("delete", 1, before={"id": 1}, seq=12)]
    for event in events:
        replica.apply(event)
    replica.restart()  # after a crash
    replica.apply(*events[1:])  # the replay, from the checkpoint
    assert replica.rows() == [] and replica.dead_letters() == []
    assert replica.context.metrics.failures[(replica.sink.label, "replayed_patch_row_gone")] == 1
    with replica.engine.connect() as conn:
        marks = [tuple(r) for r in conn.execute(text("SELECT * FROM meepo_sql_progress"))]
    assert [mark[1] for mark in marks] == [12] and marks[0][0].startswith("contract ")
    replica.apply(doc("update", 2, before={"id": 2},
                      after={"id": 2, "title": "gap", "body": UNCHANGED}, seq=13))
    assert [letter["event"]["pk"] for letter in replica.dead_letters()] == [2]


def test_without_create_privilege_the_sink_runs_without_the_applied_mark(
        pg_url: str, tmp_path: Path, caplog: Any) -> None:
    """A target user that cannot create meepo_sql_progress: one warning, and the sink
    applies as before (a replayed patch of a row deleted later is dead-lettered then)."""
    role = f"r_{tmp_path.name[-20:].lower().replace('-', '_')}"
    owner = create_engine(pg_url)
    with owner.begin() as conn:
        conn.execute(text("CREATE TABLE docs (id INT PRIMARY KEY, title TEXT, body TEXT)"))
        conn.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
        conn.execute(text(f"CREATE ROLE {role} LOGIN"))
        conn.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON docs TO {role}"))
    try:
        events = [doc("write", 1, after={"id": 1, "title": "first", "body": BODY}, seq=10),
                  doc("update", 1, before={"id": 1},
                      after={"id": 1, "title": "second", "body": UNCHANGED}, seq=11),
                  doc("delete", 1, before={"id": 1}, seq=12)]
        context = make_context(tmp_path)
        url = pg_url.replace("postgres@", f"{role}@")
        with caplog.at_level("WARNING", logger="meepo.sql"):
            for replay in (False, True):
                sink = build(url, tmp_path)
                sink.open(context)
                for event in events[1:] if replay else events:
                    sink.apply(Batch((event,), 1))
                sink.close()
        assert rows(owner, "docs") == []
        context.dead_letters.sync()
        letters = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
        assert [letter["event"]["pk"] for letter in letters] == [1]  # the replayed update
        warnings = [r.getMessage() for r in caplog.records if "applied mark" in r.getMessage()]
        assert len(warnings) == 2 and "grant CREATE" in warnings[0]  # once per sink
        with owner.connect() as conn:
            assert conn.scalar(text("SELECT to_regclass('meepo_sql_progress')")) is None
    finally:
        with owner.begin() as conn:
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE {role}"))
        owner.dispose()


def test_json_values_are_stored_or_dead_lettered_never_retried_for_ever(
        db_url: str, tmp_path: Path) -> None:
    """A JSON column gets 2, 30 and 400 levels (MariaDB's JSON, a LONGTEXT when reflected,
    gets the JSON text: a driver would render a list as a SQL tuple; its json_valid CHECK
    refuses more than 32 levels, a dead letter there) and 20,000 levels, which no JSON
    encoder writes: a dead letter; the rest of the batch commits."""
    def nested(depth: int) -> list[Any]:
        value: list[Any] = []
        for _ in range(depth - 1):
            value = [value]
        return value

    engine = create_engine(db_url)
    metadata = MetaData()
    Table("docs", metadata, Column("id", Integer, primary_key=True, autoincrement=False),
          Column("doc", JSON))
    metadata.create_all(engine)
    context = make_context(tmp_path)
    sink = build(db_url, tmp_path)
    sink.open(context)
    depths = {1: 30, 2: 20_000, 3: 2, 4: 400}
    sink.apply(Batch(tuple(doc("write", pk, after={"id": pk, "doc": nested(depth)}, seq=pk)
                           for pk, depth in depths.items()), 3))
    sink.close()
    with engine.connect() as conn:
        stored = {r.id: r.doc for r in conn.execute(text("SELECT id, doc FROM docs"))}
    mariadb = engine.dialect.name in ("mysql", "mariadb")
    engine.dispose()
    decoded = {pk: json.loads(v) if isinstance(v, str) else v for pk, v in stored.items()}
    kept = (1, 3) if mariadb else (1, 3, 4)
    assert decoded == {pk: nested(depths[pk]) for pk in kept}
    context.dead_letters.sync()
    letters = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert [str(letter["event"]["pk"]) for letter in letters] == (["2", "4"] if mariadb
                                                                  else ["2"])
    assert letters[0]["error"].startswith("RecursionError: maximum recursion depth exceeded")
    if mariadb:
        assert "CONSTRAINT `docs.doc` failed" in letters[1]["error"]


def test_unchanged_values_never_regress_a_newer_row(docs: Callable[..., Docs]) -> None:
    replica = docs(version=True)
    replica.apply(doc("write", 1, after={"id": 1, "title": "new", "body": BODY}, seq=5))
    replica.apply(doc("update", 1, before={"id": 1},
                      after={"id": 1, "title": "old", "body": UNCHANGED}, seq=3))
    assert replica.rows() == [(1, "new", BODY, 5)]
    replica.apply(doc("update", 1, before={"id": 1},
                      after={"id": 1, "title": "newer", "body": UNCHANGED}, seq=6))
    assert replica.rows() == [(1, "newer", BODY, 6)]
    assert replica.dead_letters() == []


def test_unsupported_dialect_is_a_config_error(tmp_path: Path) -> None:
    from meepo_core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"sink\.url: dialect 'oracle'"):
        build("oracle://u:p@h/db", tmp_path)


def test_check_names_a_missing_target_table(sqlite_url: str, tmp_path: Path) -> None:
    sink = build(sqlite_url, tmp_path, tables={"shop.items": "nowhere"})
    problems = sink.check()
    sink.close()
    assert len(problems) == 1 and "nowhere" in problems[0]


# -- MariaDB into PostgreSQL after a random workload ------------------------------------------

def random_workload(maker: sessionmaker[Session], seed: int = 7, transactions: int = 60) -> None:
    rng = random.Random(seed)
    for _ in range(transactions):
        with maker() as session:
            ids = list(session.scalars(select(Product.id)))
            for _ in range(rng.randint(1, 5)):
                roll = rng.random()
                if roll < 0.45 or not ids:
                    product = Product(name=f"p{rng.randint(0, 999)}",
                                      price=Decimal(rng.randint(100, 99999)) / 100,
                                      stock=rng.randint(0, 50))
                    session.add(product)
                    session.flush()
                    ids.append(product.id)
                elif roll < 0.8:
                    found = session.get(Product, rng.choice(ids))
                    if found is not None:
                        found.stock = rng.randint(0, 50)
                        if rng.random() < 0.5:
                            found.name = f"renamed {rng.randint(0, 999)}"
                else:
                    found = session.get(Product, ids.pop(rng.randrange(len(ids))))
                    if found is not None:
                        session.delete(found)
            if rng.random() < 0.1:
                session.rollback()  # never replicated
            else:
                session.commit()


def table_rows(url: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        found = [tuple(r) for r in conn.execute(
            select(Product.id, Product.name, Product.price, Product.stock).order_by(Product.id))]
    engine.dispose()
    return found


def create_replica(pg_url: str) -> None:
    engine = create_engine(pg_url)
    Product.__table__.create(engine)  # type: ignore[attr-defined]
    engine.dispose()


def test_mariadb_to_postgres_through_the_outbox(mariadb_url: str, pg_url: str,
                                               tmp_path: Path) -> None:
    engine = create_engine(mariadb_url)
    Product.__table__.create(engine)  # type: ignore[attr-defined]
    meepo_sqlalchemy.create_outbox(engine)
    maker = sessionmaker(engine)
    installed = meepo_sqlalchemy.install(maker, outbox=True, tables=["product"])
    try:
        random_workload(maker)
    finally:
        meepo_sqlalchemy.uninstall(installed)
    create_replica(pg_url)
    write_config(tmp_path, {"replica": {
        "source": {"type": "sqlalchemy-outbox", "url": mariadb_url},
        "sinks": [{"type": "sql", "url": pg_url}],
        "batch_size": 25,
    }})
    done = run_meepo("run", "replica", "--once", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    source_rows = table_rows(mariadb_url)
    assert len(source_rows) > 10
    assert table_rows(pg_url) == source_rows
    engine.dispose()


@pytest.mark.integration
def test_mariadb_to_postgres_through_the_binlog(mariadb_url: str, pg_url: str,
                                               tmp_path: Path) -> None:
    pytest.importorskip("meepo_mysql")
    engine = create_engine(mariadb_url)
    database = engine.url.database
    Product.__table__.create(engine)  # type: ignore[attr-defined]
    create_replica(pg_url)
    server = normalize_url(mariadb_url)
    dsn = f"mysql://{server.username}:{server.password}@{server.host}:{server.port}"
    write_config(tmp_path, {"replica": {
        "source": {"type": "mysql", "dsn": dsn, "tables": [f"{database}.product"]},
        "sinks": [{"type": "sql", "url": pg_url}],
    }})
    start = run_meepo("run", "replica", "--once", cwd=tmp_path)  # position before the workload
    assert start.returncode == 0, start.stderr
    random_workload(sessionmaker(engine))
    done = run_meepo("run", "replica", "--once", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert table_rows(pg_url) == table_rows(mariadb_url)
    engine.dispose()
