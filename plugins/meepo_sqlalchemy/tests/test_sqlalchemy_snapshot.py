"""Snapshots through the sqlalchemy-outbox source on real SQLite, PostgreSQL and MariaDB:
an initial copy, an on-demand snapshot while writers keep changing the table, SIGKILLs in
the middle of a snapshot, and bad input. The replica is a SQL database fed by the `sql`
sink; it must equal the source table row for row."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import meepo_sqlalchemy
import pytest
from meepo_sqlalchemy.sqlalchemy_outbox_source import OutboxSource
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker
from sqlalchemy_testkit import Product

from meepo_core import Options
from meepo_core.testing import meepo_command, run_meepo, write_config

ROWS = 120


def seed(url: str, count: int = ROWS) -> None:
    """Rows written before the outbox exists: only a snapshot can deliver them."""
    engine = create_engine(url)
    Product.__table__.create(engine)  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(Product.__table__.insert(), [  # type: ignore[attr-defined]
            {"id": i, "name": f"p{i}", "price": Decimal(i) / 4, "stock": i % 7}
            for i in range(1, count + 1)])
    meepo_sqlalchemy.create_outbox(engine)
    engine.dispose()


def rows(url: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        found = [tuple(r) for r in conn.execute(
            select(Product.id, Product.name, Product.price, Product.stock).order_by(Product.id))]
    engine.dispose()
    return found


def replica(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'replica.db'}"
    engine = create_engine(url)
    Product.__table__.create(engine)  # type: ignore[attr-defined]
    engine.dispose()
    return url


def pipeline(source_url: str, replica_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "source": {"type": "sqlalchemy-outbox", "url": source_url, "tables": ["product"],
                   "poll_interval": 0.05},
        "sinks": [{"type": "sql", "url": replica_url}],
        "snapshot_chunk_size": 7,
        "batch_wait": 0.02,
        **extra,
    }


class Writers:
    """Threads changing ``product`` through sessions installed with the outbox."""

    def __init__(self, url: str, count: int = 2, seed: int = 11) -> None:
        self.engine = create_engine(url)
        self.maker = sessionmaker(self.engine)
        self.installed = meepo_sqlalchemy.install(self.maker, outbox=True, tables=["product"])
        self.stop = threading.Event()
        self.commits = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(seed + i, i), daemon=True)
                        for i in range(count)]

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)
        meepo_sqlalchemy.uninstall(self.installed)
        self.engine.dispose()

    def _run(self, seed: int, worker: int) -> None:
        rng = random.Random(seed)
        next_id = 10_000 * (worker + 1)
        while not self.stop.is_set():
            with self.maker() as session:
                roll = rng.random()
                key = rng.randint(1, ROWS + 20)
                if roll < 0.3:
                    next_id += 1
                    session.add(Product(id=next_id, name=f"w{next_id}", price=Decimal(1),
                                        stock=1))
                elif roll < 0.8:
                    found = session.get(Product, key)
                    if found is not None:
                        found.stock = rng.randint(0, 99)
                        found.name = f"u{rng.randint(0, 999)}"
                else:
                    found = session.get(Product, key)
                    if found is not None:
                        session.delete(found)
                try:
                    session.commit()
                except Exception:  # a conflicting writer got there first
                    session.rollback()
                    continue
            with self.lock:
                self.commits += 1
            time.sleep(0.005)


def checkpoint(directory: Path, name: str) -> dict[str, Any]:
    path = directory / ".meepo" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def outbox_empty(url: str) -> bool:
    engine = create_engine(url)
    with engine.connect() as conn:
        left = conn.exec_driver_sql("SELECT COUNT(*) FROM meepo_outbox").scalar()
    engine.dispose()
    return left == 0


def test_initial_snapshot_copies_existing_rows_then_streams(db_url: str, tmp_path: Path) -> None:
    seed(db_url)
    target = replica(tmp_path)
    write_config(tmp_path, {"copy": pipeline(db_url, target, snapshot="initial")})
    first = run_meepo("run", "copy", "--once", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert rows(target) == rows(db_url) and len(rows(target)) == ROWS
    state = checkpoint(tmp_path, "copy")["snapshot"]
    assert state["jobs"] == [] and state["done"][0]["rows"] == ROWS
    assert state["done"][0]["chunks"] == -(-ROWS // 7)
    with Writers(db_url, count=1) as writers:
        wait_for(lambda: writers.commits >= 20, 60, "20 commits")
    second = run_meepo("run", "copy", "--once", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "snapshot" not in second.stderr.split("checkpoint")[0]  # no second initial copy
    assert rows(target) == rows(db_url)


@pytest.mark.parametrize("database", ["postgresql", "mariadb"])
def test_snapshot_requested_while_following_under_concurrent_writers(
    database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue({"postgresql": "pg_url", "mariadb": "mariadb_url"}[database])
    seed(url)
    target = replica(tmp_path)
    write_config(tmp_path, {"live": pipeline(url, target)})
    log = (tmp_path / "run.log").open("wb")
    runner = subprocess.Popen(meepo_command("run", "live"), cwd=tmp_path, stderr=log)
    try:
        with Writers(url) as writers:
            wait_for(lambda: writers.commits >= 10, 60, "the writers")
            asked = run_meepo("snapshot", "live", "--table", "product", cwd=tmp_path)
            assert asked.returncode == 0, asked.stderr
            wait_for(lambda: (checkpoint(tmp_path, "live").get("snapshot") or {}).get("done"),
                     120, "the snapshot to finish")
            assert writers.commits > 20
        wait_for(lambda: outbox_empty(url), 60, "the pipeline to catch up")
        status = run_meepo("snapshot", "live", "--status", cwd=tmp_path)
        assert "done" in status.stdout and "product:" in status.stdout, status.stdout
    finally:
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(30) == 0, (tmp_path / "run.log").read_text()[-3000:]
    assert rows(target) == rows(url)


def test_sigkill_during_a_snapshot_resumes_from_the_last_finished_chunk(
    pg_url: str, tmp_path: Path
) -> None:
    seed(pg_url, 400)
    target = replica(tmp_path)
    write_config(tmp_path, {"kill": pipeline(pg_url, target, snapshot="initial",
                                             snapshot_chunk_size=5)})
    rng = random.Random(5)
    progress: list[int] = []
    with Writers(pg_url, count=1):
        for _ in range(5):
            with (tmp_path / "runs.log").open("ab") as log:
                runner = subprocess.Popen(meepo_command("run", "kill"), cwd=tmp_path,
                                          stderr=log)
            wait_for(lambda proc=runner: checkpoint(tmp_path, "kill").get("snapshot") is not None
                     or proc.poll() is not None, 60, "a first checkpoint")
            time.sleep(rng.uniform(0.2, 1.5))
            runner.kill()
            runner.wait(10)
            jobs = checkpoint(tmp_path, "kill")["snapshot"]["jobs"]
            progress.append(jobs[0]["rows"] if jobs else 400)
    done = run_meepo("run", "kill", "--once", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert progress == sorted(progress), progress  # never restarted from an earlier chunk
    assert rows(target) == rows(pg_url)


def test_status_of_a_snapshot_whose_run_was_killed_says_when_it_was_last_seen(
    sqlite_url: str, tmp_path: Path
) -> None:
    seed(sqlite_url, 3000)
    target = replica(tmp_path)
    write_config(tmp_path, {"kill": pipeline(sqlite_url, target, snapshot="initial",
                                             snapshot_chunk_size=5, checkpoint_interval=0.2)})
    with (tmp_path / "run.log").open("wb") as log:
        runner = subprocess.Popen(meepo_command("run", "kill"), cwd=tmp_path, stderr=log)
    try:
        wait_for(lambda: any(job["rows"] for job in
                             (checkpoint(tmp_path, "kill").get("snapshot") or {}).get("jobs", [])),
                 60, "a chunk in the checkpoint")
        alive = run_meepo("snapshot", "kill", "--status", cwd=tmp_path)
    finally:
        runner.kill()
        runner.wait(10)
    assert alive.returncode == 0, alive.stderr
    assert alive.stdout.startswith("running: product: "), alive.stdout
    assert " ago" in alive.stdout.splitlines()[0]
    saved = checkpoint(tmp_path, "kill")
    assert saved["snapshot"]["jobs"], "the snapshot finished before the kill"
    time.sleep(6.5)  # more than max(10 checkpoint intervals, 5 s) without a checkpoint
    killed = run_meepo("snapshot", "kill", "--status", cwd=tmp_path)
    assert killed.returncode == 0, killed.stderr
    line = killed.stdout.splitlines()[0]
    rows_done = saved["snapshot"]["jobs"][0]["rows"]
    seen = datetime.fromisoformat(saved["saved_at"]).astimezone(UTC)
    assert re.fullmatch(
        rf"stalled: product: {rows_done:,} of ~3,000 rows \(\d+%\); last seen "
        rf"{seen:%Y-%m-%d %H:%M:%S} UTC \(0:00:0[5-9] ago\), no progress saved since: the run "
        "was stopped or killed, or is stuck; a new run resumes from the last finished chunk",
        line), line
    assert "ETA" not in killed.stdout and "rows/s" not in line


def test_snapshot_bad_input_is_one_line_and_writes_nothing(
    sqlite_url: str, tmp_path: Path
) -> None:
    seed(sqlite_url, 3)
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE nokey (a INT, b TEXT)")
    engine.dispose()
    target = replica(tmp_path)
    config = pipeline(sqlite_url, target)
    write_config(tmp_path, {"p": config, "nokey": {
        **config, "source": {**config["source"], "tables": ["product", "nokey"]}}})
    outside = run_meepo("snapshot", "p", "--table", "other", cwd=tmp_path)
    assert outside.returncode == 2
    assert outside.stderr.strip() == ("meepo: error: --table: other is not among the source's "
                                      "tables: product")
    missing_key = run_meepo("snapshot", "nokey", "--table", "nokey", cwd=tmp_path)
    assert missing_key.returncode == 1
    assert "table nokey has no primary key" in missing_key.stderr
    assert len(missing_key.stderr.strip().splitlines()) == 1
    assert not (tmp_path / ".meepo" / "p.json.requests").exists()
    assert not (tmp_path / ".meepo" / "nokey.json.requests").exists()
    assert rows(target) == []


def test_a_snapshot_request_without_a_kept_checkpoint_is_refused(
    sqlite_url: str, tmp_path: Path
) -> None:
    """With checkpoint = "none" a request would die with the command that made it: refused
    (exit 2, the key and both ways out), and a run afterwards copies nothing."""
    seed(sqlite_url, 3)
    target = replica(tmp_path)
    write_config(tmp_path, {"p": pipeline(sqlite_url, target, checkpoint="none")})
    asked = run_meepo("snapshot", "p", cwd=tmp_path)
    assert asked.returncode == 2, asked.stderr
    assert asked.stderr.strip() == (
        "meepo: error: tool.meepo.pipelines.p.checkpoint: a snapshot request needs a "
        "checkpoint store that outlives this command, not none (not persisted); set "
        'checkpoint = "file:.meepo/p.json" (the default), or snapshot = "initial" to copy '
        "the tables at the start of every run")
    assert not (tmp_path / ".meepo").exists()
    # the way out that keeps checkpoint = "none": every run starts with a copy
    write_config(tmp_path, {"p": pipeline(sqlite_url, target, checkpoint="none",
                                          snapshot="initial")})
    copied = run_meepo("run", "p", "--once", cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    assert rows(target) == rows(sqlite_url) and len(rows(target)) == 3


CHANGE_IN_WINDOW_PLUGIN = '''
"""A sqlalchemy-outbox source that commits a real change to the first row of every chunk
right after reading the chunk and before the high watermark: the moment where a copy is
already stale. Only the order is forced; the change goes through the real outbox."""

from decimal import Decimal

import meepo_sqlalchemy
from sqlalchemy import update
from sqlalchemy.orm import sessionmaker
from sqlalchemy_testkit import Product

from meepo_core import hookimpl
from meepo_sqlalchemy.sqlalchemy_outbox_source import OutboxSource


class ChangeInWindow(OutboxSource):
    def read_chunk(self, table, after, limit, where=None, until=None):
        rows = super().read_chunk(table, after, limit, where, until)
        if rows:
            maker = sessionmaker(self.engine)
            installed = meepo_sqlalchemy.install(maker, outbox=True, tables=["product"])
            try:
                with maker() as session:
                    found = session.get(Product, rows[0].pk)
                    found.name = f"changed in window {rows[0].pk}"
                    found.price = Decimal("0.25")
                    session.commit()
            finally:
                meepo_sqlalchemy.uninstall(installed)
        return rows


@hookimpl
def meepo_register_sources(register):
    register("outbox-change-in-window", ChangeInWindow)
'''


def test_a_change_committed_between_the_read_and_the_high_watermark_wins(
    pg_url: str, tmp_path: Path
) -> None:
    seed(pg_url, 30)
    target = replica(tmp_path)
    (tmp_path / "change_in_window.py").write_text(CHANGE_IN_WINDOW_PLUGIN)
    config = pipeline(pg_url, target, snapshot="initial")
    config["source"]["type"] = "outbox-change-in-window"
    write_config(tmp_path, {"window": config}, plugins=["change_in_window"])
    tests_dir = str(Path(__file__).parent)
    done = run_meepo("run", "window", "--once", cwd=tmp_path, env={"PYTHONPATH": tests_dir})
    assert done.returncode == 0, done.stderr
    names = {row[0]: row[1] for row in rows(target)}
    changed = [key for key, name in names.items() if name.startswith("changed in window")]
    assert changed == [1, 8, 15, 22, 29]  # the first row of each chunk of 7
    assert rows(target) == rows(pg_url)


def test_last_key_and_the_upper_bound_of_a_chunk(tmp_path: Path) -> None:
    """A snapshot copies up to the last key it saw when it started (see meepo_core.snapshots):
    ``last_key`` finds it, ``read_chunk`` stops there."""
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    seed(url, 10)
    source = OutboxSource.from_options(Options(
        {"type": "sqlalchemy-outbox", "url": url, "tables": ["product"]}, "source", tmp_path))
    try:
        (table,) = source.snapshot_tables(["product"])
        assert source.last_key(table) == (10,)
        assert source.last_key(table, {"stock": 3}) == (10,)
        assert source.last_key(table, {"stock": 99}) is None
        assert [e.pk for e in source.read_chunk(table, (4,), 100, None, (7,))] == [5, 6, 7]
    finally:
        source.close()
