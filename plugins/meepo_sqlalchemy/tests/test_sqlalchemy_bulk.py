"""Bulk ORM statements (update(), delete(), insert() with lists, query.update/delete) are
captured on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Iterator

import meepo_sqlalchemy
import pytest
from sqlalchemy import Engine, create_engine, delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy_testkit import Auto, Base, Keyed, Pair, Test, events, lines, memory_sink


@pytest.fixture
def maker(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine: Engine = create_engine(db_url)
    Base.metadata.create_all(engine)
    factory = sessionmaker(engine)
    installed = meepo_sqlalchemy.install(factory, sinks=[memory_sink()])
    yield factory
    meepo_sqlalchemy.uninstall(installed)
    engine.dispose()


def seed(maker: sessionmaker[Session]) -> None:
    with maker() as session:
        session.add_all([Test(id=i, data="a") for i in (1, 2, 3, 4)])
        session.commit()


def test_bulk_update_and_delete_with_criteria(maker: sessionmaker[Session]) -> None:
    seed(maker)
    with maker() as session:
        result = session.execute(update(Test).where(Test.id >= 3).values(data="z"))
        assert result.rowcount == 2  # the application's result is untouched
        session.execute(update(Test).where(Test.id == 1).values(data="a"))  # no change: no event
        session.execute(delete(Test).where(Test.id == 4))
        session.commit()
    assert lines()[4:] == ["test_update 3", "test_update 4", "test_delete 4"]
    assert events()[4].before == {"id": 3, "data": "a"}
    assert events()[4].after == {"id": 3, "data": "z"}
    assert events()[6].before == {"id": 4, "data": "z"}


def test_query_update_and_delete(maker: sessionmaker[Session]) -> None:
    seed(maker)
    with maker() as session:
        assert session.query(Test).filter(Test.id == 2).update({"data": "q"}) == 1
        assert session.query(Test).filter(Test.id > 2).delete() == 2
        session.commit()
    assert lines()[4:] == ["test_update 2", "test_delete 3", "test_delete 4"]


def test_bulk_update_by_primary_key(maker: sessionmaker[Session]) -> None:
    seed(maker)
    with maker() as session:
        session.execute(update(Test), [{"id": 1, "data": "one"}, {"id": 2, "data": "two"}])
        session.commit()
    assert [(e.name, e.pk, e.after) for e in events()[4:]] == [
        ("test_update", 1, {"id": 1, "data": "one"}), ("test_update", 2, {"id": 2, "data": "two"})]


def test_bulk_insert_gets_generated_keys(maker: sessionmaker[Session]) -> None:
    with maker() as session:
        result = session.execute(insert(Auto), [{"name": "x"}, {"name": "y"}])
        assert result.rowcount == 2
        session.execute(insert(Pair).values(a=1, b="k", note="n"))
        session.commit()
    assert lines() == ["auto_write 1", "auto_write 2", "pair_write (1, 'k')"]
    assert events()[1].after == {"id": 2, "name": "y", "hits": 0}


def test_bulk_statements_follow_the_transaction(maker: sessionmaker[Session]) -> None:
    seed(maker)
    with maker() as session:
        session.execute(delete(Test).where(Test.id == 1))
        session.rollback()
        savepoint = session.begin_nested()
        session.execute(update(Test).where(Test.id == 2).values(data="rolled back"))
        savepoint.rollback()
        session.execute(update(Test).where(Test.id == 3).values(data="kept"))
        session.commit()
    assert lines()[4:] == ["test_update 3"]
    with maker() as session:
        assert session.scalars(select(Test.data).order_by(Test.id)).all() == ["a", "a", "kept", "a"]


def test_insert_with_its_own_returning_is_left_alone(maker: sessionmaker[Session]) -> None:
    with maker() as session:
        returned = session.execute(insert(Test).returning(Test.id),
                                   [{"id": 7, "data": "r"}, {"id": 8, "data": "s"}])
        assert sorted(returned.scalars()) == [7, 8]  # the application gets its rows
        with pytest.raises(meepo_sqlalchemy.BulkCaptureError, match="primary key values"):
            session.execute(insert(Auto).returning(Auto.id), [{"name": "no key"}])
        session.commit()
    assert [(e.name, e.after) for e in events()] == [
        ("test_write", {"id": 7, "data": "r"}), ("test_write", {"id": 8, "data": "s"})]
    with maker() as session:
        assert session.scalars(select(Auto.id)).all() == []  # refused before it ran


def test_bulk_events_name_the_key_columns(maker: sessionmaker[Session]) -> None:
    with maker() as session:
        session.execute(insert(Keyed), [{"id": 1, "region": "eu", "note": "a"},
                                        {"id": 2, "region": "us", "note": "b"}])
        session.execute(update(Keyed).where(Keyed.id == 1).values(note="c"))
        session.execute(delete(Keyed).where(Keyed.region == "us"))
        session.commit()
    assert [(e.name, e.pk, e.pk_columns) for e in events()] == [
        ("keyed_write", ("eu", 1), ("region", "id")),
        ("keyed_write", ("us", 2), ("region", "id")),
        ("keyed_update", ("eu", 1), ("region", "id")),
        ("keyed_delete", ("us", 2), ("region", "id")),
    ]
