"""DDL torture on MariaDB through the real CLI: while a writer keeps changing rows, another
session runs more than 40 DDL statements (columns added with AFTER/FIRST, dropped, renamed
by CHANGE and RENAME COLUMN, widened, moved; indexes and the primary key; character sets;
ENUM and SET extensions; ALGORITHM=INSTANT; comments with odd quoting; a DDL inside a
``/*!40101 ... */`` comment; partitions; CREATE TABLE IF NOT EXISTS on an existing table,
... LIKE, ... SELECT; RENAME TABLE chains and swaps; DROP and re-create with another shape
and a generated column; TRUNCATE; CREATE and DROP DATABASE). After every statement the
``sql`` replica (another MariaDB database) has the source's columns and types and its rows
equal a ``SELECT``, and the Elasticsearch document of the newest row holds the new fields;
the stream never stops and nothing is a dead letter. Then the pipeline is SIGKILLed
between a DDL and the next row and resumes with the right shape."""

from __future__ import annotations

import contextlib
import random
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from meepo_e2e_kit import binlog_end, es_docs, wait_until

from meepo_core.testing import meepo_command, write_config

pytest.importorskip("meepo_mysql", reason="needs the mysql plugin")
pytest.importorskip("meepo_sqlalchemy", reason="needs the sqlalchemy plugin")
pytest.importorskip("meepo_es", reason="needs the es plugin")

#: (statements, tables to check after them). A check inserts a row of the new shape first.
STEPS: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (("ALTER TABLE t ADD COLUMN c varchar(30)",), ("t",)),
    (("ALTER TABLE t ADD COLUMN d int NOT NULL DEFAULT 5 AFTER id",), ("t",)),
    (("ALTER TABLE t ADD COLUMN e int FIRST",), ("t",)),
    (("ALTER TABLE t DROP COLUMN e",), ("t",)),
    (("ALTER TABLE t CHANGE COLUMN a a2 varchar(20)",), ("t",)),
    (("ALTER TABLE t RENAME COLUMN a2 TO a3",), ("t",)),
    (("ALTER TABLE t MODIFY COLUMN a3 varchar(60)",), ("t",)),
    (("ALTER TABLE t MODIFY COLUMN b bigint AFTER id",), ("t",)),
    (("ALTER TABLE t MODIFY COLUMN c varchar(30) FIRST",), ("t",)),
    (("ALTER TABLE t ADD INDEX ib (b)",), ("t",)),
    (("ALTER TABLE t DROP INDEX ib",), ("t",)),
    (("ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (id)",), ("t",)),
    (("ALTER TABLE t MODIFY COLUMN c varchar(30) CHARACTER SET latin1",), ("t",)),
    (("ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4",), ("t",)),
    (("ALTER TABLE t ADD COLUMN f enum('x','y') DEFAULT 'x'",), ("t",)),
    (("ALTER TABLE t MODIFY COLUMN f enum('x','y','z') DEFAULT 'x'",), ("t",)),
    (("ALTER TABLE t ADD COLUMN g set('p','q')",), ("t",)),
    (("ALTER TABLE t MODIFY COLUMN g set('p','q','r')",), ("t",)),
    (("ALTER TABLE t ADD COLUMN h int DEFAULT 1, ALGORITHM=INSTANT",), ("t",)),
    (("ALTER TABLE t COMMENT 'it''s \"odd\" /* not a comment */ -- nor this'",), ("t",)),
    (("ALTER TABLE t MODIFY COLUMN h int DEFAULT 1 COMMENT 'a `quoted` and ''odd'' note'",),
     ("t",)),
    (("/*!40101 ALTER TABLE t ADD COLUMN m int */",), ("t",)),
    (("ALTER TABLE t PARTITION BY HASH(id) PARTITIONS 2",), ("t",)),
    (("ALTER TABLE t REMOVE PARTITIONING",), ("t",)),
    (("CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY)",), ("t",)),
    (("CREATE TABLE u LIKE t",), ("u",)),
    (("CREATE TABLE v (PRIMARY KEY (id)) SELECT id, a3 FROM t",), ("v",)),
    (("RENAME TABLE u TO u2",), ("u2",)),
    (("RENAME TABLE u2 TO u3, v TO v2",), ("u3", "v2")),
    (("RENAME TABLE u3 TO swap, v2 TO u3, swap TO v2",), ("u3", "v2")),
    (("DROP TABLE u3",), ()),
    (("CREATE TABLE u3 (id int PRIMARY KEY, other varchar(10), "
      "twice int AS (id * 2) PERSISTENT)",), ("u3",)),
    (("TRUNCATE TABLE v2",), ("v2",)),
    (("ALTER TABLE v2 ADD COLUMN n decimal(10,2) DEFAULT 1.50",), ("v2",)),
    (("ALTER TABLE v2 MODIFY COLUMN n decimal(12,2) DEFAULT 1.50",), ("v2",)),
    (("ALTER TABLE t RENAME TO t2",), ("t2",)),
    (("ALTER TABLE t2 ADD COLUMN p datetime(3) NULL",), ("t2",)),
    (("ALTER TABLE t2 DROP COLUMN m, DROP COLUMN g",), ("t2",)),
    (("ALTER TABLE t2 MODIFY COLUMN d int NULL DEFAULT 5",), ("t2",)),
    (("ALTER TABLE u3 ADD COLUMN later tinyint DEFAULT 0 FIRST",), ("u3",)),
    (("DROP TABLE v2",), ()),
    (("CREATE DATABASE {other}", "DROP DATABASE {other}"), ("t2",)),
]


