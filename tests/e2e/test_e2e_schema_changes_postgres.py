"""DDL torture on PostgreSQL through the real CLI: while a writer keeps changing rows,
another session adds, drops, renames and retypes columns, adds a table to the publication,
truncates and renames tables. After every statement the ``sql`` replica (another
PostgreSQL database) has the source's columns and rows, and the Elasticsearch documents
hold the new fields; the stream never stops. Then the pipeline is SIGKILLed between a DDL
and the next row and resumes with the right shape."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from meepo_e2e_kit import es_docs, wait_until

from meepo_core.testing import meepo_command, write_config

pytest.importorskip("meepo_postgres", reason="needs the postgres plugin")
pytest.importorskip("meepo_sqlalchemy", reason="needs the sqlalchemy plugin")
pytest.importorskip("meepo_es", reason="needs the es plugin")

#: (statements, the tables whose shape they change): run in the source, one step each.
STEPS: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (("ALTER TABLE t ADD COLUMN c text",), ("t",)),
    (("ALTER TABLE t ADD COLUMN d integer NOT NULL DEFAULT 5",), ("t",)),
    (("ALTER TABLE t RENAME COLUMN a TO a2",), ("t",)),
    (("ALTER TABLE t ALTER COLUMN b TYPE bigint",), ("t",)),
    (("ALTER TABLE t ALTER COLUMN a2 TYPE text",), ("t",)),
    (("ALTER TABLE t DROP COLUMN c",), ("t",)),
    (("ALTER TABLE t ALTER COLUMN d DROP NOT NULL",), ("t",)),
    (("ALTER TABLE t ADD COLUMN e numeric(10,2) DEFAULT 1.5",), ("t",)),
    (("ALTER TABLE t ALTER COLUMN e TYPE numeric(12,2)",), ("t",)),
    (("ALTER TABLE t ADD COLUMN f varchar(10), ADD COLUMN g timestamptz",), ("t",)),
    (("ALTER TABLE t ALTER COLUMN f TYPE varchar(40)",), ("t",)),
    (("CREATE TABLE u (id integer PRIMARY KEY, v varchar(20))",
      "ALTER PUBLICATION {publication} ADD TABLE u",
      "INSERT INTO u SELECT g, 'u' || g FROM generate_series(1, 5) g"), ("u",)),
    (("ALTER TABLE u ADD COLUMN w numeric(8,3)",), ("u",)),
    (("ALTER TABLE u RENAME COLUMN v TO v2",), ("u",)),
    (("TRUNCATE u", "INSERT INTO u (id, v2) VALUES (100, 'after truncate')"), ("u",)),
    (("ALTER TABLE u DROP COLUMN w, ADD COLUMN x boolean DEFAULT true",), ("u",)),
    (("ALTER TABLE t RENAME TO t2",), ("t2",)),
    (("ALTER TABLE t2 ADD COLUMN h integer DEFAULT 7",), ("t2",)),
]


def connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url.replace("+psycopg", ""), autocommit=True)


def shape(url: str, table: str) -> list[tuple[str, str]]:
    """Columns and types in table order, as the catalog spells them."""
    with connect(url) as conn:
        return [(str(n), str(t)) for n, t in conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped "
            "ORDER BY attnum", (f"public.{table}",)).fetchall()]


def rows(url: str, table: str) -> list[tuple[Any, ...]]:
    with connect(url) as conn:
        if conn.execute("SELECT to_regclass(%s)", (f"public.{table}",)).fetchone() == (None,):
            return []
        return [tuple(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()]


def _ids(these: list[tuple[Any, ...]], those: list[tuple[Any, ...]]) -> list[Any]:
    return sorted(r[0] for r in set(these) - set(those))[:20]


class Writer(threading.Thread):
    """Inserts, touches (``UPDATE ... SET id = id``) and deletes rows of ``table`` by key
    only, so every statement fits whatever shape the table has; paused while ``lock``
    is held elsewhere."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.table = "t"
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.statements = 0
        self._next = 1000

    def run(self) -> None:
        rng = random.Random(20)
        try:
            with connect(self.url) as conn:
                while not self.stopping.is_set():
                    with self.lock:
                        roll = rng.random()
                        if roll < 0.5:
                            self._next += 1
                            conn.execute(f"INSERT INTO {self.table} (id) VALUES ({self._next})")
                        elif roll < 0.85:
                            conn.execute(f"UPDATE {self.table} SET id = id WHERE id = "
                                         f"{rng.randint(1000, self._next)}")
                        else:
                            conn.execute(f"DELETE FROM {self.table} WHERE id = "
                                         f"{rng.randint(1000, self._next)}")
                        self.statements += 1
                    time.sleep(0.005)
        except BaseException as exc:
            self.error = exc


