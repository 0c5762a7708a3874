"""The sql sink's exactly-once mode: each batch's position committed in the batch's
transaction, given back at start; a pipeline resumes from it, not from the checkpoint file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from meepo_sqlalchemy.sql_sink import SqlSink
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from meepo_core import Batch, RowEvent, SinkError, event_to_json
from meepo_core.options import Options
from meepo_core.testing import make_context, run_meepo, write_config


def build(url: str, tmp_path: Path, **options: Any) -> SqlSink:
    return SqlSink.from_options(Options({"type": "sql", "url": url, "exactly_once": True,
                                         **options}, "sink", tmp_path))


def write(pk: int, value: int, txid: str | None = None) -> RowEvent:
    return RowEvent("shop", "items", "write", pk, None, {"id": pk, "v": value}, txid=txid,
                    committed_at=datetime(2026, 1, 1, tzinfo=UTC))


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql))]
    finally:
        engine.dispose()


def execute(url: str, *statements: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def test_position_commits_with_the_batch_and_comes_back(db_url: str, tmp_path: Path) -> None:
    execute(db_url, "CREATE TABLE items (id INT PRIMARY KEY, v INT)")
    sink = build(db_url, tmp_path)
    assert sink.claims_position
    assert sink.claim_position("orders") is None  # no table yet: never delivered
    sink.open(make_context(tmp_path, "orders"))
    try:
        sink.apply(Batch((write(1, 10), write(2, 20)), {"lsn": 7}))
        sink.apply(Batch((), {"lsn": 9}))  # a position-only batch moves the position too
    finally:
        sink.close()
    assert query(db_url, "SELECT id, v FROM items ORDER BY id") == [(1, 10), (2, 20)]
    assert build(db_url, tmp_path).stored_position("orders") == {"lsn": 9}
    assert build(db_url, tmp_path).stored_position("other") is None
    assert query(db_url, "SELECT pipeline, part, position FROM meepo_positions") == [
        ("orders", "", '{"lsn":9}')]


def test_a_failed_commit_keeps_neither_rows_nor_position(pg_url: str, tmp_path: Path) -> None:
    """A deferred constraint fails at COMMIT, after the rows and the position were written:
    the transaction keeps neither."""
    execute(pg_url, "CREATE TABLE items (id INT PRIMARY KEY, v INT, "
                    "CONSTRAINT one_v UNIQUE (v) DEFERRABLE INITIALLY DEFERRED)")
    sink = build(pg_url, tmp_path)
    sink.open(make_context(tmp_path, "orders"))
    try:
        sink.apply(Batch((write(1, 10),), {"lsn": 1}))
        with pytest.raises(SinkError):
            sink.apply(Batch((write(2, 20), write(3, 10)), {"lsn": 2}))
    finally:
        sink.close()
    assert query(pg_url, "SELECT id, v FROM items ORDER BY id") == [(1, 10)]
    assert build(pg_url, tmp_path).stored_position("orders") == {"lsn": 1}


def offsets(**partitions: int) -> dict[str, Any]:
    return {"group": "g", "epoch": 1, "offsets": {"t": dict(partitions)}}


def test_partition_offsets_are_kept_apart_and_stale_batches_skipped(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Two workers of one group share the destination: each stores its own partitions'
    offsets; a batch behind the stored offsets (replayed after a rebalance) is skipped."""
    execute(sqlite_url, "CREATE TABLE items (id INT PRIMARY KEY, v INT)")
    first, second = build(sqlite_url, tmp_path), build(sqlite_url, tmp_path)
    first.open(make_context(tmp_path, "orders"))
    second.open(make_context(tmp_path, "orders"))
    try:
        first.apply(Batch((write(1, 1),), offsets(**{"0": 5})))
        second.apply(Batch((write(2, 2),), offsets(**{"1": 3})))
        first.apply(Batch((write(1, 99),), offsets(**{"0": 4})))  # stale: applied before
    finally:
        first.close()
        second.close()
    assert build(sqlite_url, tmp_path).stored_position("orders") == {
        "offsets": {"t": {"0": 5, "1": 3}}}
    assert query(sqlite_url, "SELECT id, v FROM items ORDER BY id") == [(1, 1), (2, 2)]