class Writer(threading.Thread):
    """Inserts, updates (``b = b + 1``) and deletes rows of ``table`` by key, so every
    statement fits whatever shape it has; paused while ``lock`` is held elsewhere."""

    def __init__(self, db: Any) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.table = "t"
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.statements = 0
        self._next = 10_000

    def run(self) -> None:
        rng = random.Random(40)
        try:
            with self.db.connect(autocommit=True) as conn, conn.cursor() as cur:
                while not self.stopping.is_set():
                    with self.lock:
                        roll = rng.random()
                        if roll < 0.5:
                            self._next += 1
                            cur.execute(f"INSERT INTO {self.table} (id, b) VALUES "
                                        f"({self._next}, 1)")
                        elif roll < 0.85:
                            cur.execute(f"UPDATE {self.table} SET b = b + 1 WHERE id = "
                                        f"{rng.randint(10_000, self._next)}")
                        else:
                            cur.execute(f"DELETE FROM {self.table} WHERE id = "
                                        f"{rng.randint(10_000, self._next)}")
                        self.statements += 1
                    time.sleep(0.005)
        except BaseException as exc:
            self.error = exc


def columns(server: Any, database: str, table: str) -> dict[str, str]:
    return {str(n): str(t) for n, t in server.execute(
        "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE "
        "TABLE_SCHEMA = %s AND TABLE_NAME = %s", database, table, database=None)}


def rows(server: Any, database: str, table: str, names: list[str]) -> list[tuple[Any, ...]]:
    if not names:
        return []
    listed = ", ".join(f"`{n}`" for n in names)
    return [tuple(r) for r in server.execute(
        f"SELECT {listed} FROM `{database}`.`{table}` ORDER BY id", database=None)]


@pytest.fixture
def replica(mariadb: Any) -> Iterator[str]:
    name = f"r_{uuid.uuid4().hex[:12]}"
    mariadb.execute(f"CREATE DATABASE `{name}`", database=None)
    try:
        yield name
    finally:
        mariadb.execute(f"DROP DATABASE IF EXISTS `{name}`", database=None)