class Pipeline:
    """``meepo run ddl`` in a subprocess, restartable."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        log = (self.directory / f"run{self.runs}.log").open("wb")
        self.process = subprocess.Popen(meepo_command("run", "ddl"), cwd=self.directory,
                                        stdout=log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)

    def output(self) -> str:
        return "\n".join(p.read_text(errors="replace")
                         for p in sorted(self.directory.glob("run*.log")))


@pytest.fixture
def replica_url(postgres: Any) -> Iterator[str]:
    name = f"r_{uuid.uuid4().hex[:12]}"
    with postgres.connect("postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@{postgres.host}:{postgres.port}/{name}"
    finally:
        with postgres.connect("postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drop_slot(url: str, slot: str) -> None:
    with connect(url) as conn:
        for _ in range(100):
            found = conn.execute("SELECT active_pid FROM pg_replication_slots "
                                 "WHERE slot_name = %s", (slot,)).fetchone()
            if found is None:
                return
            if found[0] is None:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                return
            conn.execute("SELECT pg_terminate_backend(%s)", (found[0],))
            time.sleep(0.1)


def test_ddl_torture_keeps_the_replica_and_the_index_equal_to_the_source(
    postgres_db_url: str, replica_url: str, es_server: Any, es_prefix: str, tmp_path: Path,
) -> None:
    source_url = postgres_db_url
    slot, publication = f"ddl_{uuid.uuid4().hex[:8]}", f"ddl_{uuid.uuid4().hex[:8]}"
    with connect(source_url) as conn:
        conn.execute("CREATE TABLE t (id integer PRIMARY KEY, a varchar(20), b integer)")
    write_config(tmp_path, {"ddl": {
        "source": {"type": "postgres", "dsn": source_url.replace("+psycopg", ""),
                   "tables": ["public.*"], "slot": slot, "publication": publication,
                   "heartbeat": 1},
        "sinks": [{"type": "sql", "url": replica_url},
                  {"type": "elasticsearch", "hosts": [es_server.url],
                   "index": es_prefix + "_{table}"},
                  {"type": "jsonl", "path": "changes.jsonl"}],
        "checkpoint": "file:.meepo/ddl.json", "batch_wait": 0.05,
    }})
    pipeline = Pipeline(tmp_path)
    writer = Writer(source_url)
    pipeline.start()
    try:
        wait_until(lambda: (tmp_path / ".meepo" / "ddl.json").exists(), 60,
                   "the pipeline's first checkpoint")
        with connect(source_url) as conn:
            conn.execute("INSERT INTO t SELECT g, 'a' || g, g FROM generate_series(1, 20) g")
        writer.start()
        wait_until(lambda: writer.statements > 20, 30, "the writer's first statements")

        def in_sync(table: str) -> bool:
            return (shape(source_url, table) == shape(replica_url, table)
                    and rows(source_url, table) == rows(replica_url, table))

        def step(statements: tuple[str, ...], tables: tuple[str, ...]) -> None:
            renames_t = "RENAME TO t2" in statements[0]
            with writer.lock if renames_t else contextlib.nullcontext(), \
                    connect(source_url) as conn:
                for statement in statements:
                    conn.execute(statement.format(publication=publication))
                if renames_t:
                    writer.table = "t2"
            with writer.lock, connect(source_url) as conn:  # the writer waits meanwhile
                for table in tables:  # one row of the new shape, for the stream to see it
                    conn.execute(f"UPDATE {table} SET id = id WHERE id = "
                                 f"(SELECT max(id) FROM {table})")
                for table in tables:
                    try:
                        wait_until(lambda table=table: in_sync(table), 60,  # type: ignore[misc]
                                   f"{table} in sync after {statements[0]!r}")
                    except AssertionError as exc:
                        source, replica = rows(source_url, table), rows(replica_url, table)
                        raise AssertionError(
                            f"{exc}\nsource {shape(source_url, table)}\nreplica "
                            f"{shape(replica_url, table)}\nonly in the source "
                            f"{_ids(source, replica)}\nonly in the replica "
                            f"{_ids(replica, source)}\nwriter error: {writer.error!r}"
                        ) from None
                    newest = max(r[0] for r in rows(source_url, table))
                    columns = {name for name, _ in shape(source_url, table)}
                    wait_until(lambda table=table, newest=newest, columns=columns: set(  # type: ignore[misc]
                        es_docs(es_server.url, f"{es_prefix}_{table}").get(newest, {}))
                        == columns, 30, f"the ES document of {table} {newest} with {columns}")
            assert pipeline.alive(), pipeline.output()
            assert writer.error is None, writer.error

        for statements, tables in STEPS:
            time.sleep(0.5)  # the writer writes in the old shape, then the DDL meets it
            step(statements, tables)

        # SIGKILL between a DDL and the next row: the restart must bring the new shape
        with writer.lock:
            with connect(source_url) as conn:
                conn.execute("ALTER TABLE t2 ADD COLUMN k integer DEFAULT 3")
            pipeline.kill()
            with connect(source_url) as conn:
                conn.execute("INSERT INTO t2 (id, k) VALUES (5000, 4)")
            pipeline.start()
            wait_until(lambda: in_sync("t2"), 90, "t2 in sync after the SIGKILL restart")
        assert ("k", "integer") in shape(replica_url, "t2")

        # every document holds the source's fields once its row is written again
        writer.stopping.set()
        writer.join(10)
        with connect(source_url) as conn:
            conn.execute("UPDATE t2 SET id = id")
        columns = {name for name, _ in shape(source_url, "t2")}
        ids = {r[0] for r in rows(source_url, "t2")}

        def index_holds_the_table() -> bool:
            docs = es_docs(es_server.url, f"{es_prefix}_t2")
            return set(docs) == ids and all(set(doc) == columns for doc in docs.values())

        wait_until(index_holds_the_table, 60, "every t2 document with every column")
        assert in_sync("t2") and in_sync("u")
        assert writer.error is None and writer.statements > 100, (writer.error,
                                                                  writer.statements)
        assert pipeline.stop() == 0, pipeline.output()
        output = pipeline.output()
        assert "dead letter" not in output, output
        assert not (tmp_path / ".meepo" / "ddl.dead.jsonl").exists()
        assert "Traceback" not in output, output
    finally:
        writer.stopping.set()
        if pipeline.alive():
            pipeline.kill()
        drop_slot(source_url, slot)
        with connect(source_url) as conn:
            conn.execute(f"DROP PUBLICATION IF EXISTS {publication}")
    print(json.dumps({"steps": len(STEPS) + 1, "writer_statements": writer.statements}))