def test_side_runs_do_not_move_the_position(sqlite_url: str, tmp_path: Path) -> None:
    execute(sqlite_url, "CREATE TABLE items (id INT PRIMARY KEY, v INT)")
    sink = build(sqlite_url, tmp_path)
    context = make_context(tmp_path, "orders")
    context.purpose = "backfill"
    sink.open(context)
    try:
        sink.apply(Batch((write(1, 1),), {"lsn": 3}))
    finally:
        sink.close()
    assert sink.stored_position("orders") is None
    assert query(sqlite_url, "SELECT id, v FROM items") == [(1, 1)]


def jsonl_log(path: Path, first: int, count: int) -> None:
    with path.open("a", encoding="utf-8") as handle:
        for pk in range(first, first + count):
            handle.write(event_to_json(write(pk, pk * 10)) + "\n")


def changes_logged(url: str) -> list[int]:
    return [row[0] for row in query(url, "SELECT id FROM items_log ORDER BY n")]


def test_the_pipeline_resumes_from_the_sink_not_the_checkpoint_file(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The checkpoint file is deleted between runs: with exactly_once the second run still
    resumes after what the first applied (a trigger logs every row the sink writes)."""
    execute(sqlite_url, "CREATE TABLE items (id INT PRIMARY KEY, v INT)",
            "CREATE TABLE items_log (n INTEGER PRIMARY KEY AUTOINCREMENT, id INT)",
            "CREATE TRIGGER items_ins AFTER INSERT ON items BEGIN "
            "INSERT INTO items_log (id) VALUES (NEW.id); END",
            "CREATE TRIGGER items_upd AFTER UPDATE ON items BEGIN "
            "INSERT INTO items_log (id) VALUES (NEW.id); END")
    log = tmp_path / "changes.jsonl"
    jsonl_log(log, 1, 30)
    write_config(tmp_path, {"eo": {
        "source": {"type": "jsonl", "path": str(log)},
        "sinks": [{"type": "sql", "url": sqlite_url, "exactly_once": True}],
        "batch_size": 7,
    }})
    assert run_meepo("run", "eo", "--once", cwd=tmp_path).returncode == 0
    (tmp_path / ".meepo" / "eo.json").unlink()
    jsonl_log(log, 31, 5)
    second = run_meepo("run", "eo", "--once", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "exactly-once" in second.stderr  # the log names where the position comes from
    assert changes_logged(sqlite_url) == list(range(1, 36))


def test_two_sinks_claiming_the_position_is_a_config_error(
    sqlite_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "changes.jsonl"
    jsonl_log(log, 1, 3)
    write_config(tmp_path, {"eo": {
        "source": {"type": "jsonl", "path": str(log)},
        "sinks": [{"type": "sql", "url": sqlite_url, "exactly_once": True},
                  {"type": "sql", "url": f"{sqlite_url}2", "exactly_once": True}],
    }})
    result = run_meepo("run", "eo", "--once", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "sinks[0] sql and sinks[1] sql both claim the pipeline's position" in lines[0]
    assert "tool.meepo.pipelines.eo.sinks" in lines[0]
    with pytest.raises(SQLAlchemyError):
        query(sqlite_url, "SELECT * FROM meepo_positions")  # nothing written


def test_check_reports_what_exactly_once_needs(mariadb_url: str, tmp_path: Path) -> None:
    """A MyISAM table has no transactions: ``meepo check`` names it and the fix."""
    execute(mariadb_url, "CREATE TABLE items (id INT PRIMARY KEY, v INT) ENGINE=MyISAM")
    log = tmp_path / "changes.jsonl"
    jsonl_log(log, 1, 1)
    write_config(tmp_path, {"eo": {
        "source": {"type": "jsonl", "path": str(log)},
        "sinks": [{"type": "sql", "url": mariadb_url, "exactly_once": True}],
    }})
    result = run_meepo("check", "eo", cwd=tmp_path)
    assert result.returncode == 1
    assert "table items uses the MyISAM engine, which has no transactions" in (
        result.stdout + result.stderr)
    execute(mariadb_url, "ALTER TABLE items ENGINE=InnoDB")
    assert run_meepo("check", "eo", cwd=tmp_path).returncode == 0


def test_check_names_a_missing_right_to_create_the_position_table(
    mysql_db: Any, tmp_path: Path
) -> None:
    server = mysql_db.server
    user = f"ro_{mysql_db.name[-8:]}"
    mysql_db.execute("CREATE TABLE items (id INT PRIMARY KEY, v INT)")
    for host in ("%", "localhost"):
        mysql_db.execute(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY 'pw'")
        mysql_db.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{mysql_db.name}`.* TO "
                         f"'{user}'@'{host}'")
    url = f"mysql+pymysql://{user}:pw@{server.host}:{server.port}/{mysql_db.name}"
    sink = build(url, tmp_path)
    try:
        problems = sink.check()
    finally:
        sink.close()
    assert problems == ["exactly_once: the user may not create the position table "
                        "meepo_positions; grant it CREATE (or create the table as the README "
                        "shows)"]
    assert build(mysql_db_url(mysql_db), tmp_path).check() == []


def mysql_db_url(mysql_db: Any) -> str:
    server = mysql_db.server
    return (f"mysql+pymysql://{server.user}:{server.password}@{server.host}:{server.port}/"
            f"{mysql_db.name}")


def test_an_owner_before_other_sinks_is_a_config_error(sqlite_url: str, tmp_path: Path) -> None:
    """Sinks after the owner could miss a batch it committed just before a crash."""
    log = tmp_path / "changes.jsonl"
    jsonl_log(log, 1, 3)
    write_config(tmp_path, {"eo": {
        "source": {"type": "jsonl", "path": str(log)},
        "sinks": [{"type": "sql", "url": sqlite_url, "exactly_once": True},
                  {"type": "jsonl", "path": str(tmp_path / "out.jsonl")}],
    }})
    result = run_meepo("run", "eo", "--once", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "sinks[0] sql owns the pipeline's position" in lines[0]
    assert "move it to the end of sinks" in lines[0]
    assert not (tmp_path / "out.jsonl").exists()


def test_a_source_transaction_split_over_batches_commits_whole(
    db_url: str, tmp_path: Path
) -> None:
    """Only the last batch of a large source transaction carries its position: the batches
    before it wait in one open transaction, so a crash before the last leaves none of them
    (the run replays the whole transaction from the stored position)."""
    execute(db_url, "CREATE TABLE items (id INT PRIMARY KEY, v INT)")
    sink = build(db_url, tmp_path)
    sink.open(make_context(tmp_path, "orders"))
    sink.apply(Batch((write(1, 1),), {"lsn": 1}))
    sink.apply(Batch((write(2, 2), write(3, 3)), None))
    sink.apply(Batch((write(4, 4),), None))
    assert query(db_url, "SELECT id FROM items ORDER BY id") == [(1,)]  # not yet visible
    sink.close()  # the process ends before the transaction's last batch
    assert query(db_url, "SELECT id FROM items ORDER BY id") == [(1,)]
    assert build(db_url, tmp_path).stored_position("orders") == {"lsn": 1}

    sink = build(db_url, tmp_path)
    sink.open(make_context(tmp_path, "orders"))
    try:
        sink.apply(Batch((write(2, 2), write(3, 3)), None))
        sink.apply(Batch((write(4, 4),), None))
        sink.apply(Batch((write(5, 5),), {"lsn": 2}))
    finally:
        sink.close()
    assert query(db_url, "SELECT id FROM items ORDER BY id") == [(1,), (2,), (3,), (4,), (5,)]
    assert build(db_url, tmp_path).stored_position("orders") == {"lsn": 2}
