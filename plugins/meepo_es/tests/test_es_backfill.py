"""Backfill: pk-ordered snapshot reads from MariaDB, versioned indices, atomic alias swap,
and the whole ``meepo es backfill`` command (that part needs the mysql source plugin)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from meepo_es.indices import next_versioned_name, swap_alias
from meepo_es.mysql_snapshot import (
    SourceDatabase,
    binlog_position,
    primary_key,
    read_chunks,
    resolve_tables,
)

from meepo_core.testing import meepo_command, run_meepo, write_config

#: Backfills read MySQL tables: these run in the integration session with every plugin.
pytestmark = pytest.mark.integration

def _source(mysql_db: Any, tables: list[str], **extra: Any) -> dict[str, Any]:
    return {"type": "mysql", "dsn": mysql_db.server.dsn, "tables": tables, **extra}


def test_snapshot_reads_rows_in_pk_order_in_chunks(mysql_db: Any) -> None:
    mysql_db.execute("CREATE TABLE pairs (a VARCHAR(8), b INT, secret VARCHAR(8), "
                     "ts TIMESTAMP(3) NULL, doc JSON, PRIMARY KEY (a, b))")
    values = [(a, b) for a in ("x", "y") for b in range(12)]
    for a, b in reversed(values):
        mysql_db.execute("INSERT INTO pairs VALUES (%s, %s, 'pw', '2026-01-02 03:04:05.678', "
                         "'{\"k\": [1, 2]}')", a, b)
    mysql_db.execute("CREATE TABLE other (id INT PRIMARY KEY)")
    db = SourceDatabase.from_source(
        _source(mysql_db, [f"{mysql_db.name}.p*"], exclude_tables=[f"{mysql_db.name}.nope"],
                columns={f"{mysql_db.name}.pairs": {"exclude": ["secret"]}}), "source")
    conn = db.connect()
    try:
        assert resolve_tables(conn, db) == [f"{mysql_db.name}.pairs"]
        assert primary_key(conn, mysql_db.name, "pairs") == ["a", "b"]
        file, pos = binlog_position(conn)
        assert file and pos >= 4

        def hide(columns: list[str]) -> set[str]:
            return db.hidden_columns(f"{mysql_db.name}.pairs", columns)

        chunks = list(read_chunks(conn, mysql_db.name, "pairs", ["a", "b"], 10, hide))
    finally:
        conn.close()
    assert [len(chunk) for chunk in chunks] == [10, 10, 4]
    rows = [row for chunk in chunks for row in chunk]
    assert [(row["a"], row["b"]) for row in rows] == values
    assert rows[0] == {"a": "x", "b": 0, "ts": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
                       "doc": {"k": [1, 2]}}


def test_swap_alias_is_atomic_and_replaces_a_concrete_index(
    es: Elasticsearch, prefix: str, read_index: Any
) -> None:
    name = f"{prefix}_orders"
    es.index(index=name, id="old", document={"v": 0}, refresh=True)  # the sink's own index
    assert next_versioned_name(es, name) == f"{name}_v1"
    es.indices.create(index=f"{name}_v1")
    es.index(index=f"{name}_v1", id="1", document={"v": 1}, refresh=True)
    assert swap_alias(es, name, f"{name}_v1") == [name]
    assert es.indices.get_alias(name=name).body == {f"{name}_v1": {"aliases": {name: {}}}}
    es.index(index=name, id="2", document={"v": 2})  # a writer going through the alias
    assert read_index(f"{name}_v1") == {"1": {"v": 1}, "2": {"v": 2}}

    assert next_versioned_name(es, name) == f"{name}_v2"
    es.indices.create(index=f"{name}_v2")
    assert swap_alias(es, name, f"{name}_v2") == [f"{name}_v1"]
    assert list(es.indices.get_alias(name=name).body) == [f"{name}_v2"]
    assert read_index(f"{name}_v1") == {"1": {"v": 1}, "2": {"v": 2}}  # old index kept


def _expected(rows: list[tuple[Any, ...]]) -> dict[str, dict[str, Any]]:
    return {str(r[0]): {"id": r[0], "name": r[1], "price": str(r[2])} for r in rows}


def test_backfill_then_alias_swap_with_the_pipeline_writing_through_the_alias(
    mysql_db: Any, es: Elasticsearch, es_server: Any, prefix: str, read_index: Any,
    tmp_path: Path,
) -> None:
    pytest.importorskip("meepo_mysql", reason="the backfill catches up through the mysql source")
    mysql_db.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), "
                     "price DECIMAL(8,2))")
    for i in range(1, 251):
        mysql_db.execute("INSERT INTO items VALUES (%s, %s, %s)", i, f"n{i}", Decimal(i) / 4)
    alias = f"{prefix}_items"
    sink = {"type": "elasticsearch", "hosts": [es_server.url], "index": prefix + "_{table}",
            "tables": {"items": {"mappings": {"properties": {"name": {"type": "keyword"}}}}}}
    write_config(tmp_path, {"p": {"source": _source(mysql_db, [f"{mysql_db.name}.items"]),
                                  "sinks": [sink]}})
    # The live pipeline starts at "latest": it knows nothing of the 250 existing rows.
    live = run_meepo("run", "p", "--once", cwd=tmp_path)
    assert live.returncode == 0, live.stderr
    mysql_db.execute("UPDATE items SET name = 'live' WHERE id = 1")
    live = run_meepo("run", "p", "--once", cwd=tmp_path)
    assert live.returncode == 0, live.stderr
    assert read_index(alias) == {"1": {"id": 1, "name": "live", "price": "0.25"}}

    done = run_meepo("es", "backfill", "p", "--chunk-size", "40", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{mysql_db.name}.items" in done.stderr  # the progress bar's label, on stderr
    assert f"{alias} -> {alias}_v1" in done.stderr
    assert list(es.indices.get_alias(name=alias).body) == [f"{alias}_v1"]
    mapping = es.indices.get_mapping(index=f"{alias}_v1").body[f"{alias}_v1"]["mappings"]
    assert mapping["properties"]["name"] == {"type": "keyword"}

    # The pipeline keeps writing through the alias, now into the new index.
    mysql_db.execute("DELETE FROM items WHERE id = 2")
    mysql_db.execute("INSERT INTO items VALUES (251, 'new', 1.00)")
    live = run_meepo("run", "p", "--once", cwd=tmp_path)
    assert live.returncode == 0, live.stderr
    table = mysql_db.execute("SELECT id, name, price FROM items ORDER BY id")
    assert read_index(alias) == _expected(table)

    again = run_meepo("es", "backfill", "p", "--no-progress", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert list(es.indices.get_alias(name=alias).body) == [f"{alias}_v2"]
    assert read_index(alias) == _expected(table)
    assert read_index(f"{alias}_v1") == _expected(table)  # the previous index is kept


def test_backfill_refuses_a_pipeline_without_an_elasticsearch_sink(
    mysql_db: Any, tmp_path: Path
) -> None:
    pytest.importorskip("meepo_mysql", reason="the pipeline's source type is mysql")
    write_config(tmp_path, {"p": {"source": _source(mysql_db, [f"{mysql_db.name}.items"]),
                                  "sinks": [{"type": "print"}]}})
    done = run_meepo("es", "backfill", "p", cwd=tmp_path)
    assert done.returncode == 2
    assert "tool.meepo.pipelines.p.sinks: no elasticsearch sink" in done.stderr


def test_backfill_needs_a_mysql_dsn(tmp_path: Path, es_server: Any) -> None:
    (tmp_path / "e.jsonl").write_text("")
    write_config(tmp_path, {"p": {"source": {"type": "jsonl", "path": "e.jsonl"},
                                  "sinks": [{"type": "elasticsearch",
                                             "hosts": [es_server.url]}]}})
    done = run_meepo("es", "backfill", "p", cwd=tmp_path)
    assert done.returncode == 2
    assert "tool.meepo.pipelines.p.source.dsn: the backfill reads the source database" in (
        done.stderr), done.stderr


def test_backfill_while_the_live_pipeline_runs_and_rows_change(
    mysql_db: Any, es_server: Any, prefix: str, read_index: Any, tmp_path: Path,
) -> None:
    """Inserts and updates keep committing while the live pipeline follows them and the
    backfill copies, catches up and swaps; afterwards the alias equals the table.
    (No deletes here: reordered deletes need tombstones, which noida-db lacks.)"""
    pytest.importorskip("meepo_mysql", reason="the backfill catches up through the mysql source")
    mysql_db.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), "
                     "price DECIMAL(8,2))")
    for i in range(1, 401):
        mysql_db.execute("INSERT INTO items VALUES (%s, %s, %s)", i, f"n{i}", Decimal(i) / 4)
    sink = {"type": "elasticsearch", "hosts": [es_server.url], "index": prefix + "_{table}"}
    write_config(tmp_path, {"p": {"source": _source(mysql_db, [f"{mysql_db.name}.items"]),
                                  "sinks": [sink], "batch_wait": 0.05}})
    live_log = (tmp_path / "live.log").open("w")
    live = subprocess.Popen(meepo_command("--log-level", "debug", "run", "p"), cwd=tmp_path,
                            env=dict(os.environ), stdout=live_log, stderr=live_log)
    stop = threading.Event()

    def workload() -> None:
        next_id = 1000
        with mysql_db.connect(autocommit=True) as conn, conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("UPDATE items SET name = %s WHERE id = %s",
                            (f"u{next_id}", next_id % 400 + 1))
                cur.execute("INSERT INTO items VALUES (%s, 'w', 1.5)", (next_id,))
                next_id += 1
                time.sleep(0.005)

    writer = threading.Thread(target=workload)
    try:
        deadline = time.monotonic() + 30
        while "mysql source:" not in (tmp_path / "live.log").read_text():
            assert time.monotonic() < deadline and live.poll() is None, "live pipeline down"
            time.sleep(0.05)  # until the live pipeline has fixed its "latest" start
        writer.start()
        done = run_meepo("es", "backfill", "p", "--chunk-size", "50", "--no-progress",
                         cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        time.sleep(0.5)  # some writes after the swap, through the alias
        stop.set()
        writer.join(10)
        table = _expected(mysql_db.execute("SELECT id, name, price FROM items"))
        deadline = time.monotonic() + 60
        while read_index(f"{prefix}_items") != table and time.monotonic() < deadline:
            time.sleep(0.5)  # the live pipeline drains what was committed last
        got = read_index(f"{prefix}_items")
        if got != table:  # show both writers' logs with the failure
            print(done.stderr, (tmp_path / "live.log").read_text()[-6000:], file=sys.stderr)
        assert got == table
        assert len(table) > 400
    finally:
        stop.set()
        live.send_signal(signal.SIGTERM)
        try:
            live.wait(20)
        except subprocess.TimeoutExpired:
            live.kill()
            live.wait(10)
    assert live.returncode == 0
