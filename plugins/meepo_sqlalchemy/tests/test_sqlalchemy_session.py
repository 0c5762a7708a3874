"""The session source: install() on a Session, a sessionmaker or all sessions, with
in-process sinks or a named pipeline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import meepo_sqlalchemy
import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy_testkit import (
    Auto,
    Base,
    Child,
    Keyed,
    Pair,
    Parent,
    Test,
    events,
    lines,
    memory_sink,
)

from meepo_core.builtin.memory import channel
from meepo_core.testing import write_config


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_engine(db_url)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = create_engine(sqlite_url)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(sqlite_engine: Engine) -> Iterator[sessionmaker[Session]]:
    maker = sessionmaker(sqlite_engine)
    installed = meepo_sqlalchemy.install(maker, sinks=[memory_sink()])
    yield maker
    meepo_sqlalchemy.uninstall(installed)


def original_example(session: Session) -> None:
    session.add(Test(id=1, data="a"))
    session.commit()
    t_2, t_3 = Test(id=2, data="b"), Test(id=3, data="c")
    session.add_all([t_2, t_3])
    session.commit()
    t_2.data = "x"
    session.commit()
    session.delete(t_3)
    session.commit()


ORIGINAL = ["test_write 1", "test_write 2", "test_write 3", "test_update 2", "test_delete 3"]


def test_original_example_on_every_database(engine: Engine) -> None:
    maker = sessionmaker(engine)
    installed = meepo_sqlalchemy.install(maker, sinks=[memory_sink()])
    try:
        with maker() as session:
            original_example(session)
    finally:
        meepo_sqlalchemy.uninstall(installed)
    assert lines() == ORIGINAL
    update = events()[3]
    assert update.before == {"id": 2, "data": "b"} and update.after == {"id": 2, "data": "x"}
    assert events()[4].before == {"id": 3, "data": "c"} and events()[4].after is None
    # one batch per transaction, each with its own txid
    assert [len(b) for b in channel("session").batches] == [1, 2, 1, 1]
    assert len({e.txid for e in events()}) == 4


def test_install_on_one_session_only(sqlite_engine: Engine) -> None:
    with Session(sqlite_engine) as watched, Session(sqlite_engine) as other:
        installed = meepo_sqlalchemy.install(watched, sinks=[memory_sink()])
        try:
            other.add(Test(id=10, data="unseen"))
            other.commit()
            watched.add(Test(id=11, data="seen"))
            watched.commit()
        finally:
            meepo_sqlalchemy.uninstall(installed)
    assert lines() == ["test_write 11"]


def test_install_on_every_session(sqlite_engine: Engine) -> None:
    installed = meepo_sqlalchemy.install(Session, sinks=[memory_sink()], tables=["test"])
    try:
        with Session(sqlite_engine) as one, sessionmaker(sqlite_engine)() as two:
            one.add(Test(id=1, data="a"))
            one.add(Pair(a=1, b="x", note="filtered out"))
            one.commit()
            two.add(Test(id=2, data="b"))
            two.commit()
    finally:
        meepo_sqlalchemy.uninstall(installed)
    with Session(sqlite_engine) as after:
        after.add(Test(id=3, data="after uninstall"))
        after.commit()
    assert lines() == ["test_write 1", "test_write 2"]


def test_several_flushes_in_one_transaction(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        t = Test(id=1, data="a")
        session.add(t)
        session.flush()
        session.add(Test(id=2, data="b"))
        session.flush()
        t.data = "changed after a flush"
        session.commit()
    assert lines() == ["test_write 1", "test_write 2", "test_update 1"]
    assert len(channel("session").batches) == 1
    assert events()[2].before == {"id": 1, "data": "a"}
    assert events()[2].after == {"id": 1, "data": "changed after a flush"}


def test_changes_after_the_last_flush_are_published(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        session.add(Test(id=1, data="a"))
        session.flush()
        session.add(Test(id=2, data="b"))  # flushed by commit
        session.commit()
    assert lines() == ["test_write 1", "test_write 2"]


def test_rollback_drops_everything(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        session.add(Test(id=1, data="a"))
        session.flush()
        session.rollback()
        session.add(Test(id=2, data="b"))
        session.commit()
    assert lines() == ["test_write 2"]


def test_session_closed_without_commit_publishes_nothing(factory: sessionmaker[Session]) -> None:
    session = factory()
    session.add(Test(id=1, data="a"))
    session.flush()
    session.close()
    with factory() as session:
        session.add(Test(id=2, data="b"))
        session.commit()
    assert lines() == ["test_write 2"]


def test_savepoint_rollback_drops_only_its_changes(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        session.add(Test(id=1, data="outer"))
        savepoint = session.begin_nested()
        session.add(Test(id=2, data="inner, rolled back"))
        session.flush()
        savepoint.rollback()
        with session.begin_nested():
            session.add(Test(id=3, data="inner, released"))
        session.add(Test(id=4, data="outer again"))
        session.commit()
    assert lines() == ["test_write 1", "test_write 3", "test_write 4"]
    with factory() as session:
        assert session.scalars(select(Test.id).order_by(Test.id)).all() == [1, 3, 4]


def test_nested_savepoints(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        outer = session.begin_nested()
        session.add(Test(id=1, data="a"))
        with session.begin_nested():
            session.add(Test(id=2, data="b"))
        outer.rollback()  # drops 1 and the released inner savepoint's 2
        session.add(Test(id=3, data="c"))
        session.commit()
    assert lines() == ["test_write 3"]


def test_update_that_changes_nothing_gives_no_event(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        session.add(Test(id=1, data="same"))
        session.commit()
        t = session.get(Test, 1)
        assert t is not None
        t.data = "same"  # loaded: no net change, no UPDATE
        session.commit()
        t.data = "same"  # expired by the commit: SQLAlchemy emits an UPDATE anyway
        session.commit()
    assert lines() == ["test_write 1"]


def test_autoincrement_pk_and_server_default_in_the_event(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        session.add_all([Auto(name="x"), Auto(name="y")])
        session.commit()
    assert lines() == ["auto_write 1", "auto_write 2"]
    assert events()[0].after == {"id": 1, "name": "x", "hits": 0}


def test_composite_pk_is_a_tuple_in_key_order(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        p = Pair(a=7, b="k", note="n")
        session.add(p)
        session.commit()
        p.note = "m"
        session.commit()
        session.delete(p)
        session.commit()
    assert [(e.action, e.pk) for e in events()] == [
        ("write", (7, "k")), ("update", (7, "k")), ("delete", (7, "k"))]


def test_events_name_the_key_columns_in_key_order(engine: Engine) -> None:
    maker = sessionmaker(engine)
    installed = meepo_sqlalchemy.install(maker, sinks=[memory_sink()])
    try:
        with maker() as session:
            keyed, test = Keyed(id=1, region="eu", note="n"), Test(id=5, data="a")
            session.add_all([keyed, test])
            session.commit()
            keyed.note, test.data = "m", "b"
            session.commit()
            session.delete(keyed)
            session.commit()
    finally:
        meepo_sqlalchemy.uninstall(installed)
    assert sorted((e.name, e.pk, e.pk_columns) for e in events()) == [
        ("keyed_delete", ("eu", 1), ("region", "id")),
        ("keyed_update", ("eu", 1), ("region", "id")),
        ("keyed_write", ("eu", 1), ("region", "id")),
        ("test_update", 5, ("id",)),
        ("test_write", 5, ("id",)),
    ]


def test_before_image_from_attribute_history(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        t = Test(id=1, data="v1")
        session.add(t)
        session.flush()
        t.data = "v2"
        session.flush()
        t.data = "v3"
        session.commit()
    assert [(e.before, e.after) for e in events()[1:]] == [
        ({"id": 1, "data": "v1"}, {"id": 1, "data": "v2"}),
        ({"id": 1, "data": "v2"}, {"id": 1, "data": "v3"}),
    ]


def test_full_images_read_unloaded_columns(sqlite_engine: Engine) -> None:
    with Session(sqlite_engine) as setup:
        setup.add(Auto(id=1, name="x"))
        setup.commit()
    for full, expected in ((True, {"id": 1, "name": "x", "hits": 0}), (False, {"id": 1})):
        name = f"full-{full}"
        with Session(sqlite_engine) as session:
            installed = meepo_sqlalchemy.install(session, sinks=[memory_sink(name)],
                                                 full_images=full)
            obj = session.get(Auto, 1)
            assert obj is not None
            session.expire(obj)
            session.delete(obj)
            session.commit()
            meepo_sqlalchemy.uninstall(installed)
            assert [e.before for e in events(name)] == [expected]
            session.add(Auto(id=1, name="x"))
            session.commit()


def test_sql_expression_update_gets_the_computed_after_image(
        factory: sessionmaker[Session]) -> None:
    with factory() as session:
        session.add(Auto(id=1, name="x", hits=1))
        session.commit()
        obj = session.get(Auto, 1)
        assert obj is not None
        obj.hits = Auto.hits + 41
        session.commit()
    assert events()[1].before == {"id": 1, "name": "x", "hits": 1}
    assert events()[1].after == {"id": 1, "name": "x", "hits": 42}


def test_foreign_key_set_through_a_relationship(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        session.add_all([Parent(id=1), Child(id=1)])
        session.commit()
        child = session.get(Child, 1)
        parent = session.get(Parent, 1)
        assert child is not None and parent is not None
        parent.children.append(child)  # parent_id is only set during the flush
        session.commit()
    assert lines()[-1] == "child_update 1"
    assert events()[-1].before == {"id": 1, "parent_id": None}
    assert events()[-1].after == {"id": 1, "parent_id": 1}


def test_failing_sink_dead_letters_after_commit(sqlite_engine: Engine, tmp_path: Path) -> None:
    from meepo_core.dead_letters import FileDeadLetterStore
    from meepo_core.events import Batch
    from meepo_core.sink import Sink

    class FailingSinkFake(Sink):
        """Stands in for a sink whose server is down (cannot be caused for real here)."""

        @classmethod
        def from_options(cls, options):  # type: ignore[no-untyped-def]
            raise NotImplementedError

        def apply(self, batch: Batch) -> None:
            raise ConnectionError("down")

    store = tmp_path / "dead.jsonl"
    maker = sessionmaker(sqlite_engine)
    installed = meepo_sqlalchemy.install(maker, sinks=[FailingSinkFake(), memory_sink()],
                                         dead_letters=FileDeadLetterStore(store))
    try:
        with maker() as session:
            session.add(Test(id=1, data="a"))
            session.commit()  # the commit succeeds; the event is not lost
            assert session.get(Test, 1) is not None
    finally:
        meepo_sqlalchemy.uninstall(installed)
    assert lines() == ["test_write 1"]  # the other sink still got it
    assert '"name": "test_write"' in store.read_text() or '"test_write"' in store.read_text()


def test_named_pipeline_sinks(sqlite_engine: Engine, tmp_path: Path) -> None:
    config = write_config(tmp_path, {"orders": {
        "source": {"type": "sqlalchemy-session"},
        "sinks": [{"type": "memory", "name": "piped"}, {"type": "jsonl", "path": "audit.jsonl"}],
    }})
    maker = sessionmaker(sqlite_engine)
    installed = meepo_sqlalchemy.install(maker, pipeline="orders", config=config)
    try:
        with maker() as session:
            original_example(session)
    finally:
        meepo_sqlalchemy.uninstall(installed)
    assert lines("piped") == ORIGINAL
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert len([r for r in records if r["action"] != "schema"]) == 5
    # each table is described once, before its first row (see test_sqlalchemy_schema_tracking)
    assert [(r["kind"], r["table"]) for r in records if r["action"] == "schema"] == [
        ("describe", "test")]


def test_install_needs_exactly_one_destination(sqlite_engine: Engine) -> None:
    with pytest.raises(ValueError, match="exactly one of"):
        meepo_sqlalchemy.install(Session)
    with pytest.raises(ValueError, match="got sinks, outbox"):
        meepo_sqlalchemy.install(Session, sinks=[memory_sink()], outbox=True)


def test_session_pipeline_cannot_be_run(tmp_path: Path) -> None:
    from meepo_core.testing import run_meepo

    write_config(tmp_path, {"app": {"source": {"type": "sqlalchemy-session"},
                                    "sinks": [{"type": "print"}]}})
    done = run_meepo("run", "app", "--once", cwd=tmp_path)
    assert done.returncode == 1
    assert "install(..., outbox=True)" in done.stderr


def test_raw_sql_is_not_captured(factory: sessionmaker[Session]) -> None:
    """Documented limitation: text() statements bypass the ORM."""
    with factory() as session:
        session.execute(text("INSERT INTO test (id, data) VALUES (1, 'raw')"))
        session.commit()
    assert lines() == []
