"""Outbox mode and the sqlalchemy-outbox relay source, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import meepo_sqlalchemy
import pytest
from meepo_sqlalchemy.outbox import OutboxMissing, outbox_tables
from meepo_sqlalchemy.sqlalchemy_outbox_source import OutboxSource
from meepo_sqlalchemy.urls import describe, normalize_url
from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy_testkit import Base, Keyed, Test

from meepo_core.events import RowEvent
from meepo_core.serialization import event_from_json
from meepo_core.testing import SourceContract, make_context, run_meepo, write_config


def prepare(url: str) -> tuple[Engine, sessionmaker[Session], Any]:
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    meepo_sqlalchemy.create_outbox(engine)
    maker = sessionmaker(engine)
    installed = meepo_sqlalchemy.install(maker, outbox=True)
    return engine, maker, installed


def drain(url: str, tmp_path: Path, start: Any = None, **kwargs: Any) -> tuple[list[RowEvent], Any]:
    source = OutboxSource(normalize_url(url), **kwargs)
    found: list[RowEvent] = []
    position = start
    try:
        for batch in source.stream(start, make_context(tmp_path), once=True):
            found.extend(batch.events)
            position = batch.position if batch.position is not None else position
    finally:
        source.close()
    return found, position


def outbox_ids(engine: Engine) -> list[int]:
    table = outbox_tables().outbox
    with engine.connect() as conn:
        return list(conn.scalars(select(table.c.id).order_by(table.c.id)))


class OutboxContract(SourceContract):
    url_fixture = ""

    @pytest.fixture(autouse=True)
    def _database(self, request: pytest.FixtureRequest) -> Iterator[None]:
        self.url = str(request.getfixturevalue(self.url_fixture))
        self.engine, self.maker, installed = prepare(self.url)
        self.next_id = 1
        yield
        meepo_sqlalchemy.uninstall(installed)
        self.engine.dispose()

    def make_source(self) -> OutboxSource:
        return OutboxSource(normalize_url(self.url), poll_interval=0.05)

    def produce(self, count: int) -> list[Any]:
        pks = []
        for _ in range(count):
            with self.maker() as session:
                session.add(Test(id=self.next_id, data=f"row {self.next_id}"))
                session.commit()
            pks.append(self.next_id)
            self.next_id += 1
        return pks


class TestOutboxSourceSQLite(OutboxContract):
    url_fixture = "sqlite_url"


class TestOutboxSourcePostgres(OutboxContract):
    url_fixture = "pg_url"


class TestOutboxSourceMariaDB(OutboxContract):
    url_fixture = "mariadb_url"


def test_original_example_through_the_outbox(db_url: str, tmp_path: Path) -> None:
    engine, maker, installed = prepare(db_url)
    try:
        with maker() as session:
            session.add(Test(id=1, data="a"))
            session.commit()
            t_2, t_3 = Test(id=2, data="b"), Test(id=3, data="c")
            session.add_all([t_2, t_3])
            session.commit()
            t_2.data = "x"
            session.commit()
            with session.begin_nested():
                session.add(Test(id=9, data="kept"))
            nested = session.begin_nested()
            session.add(Test(id=10, data="rolled back"))
            session.flush()
            nested.rollback()
            session.delete(t_3)
            session.commit()
            session.add(Test(id=11, data="never committed"))
            session.flush()
            session.rollback()
        found, position = drain(db_url, tmp_path)
    finally:
        meepo_sqlalchemy.uninstall(installed)
    assert [f"{e.name} {e.pk}" for e in found] == [
        "test_write 1", "test_write 2", "test_write 3", "test_update 2", "test_write 9",
        "test_delete 3"]
    assert found[3].before == {"id": 2, "data": "b"} and found[3].after == {"id": 2, "data": "x"}
    assert [e.sequence for e in found] == sorted(e.sequence for e in found)
    assert found[4].txid == found[5].txid != found[3].txid
    assert position == found[-1].sequence
    engine.dispose()


def test_key_columns_survive_the_outbox(db_url: str, tmp_path: Path) -> None:
    engine, maker, installed = prepare(db_url)
    try:
        with maker() as session:
            keyed = Keyed(id=1, region="eu", note="a")
            session.add_all([keyed, Test(id=2, data="b")])
            session.commit()
            keyed.note = "c"
            session.commit()
        found, _ = drain(db_url, tmp_path)
    finally:
        meepo_sqlalchemy.uninstall(installed)
        engine.dispose()
    assert [(e.name, e.pk, e.pk_columns) for e in found] == [
        ("keyed_write", ("eu", 1), ("region", "id")),
        ("test_write", 2, ("id",)),
        ("keyed_update", ("eu", 1), ("region", "id")),
    ]


def test_rows_are_deleted_only_after_acknowledge(sqlite_url: str, tmp_path: Path) -> None:
    engine, maker, installed = prepare(sqlite_url)
    for i in (1, 2, 3):
        with maker() as session:
            session.add(Test(id=i, data="x"))
            session.commit()
    source = OutboxSource(normalize_url(sqlite_url))
    try:
        batches = list(source.stream(None, make_context(tmp_path), once=True))
        assert outbox_ids(engine) == [1, 2, 3]  # relayed, not yet acknowledged
        source.acknowledge(batches[-1].position)
        assert outbox_ids(engine) == []
    finally:
        source.close()
    with maker() as session:  # ids are never reused after the deletion
        session.add(Test(id=4, data="x"))
        session.commit()
    assert outbox_ids(engine) == [4]
    found, _ = drain(sqlite_url, tmp_path, start=3)
    assert [e.pk for e in found] == [4]
    # a restart from a saved checkpoint deletes what is at or below it
    drain(sqlite_url, tmp_path, start=4)
    assert outbox_ids(engine) == []
    meepo_sqlalchemy.uninstall(installed)
    engine.dispose()


def test_keep_relayed_rows(sqlite_url: str, tmp_path: Path) -> None:
    engine, maker, installed = prepare(sqlite_url)
    with maker() as session:
        session.add(Test(id=1, data="x"))
        session.commit()
    source = OutboxSource(normalize_url(sqlite_url), delete_relayed=False)
    batches = list(source.stream(None, make_context(tmp_path), once=True))
    source.acknowledge(batches[-1].position)
    source.close()
    assert outbox_ids(engine) == [1]
    meepo_sqlalchemy.uninstall(installed)
    engine.dispose()


def test_a_huge_transaction_is_split_and_only_its_end_has_a_position(
        sqlite_url: str, tmp_path: Path) -> None:
    engine, maker, installed = prepare(sqlite_url)
    with maker() as session:
        session.add_all([Test(id=i, data="x") for i in range(1, 2501)])
        session.commit()
    source = OutboxSource(normalize_url(sqlite_url), page_size=700)
    batches = list(source.stream(None, make_context(tmp_path), once=True))
    source.close()
    assert sum(len(b) for b in batches) == 2500
    assert [b.position for b in batches if b.position is not None] == [2500]
    assert batches[-1].position == 2500
    meepo_sqlalchemy.uninstall(installed)
    engine.dispose()


def test_concurrent_writers_never_lose_an_event_postgres(pg_url: str, tmp_path: Path) -> None:
    """Writers hold their transaction open after writing the outbox (the window where id
    order and commit order could differ) while the relay polls; every event must arrive
    exactly once, in id order, and the relay must never have skipped an id."""
    engine, maker, installed = prepare(pg_url)
    rng = random.Random(4)

    @event.listens_for(maker, "before_commit")
    def linger(session: Session) -> None:  # runs after meepo's outbox write
        time.sleep(rng.random() * 0.02)

    relayed: list[RowEvent] = []
    context = make_context(tmp_path)
    source = OutboxSource(normalize_url(pg_url), poll_interval=0.01)

    def relay() -> None:
        for batch in source.stream(None, context, once=False):
            relayed.extend(batch.events)

    reader = threading.Thread(target=relay)
    reader.start()

    def writer(base: int) -> None:
        for i in range(25):
            with maker() as session:
                session.add(Test(id=base + i, data="w"))
                session.flush()
                time.sleep(rng.random() * 0.01)
                session.commit()

    writers = [threading.Thread(target=writer, args=(n * 1000,)) for n in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    deadline = time.monotonic() + 10
    while len(relayed) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    context.stopping.set()
    reader.join()
    source.close()
    expected = sorted(n * 1000 + i for n in range(4) for i in range(25))
    assert sorted(e.pk for e in relayed) == expected
    assert [e.sequence for e in relayed] == sorted({e.sequence for e in relayed})
    meepo_sqlalchemy.uninstall(installed)
    engine.dispose()


APP = textwrap.dedent("""
    import sys, time
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker
    sys.path.insert(0, {testdir!r})
    from sqlalchemy_testkit import Base, Keyed, Test
    import meepo_sqlalchemy

    engine = create_engine({url!r})
    Base.metadata.create_all(engine)
    meepo_sqlalchemy.create_outbox(engine)
    Session = sessionmaker(engine)
    meepo_sqlalchemy.install(Session, outbox=True)
    with Session() as session:
        session.add(Test(id=42, data="committed, then killed"))
        session.commit()
        print("committed", flush=True)
        time.sleep(60)  # killed here, long before any clean shutdown
