"""Unchanged TOAST values through real sinks: a 1 MB text column survives an update of
another column in a SQL replica (meepo-sqlalchemy's ``sql`` sink) and in Elasticsearch
(meepo-es), because the source marks it UNCHANGED instead of sending NULL."""

from __future__ import annotations

import json
import random
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from meepo_core.testing import run_meepo, write_config

pytestmark = pytest.mark.integration

BIG = "".join(chr(ord("a") + i % 26) for i in range(1_000_000))


@pytest.fixture
def replica_db(postgres: Any) -> Any:
    name = f"replica_{uuid.uuid4().hex[:10]}"
    with postgres.connect(autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    with postgres.connect(name, autocommit=True) as conn:
        conn.execute("CREATE TABLE docs (id INT PRIMARY KEY, title TEXT, body TEXT)")
    yield name
    with postgres.connect(autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def prepare(harness: Any) -> None:
    harness.execute("CREATE TABLE docs (id INT PRIMARY KEY, title TEXT, body TEXT)",
                    "ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL")


def run_twice(harness: Any, tmp_path: Path, sink: dict[str, Any]) -> str:
    """Insert the big row, replicate; update another column, replicate."""
    write_config(tmp_path, {"toast": {"source": harness.options(), "sinks": [sink]}})
    created = run_meepo("run", "toast", "--once", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    harness.execute(f"INSERT INTO docs VALUES (1, 'first', '{BIG}')")
    inserted = run_meepo("run", "toast", "--once", cwd=tmp_path)
    assert inserted.returncode == 0, inserted.stderr
    harness.execute("UPDATE docs SET title = 'second' WHERE id = 1")
    updated = run_meepo("run", "toast", "--once", cwd=tmp_path)
    assert updated.returncode == 0, updated.stderr
    return updated.stderr[-3000:]


def test_big_text_survives_an_update_in_the_sql_replica(
    harness: Any, replica_db: str, tmp_path: Path
) -> None:
    pytest.importorskip("meepo_sqlalchemy", reason="needs the sql sink (meepo-sqlalchemy)")
    prepare(harness)
    url = f"postgresql://postgres@{harness.server.host}:{harness.server.port}/{replica_db}"
    log = run_twice(harness, tmp_path, {"type": "sql", "url": url,
                                        "tables": {f"{harness.schema}.docs": "docs"}})
    with harness.server.connect(replica_db) as conn:
        row = conn.execute("SELECT id, title, body FROM docs").fetchone()
    assert row == (1, "second", BIG), log


def test_big_text_survives_an_update_in_elasticsearch(
    harness: Any, es_server: Any, tmp_path: Path
) -> None:
    pytest.importorskip("meepo_es", reason="needs the elasticsearch sink (meepo-es)")
    prepare(harness)
    index = f"toast_{uuid.uuid4().hex[:8]}"
    log = run_twice(harness, tmp_path, {"type": "elasticsearch", "hosts": [es_server.url],
                                        "index": index, "refresh": "true"})
    with urllib.request.urlopen(f"{es_server.url}/{index}/_doc/1") as response:
        document = json.load(response)["_source"]
    assert document == {"id": 1, "title": "second", "body": BIG}, log


def test_replayed_updates_of_rows_deleted_later_are_not_dead_lettered(
    harness: Any, replica_db: str, tmp_path: Path
) -> None:
    """The range after a checkpoint is applied, then read and applied again, as a restart
    after a SIGKILL does: the replayed updates of rows that the range deletes later find no
    row and are skipped, not dead-lettered; an update of a row never copied into the target
    (a real gap) is dead-lettered once, when first applied."""
    pytest.importorskip("meepo_sqlalchemy", reason="needs the sql sink (meepo-sqlalchemy)")
    from meepo_sqlalchemy.sql_sink import SqlSink

    from meepo_core import Delivery, Options

    prepare(harness)
    harness.execute(f"INSERT INTO docs VALUES (9, 'before the pipeline', '{BIG}')")
    checkpoint = harness.begin()
    harness.execute(*[f"INSERT INTO docs VALUES ({i}, 'first', '{BIG}')" for i in range(1, 7)])
    url = f"postgresql://postgres@{harness.server.host}:{harness.server.port}/{replica_db}"
    options = {"type": "sql", "url": url, "tables": {f"{harness.schema}.docs": "docs"}}
    context = harness.context(batch_size=2)

    def apply(batches: list[Any]) -> None:
        """Through a new sink, as a new process has."""
        sink = SqlSink.from_options(Options(options, "sinks[0]", tmp_path))
        with Delivery([("sinks[0] sql", sink)], context) as delivery:
            for batch in batches:
                delivery.apply(batch)
            delivery.sync()
        labels.add(sink.label)

    labels: set[str] = set()
    apply(harness.batches(checkpoint, batch_size=2))  # checkpointed and acknowledged
    checkpoint = harness.drain(checkpoint)[1]
    # Each statement its own transaction: updates of every row, then deletes.
    harness.execute(*[f"UPDATE docs SET title = 'second' WHERE id = {i}"
                      for i in (1, 2, 3, 4, 5, 6, 9)],
                    "DELETE FROM docs WHERE id = 1", "DELETE FROM docs WHERE id = 2",
                    "DELETE FROM docs WHERE id = 3")
    first = harness.batches(checkpoint, batch_size=2, ack=False)
    assert sum(1 for b in first for e in b.events if e.action == "update") == 7
    apply(first)  # ... and the process is killed before the checkpoint
    letters = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert [letter["event"]["pk"] for letter in letters] == [9]  # the real gap
    assert "copy the row into the target (a backfill)" in letters[0]["error"]
    apply(harness.batches(checkpoint, batch_size=2, ack=False))  # the replay
    replayed = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert replayed == letters  # nothing more dead-lettered
    # rows 1-3, and row 9, whose dead letter was written when first applied
    [label] = labels
    assert context.metrics.failures[(label, "replayed_patch_row_gone")] == 4
    with harness.server.connect(replica_db) as conn:
        rows = conn.execute("SELECT id, title, body = %s FROM docs ORDER BY id", (BIG,)).fetchall()
    assert rows == [(4, "second", True), (5, "second", True), (6, "second", True)]


@pytest.mark.slow
def test_sigkill_at_random_points_dead_letters_no_replayed_toast_update(
    harness: Any, replica_db: str, tmp_path: Path
) -> None:
    """A writer inserts rows with an out-of-line (TOAST) note, updates another column (the
    note is not sent: a patch) and deletes rows, while ``meepo run`` into the ``sql`` sink
    is killed with SIGKILL at random points. The restarts replay updates of rows deleted
    later in the replay: none is dead-lettered, and the replica ends equal to the source."""
    pytest.importorskip("meepo_sqlalchemy", reason="needs the sql sink (meepo-sqlalchemy)")
    from meepo_testkit.crash import ChangeWriter, kill_at_random_points

    from meepo_core.testing import meepo_command

    from .test_postgres_crash import transactions

    harness.execute(
        "CREATE TABLE t (id INT PRIMARY KEY, v INT, note TEXT)",
        "ALTER TABLE t ALTER COLUMN note SET STORAGE EXTERNAL",  # out of line, uncompressed
        "CREATE FUNCTION big_note() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "NEW.note := repeat(md5(NEW.id::text), 100); RETURN NEW; END $$",
        "CREATE TRIGGER big_note BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION big_note()",
    )
    with harness.server.connect(replica_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT, note TEXT)")
    url = f"postgresql://postgres@{harness.server.host}:{harness.server.port}/{replica_db}"
    write_config(tmp_path, {"replica": {
        "source": harness.options(tables=[f"{harness.schema}.t"]),
        "sinks": [{"type": "sql", "url": url, "tables": {f"{harness.schema}.t": "t"}}],
        "checkpoint": "file:.meepo/replica.json", "batch_size": 40, "batch_wait": 0.05,
    }})
    created = run_meepo("run", "replica", "--once", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    writer = ChangeWriter(lambda: transactions(harness))
    writer.start()
    try:
        kills = kill_at_random_points(meepo_command("run", "replica"), tmp_path, runs=6,
                                      rng=random.Random(5), seconds=(1.5, 4.5))
    finally:
        writer.stop.set()
        writer.join(10)
    assert writer.error is None, writer.error
    assert kills >= 5, (tmp_path / "run.log").read_text()
    final = run_meepo("run", "replica", "--once", cwd=tmp_path, timeout=120)
    assert final.returncode == 0, final.stderr
    dead = tmp_path / ".meepo" / "replica.dead.jsonl"
    letters = dead.read_text().splitlines() if dead.exists() else []
    assert letters == [], f"{len(letters)} dead letters: {letters[0][:400]}"
    assert sum(1 for c in writer.changes if c[0] == "delete") > 20
    source = harness.query("SELECT id, v, md5(note) FROM t ORDER BY id")
    with harness.server.connect(replica_db) as conn:
        replica = conn.execute("SELECT id, v, md5(note) FROM t ORDER BY id").fetchall()
    assert replica == source