def test_mariadb_ddl_torture_keeps_the_replica_and_the_index_equal_to_the_source(
    mysql_db: Any, replica: str, es_server: Any, es_prefix: str, tmp_path: Path,
) -> None:
    server, source = mysql_db.server, mysql_db.name
    mysql_db.execute("CREATE TABLE t (id int PRIMARY KEY, a varchar(20), b int)")
    mysql_db.execute("INSERT INTO t SELECT seq, concat('a', seq), seq FROM seq_1_to_20")
    replica_url = (f"mysql+pymysql://{server.user}:{server.password}@{server.host}:"
                   f"{server.port}/{replica}")
    write_config(tmp_path, {"ddl": {
        "source": {"type": "mysql", "dsn": server.dsn, "tables": [f"{source}.*"],
                   "start": binlog_end(server), "heartbeat": 1},
        "sinks": [{"type": "sql", "url": replica_url},
                  {"type": "elasticsearch", "hosts": [es_server.url],
                   "index": es_prefix + "_{table}"},
                  {"type": "jsonl", "path": "changes.jsonl"}],
        "checkpoint": "file:.meepo/ddl.json", "batch_wait": 0.05,
    }})
    # the replica starts as a copy of the table (the stream starts after its rows)
    server.execute(f"CREATE TABLE `{replica}`.t LIKE `{source}`.t", database=None)
    server.execute(f"INSERT INTO `{replica}`.t SELECT * FROM `{source}`.t", database=None)
    logs: list[Path] = []
    process: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        logs.append(tmp_path / f"run{len(logs) + 1}.log")
        process.append(subprocess.Popen(meepo_command("run", "ddl"), cwd=tmp_path,
                                        stdout=logs[-1].open("wb"), stderr=subprocess.STDOUT))

    def output() -> str:
        return "\n".join(p.read_text(errors="replace") for p in logs)

    writer = Writer(mysql_db)
    touched: list[int] = []  # ids of the rows the checks insert, apart from the writer's
    start()
    try:
        wait_until(lambda: (tmp_path / ".meepo" / "ddl.json").exists(), 60,
                   "the pipeline's first checkpoint")
        writer.start()
        wait_until(lambda: writer.statements > 20, 30, "the writer's first statements")

        def in_sync(table: str) -> bool:
            wanted = columns(server, source, table)
            return (wanted == columns(server, replica, table)
                    and rows(server, source, table, list(wanted))
                    == rows(server, replica, table, list(wanted)))

        def step(statements: tuple[str, ...], tables: tuple[str, ...]) -> None:
            other = f"o_{uuid.uuid4().hex[:8]}"
            renames_t = "RENAME TO t2" in statements[0]
            with writer.lock if renames_t else contextlib.nullcontext():
                for statement in statements:
                    mysql_db.execute(statement.format(other=other))
                if renames_t:
                    writer.table = "t2"
            with writer.lock:
                for table in tables:  # a row of the new shape, for the stream to see it
                    touched.append(1_000_000 + len(touched))
                    mysql_db.execute(f"INSERT INTO `{table}` (id) VALUES ({touched[-1]})")
                for table in tables:
                    try:
                        wait_until(lambda table=table: in_sync(table), 60,  # type: ignore[misc]
                                   f"{table} in sync after {statements[0]!r}")
                    except AssertionError as exc:
                        wanted = columns(server, source, table)
                        raise AssertionError(
                            f"{exc}\nsource {wanted}\nreplica "
                            f"{columns(server, replica, table)}\n{output()[-3000:]}") from None
                    names = set(columns(server, source, table))
                    newest = max(r[0] for r in rows(server, source, table, ["id"]))
                    wait_until(lambda table=table, newest=newest, names=names: set(  # type: ignore[misc]
                        es_docs(es_server.url, f"{es_prefix}_{table}").get(newest, {}))
                        == names, 30, f"the ES document of {table} {newest} with {names}")
                for gone in ("u3",) if statements == ("DROP TABLE u3",) else ():
                    assert not columns(server, replica, gone)
            assert process[-1].poll() is None, output()[-3000:]
            assert writer.error is None, writer.error

        statements_run = 0
        for statements, tables in STEPS:
            time.sleep(0.3)  # the writer writes in the old shape, then the DDL meets it
            step(statements, tables)
            statements_run += len(statements)
        assert statements_run >= 40

        # SIGKILL between a DDL and the next row: the restart brings the new shape
        with writer.lock:
            mysql_db.execute("ALTER TABLE t2 ADD COLUMN k int DEFAULT 3")
            time.sleep(1)  # the DDL reaches the pipeline (and perhaps its checkpoint)
            process[-1].send_signal(signal.SIGKILL)
            process[-1].wait(30)
            mysql_db.execute("INSERT INTO t2 (id, k) VALUES (99999, 4)")
            start()
            wait_until(lambda: in_sync("t2"), 90, "t2 in sync after the SIGKILL restart")
        writer.stopping.set()
        writer.join(10)
        assert writer.error is None and writer.statements > 100, (writer.error,
                                                                  writer.statements)
        process[-1].send_signal(signal.SIGTERM)
        assert process[-1].wait(60) == 0, output()[-3000:]
        assert "dead letter" not in output(), output()[-3000:]
        assert not (tmp_path / ".meepo" / "ddl.dead.jsonl").exists()
    finally:
        writer.stopping.set()
        for running in process:
            if running.poll() is None:
                running.kill()