""")


@pytest.mark.parametrize("url_fixture", ["sqlite_url", "pg_url"])
def test_event_survives_sigkill_right_after_commit(
        url_fixture: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = str(request.getfixturevalue(url_fixture))
    script = tmp_path / "app.py"
    script.write_text(APP.format(testdir=str(Path(__file__).parent), url=url))
    app = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert app.stdout is not None
        assert app.stdout.readline().strip() == "committed"
        os.kill(app.pid, signal.SIGKILL)
        assert app.wait(10) == -signal.SIGKILL
    finally:
        if app.poll() is None:
            app.kill()
    write_config(tmp_path, {"relay": {
        "source": {"type": "sqlalchemy-outbox", "url": url},
        "sinks": [{"type": "jsonl", "path": "events.jsonl"}],
    }})
    done = run_meepo("run", "relay", "--once", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    # the table's describe comes first (see test_sqlalchemy_schema_tracking)
    assert '"action":"schema"' in lines[0].replace(" ", "")
    relayed = [event_from_json(line) for line in lines[1:]]
    assert [(e.name, e.pk, e.after) for e in relayed] == [
        ("test_write", 42, {"id": 42, "data": "committed, then killed"})]
    # the checkpoint was saved and the relayed row deleted: a second run relays nothing
    again = run_meepo("run", "relay", "--once", cwd=tmp_path)
    assert again.returncode == 0 and "0 events" in again.stderr
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(outbox_tables().outbox)) == 0
    engine.dispose()


def test_check_reports_a_missing_outbox(sqlite_url: str, tmp_path: Path) -> None:
    create_engine(sqlite_url).dispose()
    source = OutboxSource(normalize_url(sqlite_url))
    problems = source.check()
    source.close()
    assert problems == [
        f"outbox tables meepo_outbox and meepo_outbox_lock do not exist in "
        f"{describe(normalize_url(sqlite_url))}; create the outbox once with "
        "meepo_sqlalchemy.create_outbox(engine)"]


def commit_without_outbox(url: str, outbox: bool | str = True) -> OutboxMissing:
    """Commit a change through install(outbox=...) on a database without the outbox; the
    error the commit raised (the change itself must not be committed)."""
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    maker = sessionmaker(engine)
    installed = meepo_sqlalchemy.install(maker, outbox=outbox)
    try:
        with maker() as session:
            session.add(Test(id=1, data="x"))
            with pytest.raises(OutboxMissing) as caught:
                session.commit()
            session.rollback()
            assert session.get(Test, 1) is None  # the change was not committed either
    finally:
        meepo_sqlalchemy.uninstall(installed)
        engine.dispose()
    return caught.value


def test_commit_without_created_outbox_fails_with_one_line_naming_create_outbox(
        db_url: str) -> None:
    error = commit_without_outbox(db_url)
    assert str(error) == (
        f"outbox table meepo_outbox_lock does not exist in {describe(normalize_url(db_url))}; "
        "create the outbox once with meepo_sqlalchemy.create_outbox(engine)")


def test_missing_outbox_of_another_name_names_it_in_the_fix(sqlite_url: str) -> None:
    error = commit_without_outbox(sqlite_url, outbox="orders_outbox")
    assert str(error).startswith("outbox table orders_outbox_lock does not exist in sqlite:///")
    assert str(error).endswith("meepo_sqlalchemy.create_outbox(engine, 'orders_outbox')")


def test_a_missing_lock_row_names_create_outbox(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    tables = meepo_sqlalchemy.create_outbox(engine)
    with engine.begin() as conn:
        conn.execute(tables.lock.delete())
    engine.dispose()
    error = commit_without_outbox(sqlite_url)
    assert "outbox lock row missing in table meepo_outbox_lock" in str(error)
    assert str(error).endswith("meepo_sqlalchemy.create_outbox(engine)")


def test_meepo_run_without_outbox_names_create_outbox(db_url: str, tmp_path: Path) -> None:
    create_engine(db_url).dispose()
    write_config(tmp_path, {"relay": {
        "source": {"type": "sqlalchemy-outbox", "url": db_url},
        "sinks": [{"type": "print"}],
    }})
    done = run_meepo("run", "relay", "--once", cwd=tmp_path)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert errors == [
        f"meepo: error: outbox table meepo_outbox does not exist in "
        f"{describe(normalize_url(db_url))}; create the outbox once with "
        "meepo_sqlalchemy.create_outbox(engine)"], done.stderr
    assert "no such table" not in done.stderr.lower() and "Traceback" not in done.stderr


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    write_config(tmp_path, {"relay": {
        "source": {"type": "sqlalchemy-outbox", "url": "sqlite:///x.db", "poll_intervall": 1},
        "sinks": [{"type": "print"}],
    }})
    done = run_meepo("run", "relay", "--once", cwd=tmp_path)
    assert done.returncode == 2
    assert "tool.meepo.pipelines.relay.source.poll_intervall: unknown option" in done.stderr
