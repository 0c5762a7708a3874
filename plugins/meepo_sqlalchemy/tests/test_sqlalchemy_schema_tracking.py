"""Schema changes of the SQLAlchemy sources: a table that changes between runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import meepo_sqlalchemy
import pytest
from meepo_sqlalchemy.sqlalchemy_outbox_source import OutboxSource
from meepo_sqlalchemy.urls import normalize_url
from sqlalchemy import Integer, String, create_engine, inspect, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from meepo_core.testing import make_context, run_meepo, write_config


@pytest.fixture(params=["sqlite", "postgresql"])
def app_url(request: pytest.FixtureRequest) -> str:
    fixture = {"sqlite": "sqlite_url", "postgresql": "pg_url"}
    return str(request.getfixturevalue(fixture[request.param]))


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def item_models() -> tuple[Any, Any, Any]:
    """The application's model before and after it gained ``price``: the first version's
    declarative base, and the ``items`` model of each version (fresh classes per call)."""

    class V1(DeclarativeBase):
        pass

    class ItemV1(V1):
        __tablename__ = "items"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(40))

    class V2(DeclarativeBase):
        pass

    class ItemV2(V2):
        __tablename__ = "items"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(40))
        price: Mapped[int | None] = mapped_column(Integer)

    return V1, ItemV1, ItemV2


def test_a_column_added_between_runs_reaches_the_stream_and_the_sql_replica(
        app_url: str, tmp_path: Path) -> None:
    V1, ItemV1, ItemV2 = item_models()

    engine = create_engine(app_url)
    V1.metadata.create_all(engine)
    meepo_sqlalchemy.create_outbox(engine)
    replica_url = f"sqlite:///{tmp_path / 'replica.db'}"
    write_config(tmp_path, {"relay": {
        "source": {"type": "sqlalchemy-outbox", "url": app_url},
        "sinks": [{"type": "jsonl", "path": "events.jsonl"},
                  {"type": "sql", "url": replica_url, "tables": {"items": "items"}}],
    }})

    def commit(row: Any) -> None:
        with Session(engine) as session:
            installed = meepo_sqlalchemy.install(session, outbox=True)
            session.add(row)
            session.commit()
            meepo_sqlalchemy.uninstall(installed)

    def relay() -> list[dict[str, Any]]:
        events = tmp_path / "events.jsonl"
        seen = len(_records(events)) if events.exists() else 0
        done = run_meepo("run", "relay", "--once", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return _records(events)[seen:]

    # first run: the table is described before its first row
    commit(ItemV1(id=1, name="one"))
    first = relay()
    assert [(r["action"], r.get("kind")) for r in first] == [("schema", "describe"),
                                                            ("write", None)]
    assert first[0]["before"] is None
    assert [c["name"] for c in first[0]["after"]["columns"]] == ["id", "name"]
    assert first[0]["after"]["key_columns"] == ["id"]

    # the table gains a column between two runs: an alter before the first row
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE items ADD COLUMN price INTEGER"))
    commit(ItemV2(id=2, name="two", price=250))
    second = relay()
    assert [(r["action"], r.get("kind")) for r in second] == [("schema", "alter"),
                                                             ("write", None)]
    assert [c["name"] for c in second[0]["before"]["columns"]] == ["id", "name"]
    assert [c["name"] for c in second[0]["after"]["columns"]] == ["id", "name", "price"]
    assert second[0]["after"]["columns"][2]["nullable"] is True

    replica = create_engine(replica_url)
    assert [c["name"] for c in inspect(replica).get_columns("items")] == ["id", "name", "price"]
    with replica.connect() as conn:
        assert conn.execute(select(text("id, name, price")).select_from(text("items"))
                            .order_by(text("id"))).all() == [(1, "one", None), (2, "two", 250)]
    replica.dispose()

    # unchanged since: nothing but the row
    commit(ItemV2(id=3, name="three", price=3))
    third = relay()
    assert [(r["action"], r.get("kind")) for r in third] == [("write", None)]
    engine.dispose()


def test_in_process_session_describes_each_mapped_table_once_per_process(
        app_url: str, tmp_path: Path) -> None:
    V1, ItemV1, ItemV2 = item_models()

    engine = create_engine(app_url)
    V1.metadata.create_all(engine)
    replica_url = f"sqlite:///{tmp_path / 'replica.db'}"
    config = write_config(tmp_path, {"app": {
        "source": {"type": "sqlalchemy-session"},
        "sinks": [{"type": "jsonl", "path": "events.jsonl"},
                  {"type": "sql", "url": replica_url, "tables": {"items": "items"}}],
    }})

    def process(*rows: Any) -> list[dict[str, Any]]:
        """One application process: install, commit each row in its own transaction."""
        events = tmp_path / "events.jsonl"
        seen = len(_records(events)) if events.exists() else 0
        installed = meepo_sqlalchemy.install(Session, pipeline="app", config=config)
        try:
            for row in rows:
                with Session(engine) as session:
                    session.add(row)
                    session.commit()
        finally:
            meepo_sqlalchemy.uninstall(installed)
        return _records(events)[seen:]

    first = process(ItemV1(id=1, name="one"), ItemV1(id=2, name="two"))
    assert [(r["action"], r.get("kind")) for r in first] == [
        ("schema", "describe"), ("write", None), ("write", None)]
    assert [c["name"] for c in first[0]["after"]["columns"]] == ["id", "name"]
    assert first[0]["after"]["columns"][1]["nullable"] is False
    assert first[0]["after"]["key_columns"] == ["id"]

    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE items ADD COLUMN price INTEGER"))
    second = process(ItemV2(id=3, name="three", price=30))
    assert [(r["action"], r.get("kind")) for r in second] == [
        ("schema", "describe"), ("write", None)]
    assert [c["name"] for c in second[0]["after"]["columns"]] == ["id", "name", "price"]

    replica = create_engine(replica_url)
    assert [c["name"] for c in inspect(replica).get_columns("items")] == ["id", "name", "price"]
    with replica.connect() as conn:
        assert conn.execute(select(text("id, name, price")).select_from(text("items"))
                            .order_by(text("id"))).all() == [
            (1, "one", None), (2, "two", None), (3, "three", 30)]
    replica.dispose()
    engine.dispose()


def test_outbox_definitions_are_stored_only_once_acknowledged(sqlite_url: str,
                                                             tmp_path: Path) -> None:
    """A run whose batches were never checkpointed (a crash) stores nothing: the next run
    describes the table again; after an acknowledged checkpoint it does not."""
    class Model(DeclarativeBase):
        pass

    class Item(Model):
        __tablename__ = "items"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(40))

    engine = create_engine(sqlite_url)
    Model.metadata.create_all(engine)
    meepo_sqlalchemy.create_outbox(engine)
    installed = meepo_sqlalchemy.install(Session, outbox=True)
    try:
        with Session(engine) as session:
            session.add(Item(id=1, name="one"))
            session.commit()
    finally:
        meepo_sqlalchemy.uninstall(installed)

    def run(acknowledge: bool) -> list[tuple[int, str]]:
        source = OutboxSource(normalize_url(sqlite_url), delete_relayed=False)
        found: list[tuple[int, str]] = []
        try:
            for batch in source.stream(None, make_context(tmp_path), once=True):
                found.extend((index, change.kind) for index, change in batch.schema_changes)
                if acknowledge and batch.position is not None:
                    source.acknowledge(batch.position)
        finally:
            source.close()
        return found

    stored = tmp_path / ".meepo" / "contract.sqlalchemy-schemas.json"
    assert run(acknowledge=False) == [(0, "describe")]
    assert not stored.exists()
    assert run(acknowledge=False) == [(0, "describe")]  # the same rows again, described
    assert run(acknowledge=True) == [(0, "describe")]
    assert [t["table"] for t in json.loads(stored.read_text())["tables"]] == ["items"]
    assert run(acknowledge=True) == []  # unchanged and stored: nothing
    stored.write_text("not json")  # a damaged file costs one describe, never the run
    assert run(acknowledge=True) == [(0, "describe")]
    engine.dispose()
